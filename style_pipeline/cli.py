"""``style-pipeline``: demo, drop, materialize and status from the command line."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from style_pipeline.cli_jobs import jobs_app
from style_pipeline.cli_lora import lora_app
from style_pipeline.cli_models import models_app
from style_pipeline.cli_serve import serve
from style_pipeline.cli_sql import sql
from style_pipeline.media.dropfolder import scan_drop

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.add_typer(lora_app, name="lora")
app.add_typer(jobs_app, name="jobs")
app.add_typer(models_app, name="models")
console = Console()


def load_settings():
    """The validated settings (imported lazily: they pull in every model library)."""
    from style_pipeline.settings import load_settings as load

    return load()


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    )


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _parse_date(value: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a YYYY-MM-DD date") from exc


@app.command()
def demo(
    seed: int = typer.Option(0, help="seed of the generated sample media"),
    video_seconds: float = typer.Option(30.0, help="length of the generated sample video"),
    select: str = typer.Option("*", help="Dagster asset selection to materialize"),
    preset: str = typer.Option(
        None,
        help="LoRA preset for the demo's training (default: tiny, which runs on a CPU in "
        "seconds; with --real: fast)",
    ),
    real: bool = typer.Option(
        False,
        "--real",
        help="real pretrained weights: models.allow_download on (missing CLIP, BLIP and the "
        "diffusion base are downloaded into the model caches, see `models pull`) and the "
        "fast preset; slow on a CPU",
    ),
) -> None:
    """Fill an empty drop folder with sample media and materialize every asset for today."""
    from style_pipeline.defs.run import ensure_dagster_home, materialize_partition
    from style_pipeline.demo.samples import populate_drop

    if real:
        os.environ["STYLE_PIPELINE_MODELS__ALLOW_DOWNLOAD"] = "true"
    os.environ.setdefault("STYLE_PIPELINE_TRAINING__PRESET", preset or ("fast" if real else "tiny"))
    os.environ.setdefault("STYLE_PIPELINE_TRAINING__ALLOW_TINY_PROMOTION", "true")
    # the LLM adapter too: without pulled weights it trains on the tiny random-init model
    os.environ.setdefault("STYLE_PIPELINE_LLM__ALLOW_TINY_PROMOTION", "true")
    console.print(f"training preset: {os.environ['STYLE_PIPELINE_TRAINING__PRESET']}")
    home = ensure_dagster_home()
    settings = load_settings()
    drop = settings.drop_path()
    drop.mkdir(parents=True, exist_ok=True)
    if not scan_drop(drop):
        from style_pipeline.paths import resolve_local

        references = resolve_local(settings.characters.references_dir)
        with console.status(f"generating sample media in {drop} ..."):
            samples = populate_drop(
                drop,
                seed=seed,
                video_seconds=video_seconds,
                face_photos=3,
                characters_dir=references,
            )
        files = (1 + len(samples.photos) + len(samples.faces) + (samples.chat_log is not None)
                 + 2 * len(samples.talks))  # fmt: skip
        console.print(
            f"generated {files} sample files and one bad file in {drop} (video cuts at "
            f"{', '.join(f'{t:.1f}s' for t in samples.cut_times)})"
        )
        if samples.character is not None:
            console.print(f"reference character for the characters asset: {samples.character}")
        if samples.talk is not None and samples.chat_log is not None:
            console.print(
                f"the video speaks (espeak-ng) its answers to {len(samples.talk.speech)} "
                f"question(s) of its chat log {samples.chat_log.name}"
            )
        if samples.talks:
            console.print(
                f"{len(samples.talks)} short clip(s) speak too, with their chat logs: "
                + ", ".join(video.name for video, _, _ in samples.talks)
            )
            _demo_split_salt(samples.speaking_videos(), settings)
        if samples.speech_note:
            console.print(f"[yellow]{samples.speech_note}")
    dates = sorted({e.arrival_date.isoformat() for e in scan_drop(drop)})
    partition = _today() if _today() in dates or not dates else dates[-1]
    if partition != _today():
        console.print(f"[yellow]no files arrived today; using the newest arrival date {partition}")
    with console.status(f"materializing {select!r} for {partition} through Dagster ..."):
        summary = materialize_partition(partition, select)
    _print_run(summary)
    _print_outputs(settings.storage_root(), partition, summary.materialized)
    _print_characters(settings.storage_root(), partition)
    console.print(f"\nstorage root : {settings.storage_root()}")
    console.print(f"DAGSTER_HOME : {home}")
    console.print('query tables : style-pipeline sql "select * from raw_media" (--tables: all)')
    console.print(f"open the UI  : DAGSTER_HOME={home} dagster dev -w workspace.yaml (or make dev)")
    base = settings.serving.base_url()
    console.print(
        f"review, try : style-pipeline serve, then {base}/review/{partition} and /generate"
        " (it also serves the pictures on the UI's asset pages)"
    )
    if not summary.success:
        raise typer.Exit(1)


def _demo_split_salt(videos: list[Path], settings: Any) -> None:
    """Set the SFT split salt (unless set) so the demo's speaking videos fill train and val."""
    import hashlib

    from style_pipeline.demo.speech import split_salt

    key = "STYLE_PIPELINE_SFT__SPLIT__SALT"
    if key in os.environ:
        return
    ids = [hashlib.sha256(video.read_bytes()).hexdigest() for video in videos]
    salt = split_salt(ids, settings.sft.split)
    if salt is not None and salt != settings.sft.split.salt:
        os.environ[key] = salt
        console.print(f"SFT split salt for the demo: {salt} (its videos in train and val)")


