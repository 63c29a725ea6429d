"""``style-pipeline lora``: list the published LoRA versions, promote one, roll back.

Reads and writes the same ``LiveLora`` document as the nightly ``promoted_lora`` asset and
the web app (``training.promotion``); every change records who (``--by``, default
``$USER``) and why (``--reason``). Settings, storage and promotion are imported inside the
commands, so ``style-pipeline --help`` stays light.
"""

from __future__ import annotations

import getpass
import json
import os

import typer
from rich.console import Console
from rich.table import Table

lora_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="LoRA versions: list them (which is live), promote one, roll back.",
)
console = Console()

BY = typer.Option(None, "--by", help="who makes the change (default: $USER)")
REASON = typer.Option("", "--reason", help="why, kept in the promotion history")


def _store():
    from style_pipeline.settings import load_settings
    from style_pipeline.storage.store import Store

    return Store(load_settings().storage_root())


def _author(by: str | None) -> str:
    if by is not None:
        return by
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers): promote refuses ""
        return ""


def _metrics_summary(store, version: str, partition: str) -> str:
    """The day's evaluation of ``version`` in a few numbers ("-" when it has none)."""
    from style_pipeline.storage import layout

    try:
        key = layout.document_key(layout.METRICS, partition)
    except ValueError:
        return "-"
    if not store.exists(key):
        return "-"
    try:
        document = json.loads(store.read_bytes(key))
    except ValueError:
        return f"unreadable {key}"
    if document.get("lora_version") != version:
        return "-"  # that day's evaluation is of another run of the day
    numbers = document.get("metrics") or {}
    shown = [
        f"{name} {numbers[name]:.3g}"
        for name in ("clip_score", "brand_score", "fid")
        if isinstance(numbers.get(name), int | float)
    ]
    regressed = len(document.get("regressions") or [])
    return ", ".join([*shown, f"{regressed} regression{'s' * (regressed != 1)}"])


@lora_app.command("list")
def list_versions_command(
    history: int = typer.Option(5, help="how many of the newest promotion events to show"),
) -> None:
    """Published versions, newest first: date, sha256, profile, metrics, and which is live."""
    from style_pipeline.training.promotion import PromotionError, read_live
    from style_pipeline.training.versions import list_versions, read_metadata

    store = _store()
    try:
        live = read_live(store)
    except PromotionError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    versions = list_versions(store)
    if not versions:
        console.print(f"no LoRA version published in {store.root}: run the training group first")
        return
    table = Table(title=f"LoRA versions ({len(versions)}), live: {live.version or 'none'}")
    for column in ("live", "version", "date", "sha256", "profile", "metrics"):
        table.add_column(column, no_wrap=column != "metrics")
    for version in reversed(versions):
        meta = read_metadata(store, version)
        partition = str(meta.get("partition", version.rsplit(".", 1)[0]))
        table.add_row(
            "*" if version == live.version else "",
            version,
            partition,
            str(meta.get("sha256", ""))[:12],
            str(meta.get("model_profile", "?")),
            _metrics_summary(store, version, partition),
        )
    console.print(table)
    if live.version and live.version not in versions:
        console.print(f"[red]the live version {live.version} is not published any more")
    for event in live.history[-history:] if history > 0 else []:
        when = event.at.strftime("%Y-%m-%d %H:%M UTC")
        note = f": {event.reason}" if event.reason else ""
        console.print(f"{when}  {event.action:<8} {event.version}  by {event.by}{note}")


def _change(action: str, version: str | None, by: str | None, reason: str) -> None:
    from style_pipeline.training.promotion import PromotionError, promote, rollback

    store = _store()
    previous = None
    try:
        if action == "promote" and version is not None:
            live = promote(store, version, by=_author(by), reason=reason)
        else:
            live = rollback(store, by=_author(by), reason=reason, version=version)
        previous = live.history[-2].version if len(live.history) > 1 else None
    except PromotionError as exc:
        console.print(f"[red]{action} refused: {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"live: {live.version} (sha256 {str(live.sha256)[:12]}), was {previous or 'none'}"
    )


@lora_app.command()
def promote(
    version: str = typer.Argument(..., help="a published version, e.g. 2026-11-20.001"),
    by: str | None = BY,
    reason: str = REASON,
) -> None:
    """Make VERSION the live LoRA (its weights' sha256 is checked first)."""
    _change("promote", version, by, reason)


@lora_app.command()
def rollback(
    version: str | None = typer.Argument(None, help="default: the version live before"),
    by: str | None = BY,
    reason: str = REASON,
) -> None:
    """Go back to VERSION, or to the version that was live before the current one."""
    _change("rollback", version, by, reason)
