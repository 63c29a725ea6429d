"""``style-pipeline jobs``: the remote training jobs (ComfyUI, Replicate): list, show, cancel,
logs.

Reads the records ``lora_weights`` writes (``training_jobs/<job_id>.json`` in the storage
root, ``training.remote.job_store``). A job id may be abbreviated to any unique prefix.
``cancel`` asks the service to stop the job and records ``cancelled``: a run polling it
then fails, and the next run submits it again. Settings and the backends are imported
inside the commands, so ``style-pipeline --help`` stays light.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

jobs_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Remote training jobs (ComfyUI, Replicate): list, show, cancel, logs.",
)
console = Console()
JOB_ID = typer.Argument(..., help="the job id (or a unique prefix of it)")


def _training():
    from style_pipeline.settings import load_settings

    return load_settings()


def _jobs(settings=None):
    from style_pipeline.storage.store import Store
    from style_pipeline.training.remote.job_store import JobStore

    settings = settings or _training()
    return JobStore(Store(settings.storage_root()))


def _find(jobs, job_id: str):
    try:
        return jobs.find(job_id)
    except KeyError as exc:
        console.print(f"[red]{exc.args[0]}[/red]")
        raise typer.Exit(1) from exc


def _remote(settings, backend: str):
    """The service a job ran on, from the current settings (its URL and token)."""
    from style_pipeline.training.remote.factory import remote_backend

    training = settings.training.model_copy(update={"backend": backend})
    return remote_backend(training)


def _money(value) -> str:
    return "-" if value is None else f"${value:.4f}"


def _seconds(value) -> str:
    return "-" if value is None else f"{float(value) / 60:.1f} min"


@jobs_app.command("list")
def list_jobs(
    limit: int = typer.Option(20, help="how many of the most recently updated jobs"),
) -> None:
    """Jobs, most recently updated first: status, progress, cost, estimate vs actual."""
    jobs = _jobs().list()
    if not jobs:
        console.print("no remote training jobs")
        return
    table = Table(title="remote training jobs")
    for column in ("job", "backend", "partition", "status", "step", "cost", "estimate", "actual",
                   "updated"):  # fmt: skip
        table.add_column(column)
    for job in jobs[:limit]:
        style = {"failed": "red", "cancelled": "yellow", "completed": "green"}.get(job.status)
        status = f"[{style}]{job.status}[/{style}]" if style else job.status
        table.add_row(
            job.job_id, job.backend, job.partition, status,
            f"{job.step}/{job.total_steps or '?'}", _money(job.cost_usd),
            _seconds(job.estimate.get("seconds")), _seconds(job.actual.get("seconds")),
            job.updated_at.strftime("%Y-%m-%d %H:%M"),
        )  # fmt: skip
    console.print(table)


@jobs_app.command("show")
def show(job_id: str = JOB_ID, lines: int = typer.Option(10, help="last log lines shown")) -> None:
    """The job's record (JSON) and its last log lines."""
    jobs = _jobs()
    job = _find(jobs, job_id)
    console.print_json(jobs.dumps(job))
    for line in jobs.log_lines(job.job_id)[-lines:] if lines else []:
        console.print(line, markup=False, highlight=False)


@jobs_app.command("cancel")
def cancel(
    job_id: str = JOB_ID,
    force: bool = typer.Option(
        False, help="record it cancelled even when the service cannot be reached"
    ),
) -> None:
    """Ask the service to stop the job and record it cancelled."""
    from style_pipeline.training.remote.base import RemoteTrainingError
    from style_pipeline.training.remote.job_store import utc_now

    settings = _training()
    jobs = _jobs(settings)
    job = _find(jobs, job_id)
    if job.final:
        console.print(f"{job.job_id} is already {job.status}")
        return
    if job.remote_id:
        try:
            _remote(settings, job.backend).cancel(job.remote_id)
            console.print(f"cancel sent to {job.backend} (remote id {job.remote_id})")
        except (RemoteTrainingError, ValueError) as exc:
            console.print(f"cancel failed: {exc}", style="red", markup=False, highlight=False)
            if not force:
                console.print("the job may still run; --force records it cancelled anyway")
                raise typer.Exit(1) from exc
    why = "cancelled with style-pipeline jobs cancel"
    jobs.save(
        job.model_copy(update={"status": "cancelled", "finished_at": utc_now(), "error": why})
    )
    jobs.append_log(job.job_id, why)
    console.print(f"{job.job_id}: cancelled")


@jobs_app.command("logs")
def logs(
    job_id: str = JOB_ID,
    remote: bool = typer.Option(True, help="also fetch the service's log of the job"),
) -> None:
    """The job's log lines here, then the service's log (ComfyUI: history, Replicate: logs)."""
    from style_pipeline.training.remote.base import RemoteTrainingError

    settings = _training()
    jobs = _jobs(settings)
    job = _find(jobs, job_id)
    for line in jobs.log_lines(job.job_id):
        console.print(line, markup=False, highlight=False)
    if not (remote and job.remote_id):
        return
    console.print(f"--- {job.backend} log of {job.remote_id} ---")
    try:
        lines = _remote(settings, job.backend).logs(job.remote_id)
    except (RemoteTrainingError, ValueError) as exc:
        console.print(f"not available: {exc}", style="yellow", markup=False, highlight=False)
        return
    for line in lines:
        console.print(line, markup=False, highlight=False)