@app.command()
def drop(
    paths: list[Path] = typer.Argument(..., exists=True, readable=True, help="files to drop"),
    date: str = typer.Option(None, help="arrival date YYYY-MM-DD (default: today, UTC)"),
) -> None:
    """Copy files into the hot folder under ``<drop>/<date>/`` (atomically, never overwriting)."""
    day = _parse_date(date) if date else _today()
    from style_pipeline.settings import load_settings

    target_dir = load_settings().drop_path() / day
    target_dir.mkdir(parents=True, exist_ok=True)
    files = [p for p in paths if p.is_file()]
    skipped = [p for p in paths if not p.is_file()]
    with _progress() as progress:
        task = progress.add_task(f"dropping into {target_dir}", total=len(files))
        for path in files:
            _copy_atomic(path, _free_name(target_dir, path.name))
            progress.advance(task)
    for path in skipped:
        console.print(f"[yellow]skipped {path}: not a regular file")
    console.print(f"dropped {len(files)} file(s) for {day}")


def _free_name(directory: Path, name: str) -> Path:
    candidate, stem, suffix, n = directory / name, Path(name).stem, Path(name).suffix, 1
    while candidate.exists():
        candidate = directory / f"{stem}-{n}{suffix}"
        n += 1
    return candidate


def _copy_atomic(source: Path, target: Path) -> None:
    partial = target.with_name(target.name + ".part")  # ignored by the sensor until renamed
    shutil.copyfile(source, partial)
    partial.replace(target)


@app.command()
def materialize(
    date: str = typer.Option(None, help="partition date YYYY-MM-DD (default: today, UTC)"),
    select: str = typer.Option("*", help="Dagster asset selection, e.g. 'group:ingest'"),
) -> None:
    """Materialize assets for one date through the Dagster instance."""
    from style_pipeline.defs.run import ensure_dagster_home, materialize_partition

    ensure_dagster_home()
    partition = _parse_date(date) if date else _today()
    with console.status(f"materializing {select!r} for {partition} ..."):
        summary = materialize_partition(partition, select)
    _print_run(summary)
    if not summary.success:
        raise typer.Exit(1)


@app.command()
def train(
    config: Path = typer.Option(
        ..., exists=True, dir_okay=False, help="a LoRA preset YAML, e.g. configs/presets/sd15.yml"
    ),
    date: str = typer.Option(None, help="partition date YYYY-MM-DD (default: yesterday, UTC)"),
) -> None:
    """Build the dataset, train the LoRA and evaluate it for one date, outside the daemon."""
    from style_pipeline.defs.run import ensure_dagster_home, materialize_partition
    from style_pipeline.training.presets import load_preset

    preset = load_preset(config)  # validate before any work: a bad field fails here
    os.environ["STYLE_PIPELINE_TRAINING__PRESET"] = str(config.resolve())
    ensure_dagster_home()
    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    partition = _parse_date(date) if date else yesterday
    console.print(
        f"training {preset.name} (rank {preset.rank}, {preset.resolution}px) for {partition}"
    )
    with console.status("training through Dagster (logs stream below) ..."):
        summary = materialize_partition(partition, "group:training")
    _print_run(summary)
    if not summary.success:
        raise typer.Exit(1)
    if "lora_weights" not in summary.materialized:  # training_dataset skipped: empty window
        console.print(
            f"[red]no LoRA trained for {partition}[/red]: no captions in its "
            "training window (caption the days first, e.g. the nightly_training_job)"
        )
        raise typer.Exit(1)


