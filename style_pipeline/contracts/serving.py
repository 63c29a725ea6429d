"""Serving contracts: the ``serving:`` config section of the review / generation web app."""

from __future__ import annotations

from pydantic import Field

from style_pipeline.contracts.sections import Section


class ServingSettings(Section):
    """``style-pipeline serve``: where it listens, what it accepts, how it reaches Dagster."""

    host: str = Field("127.0.0.1", description="a non-loopback host needs an API token")
    port: int = Field(8000, ge=1, le=65535)
    public_url: str | None = Field(
        None,
        description="the app's address as a browser reaches it (pictures in the Dagster "
        "UI link to it); None: http://<host>:<port>",
    )
    token_env: str = Field(
        "STYLE_PIPELINE_API_TOKEN",
        description="NAME of the environment variable holding the bearer token for writes",
    )
    dagster_graphql_url: str | None = Field(
        None,
        description="a running Dagster webserver's GraphQL endpoint, e.g. "
        "http://127.0.0.1:3000/graphql; None: runs are launched in-process",
    )
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="larger requests get 413")
    max_prompt_chars: int = Field(1000, ge=1)
    thumbnail_edge: int = Field(256, ge=32, le=2048, description="long edge of grid thumbnails")
    thumbnail_cache_entries: int = Field(4096, ge=0, description="thumbnails kept in memory")
    max_generation_edge: int = Field(1536, ge=64, description="largest width/height served")
    max_generation_steps: int = Field(100, ge=1)
    max_queue: int = Field(16, ge=1, description="waiting generations per device; more get 429")

    def base_url(self) -> str:
        """Where a browser reaches the app, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"
