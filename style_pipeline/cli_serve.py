"""``style-pipeline serve``: the review / generation web app under uvicorn.

The app (FastAPI, polars, Dagster) is imported when the command runs, so ``--help`` stays
fast. A non-loopback host needs an API token (``serving.token_env``); the token is never
printed or logged.
"""

from __future__ import annotations

import typer


def serve(
    host: str | None = typer.Option(None, help="listen address (default: serving.host)"),
    port: int | None = typer.Option(None, help="listen port (default: serving.port)"),
) -> None:
    """Serve the review pages, overrides, the JSON API and generation (FastAPI + uvicorn)."""
    from style_pipeline.serving.auth import UnsafeBindError, api_token, check_bind
    from style_pipeline.settings import load_settings

    settings = load_settings()
    serving = settings.serving
    host = host or serving.host
    port = port or serving.port
    try:
        check_bind(serving, host)
    except UnsafeBindError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None

    import uvicorn

    from style_pipeline.defs.run import ensure_dagster_home
    from style_pipeline.serving.app import create_app

    ensure_dagster_home()  # in-process re-runs record into the project's Dagster instance
    token = "required (from $" + serving.token_env + ")" if api_token(serving) else "off"
    typer.echo(f"serving http://{host}:{port}/review  (write token: {token})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