@app.command()
def status(days: int = typer.Option(14, help="how many of the newest dates to show")) -> None:
    """Show which assets are materialized for which dates."""
    from style_pipeline.defs.run import ensure_dagster_home, materialized_partitions

    ensure_dagster_home()
    done = materialized_partitions()
    dates = sorted({p for parts in done.values() for p in parts}, reverse=True)
    if not dates:
        console.print("nothing materialized yet: run `style-pipeline demo` or `materialize`")
        return
    table = Table(title=f"materialized partitions ({len(dates)} dates)")
    table.add_column("date", no_wrap=True)
    table.add_column("assets", justify="right", no_wrap=True)
    table.add_column("missing")
    for day in dates[:days]:
        missing = [key for key in done if day not in done[key]]
        table.add_row(day, f"{len(done) - len(missing)}/{len(done)}", ", ".join(missing) or "-")
    console.print(table)


@app.command()
def retention(
    dry_run: bool = typer.Option(False, "--dry-run", help="only show what would be deleted"),
    today: str = typer.Option(
        None, help="YYYY-MM-DD the limits count back from (default: today, UTC)"
    ),
) -> None:
    """Delete stored data past the retention: limits (what retention_job runs daily)."""
    from style_pipeline.stages.retention import (
        RetentionRefused,
        apply_retention,
        human_bytes,
        plan_retention,
    )
    from style_pipeline.storage.store import Store

    settings = load_settings()
    day = dt.date.fromisoformat(_parse_date(today)) if today else dt.datetime.now(dt.UTC).date()
    store = Store(settings.storage_root())
    try:
        plan = plan_retention(store, settings, day)
    except RetentionRefused as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    table = Table(title=f"retention on {day.isoformat()} ({'dry run' if dry_run else 'deleting'})")
    table.add_column("category")
    table.add_column("keys", justify="right")
    table.add_column("bytes", justify="right")
    for category, (keys, size) in plan.totals().items():
        table.add_row(category, str(keys), human_bytes(size))
    console.print(table)
    for line in plan.protections:
        console.print(f"kept {line}", soft_wrap=True)
    if dry_run:
        for line in plan.lines():
            console.print(f"would delete {line}", soft_wrap=True)
        console.print("dry run: nothing deleted")
        return
    result = apply_retention(store, plan, lambda line: console.print(line, soft_wrap=True))
    keys = sum(k for k, _ in result.totals().values())
    size = sum(b for _, b in result.totals().values())
    console.print(f"deleted {keys} key(s), {human_bytes(size)}; {len(result.skipped)} skipped")


def _print_outputs(root: str, partition: str, assets: list[str]) -> None:
    from style_pipeline.storage.store import Store

    store = Store(root)
    table = Table(title=f"outputs for {partition}")
    table.add_column("asset")
    table.add_column("table / files")
    for asset in assets:
        keys = [
            k
            for k in (f"{asset}/{partition}.parquet", f"{asset}/{partition}.json")
            if store.exists(k)
        ]
        if store.exists(f"{asset}/{partition}"):
            keys.append(f"{asset}/{partition}/ ({len(store.list(f'{asset}/{partition}'))} files)")
        table.add_row(asset, "\n".join(keys) or "-")
    console.print(table)


def _print_characters(root: str, partition: str) -> None:
    """Faces per label of the day's ``characters`` table (matched characters, unknown groups)."""
    import io

    import polars as pl

    from style_pipeline.storage import layout
    from style_pipeline.storage.store import Store

    store, key = Store(root), layout.table_key("characters", partition)
    if not store.exists(key):
        return
    labels = pl.read_parquet(io.BytesIO(store.read_bytes(key)))["label"].drop_nulls()
    counts = ", ".join(f"{name} {n}" for name, n in sorted(labels.value_counts().rows()))
    console.print(f"faces named : {counts or 'none'}")


def _print_run(summary) -> None:
    colour = "green" if summary.success else "red"
    console.print(f"[{colour}]run {summary.run_id} {'succeeded' if summary.success else 'FAILED'}")
    console.print(f"materialized: {', '.join(summary.materialized) or 'nothing'}")
    if summary.recorded:
        console.print(f"ingested files recorded for the hot-folder sensor: {summary.recorded}")
    for step in summary.failed_steps:
        console.print(f"[red]failed step: {step}")


app.command()(serve)
app.command()(sql)

if __name__ == "__main__":  # pragma: no cover
    app()
