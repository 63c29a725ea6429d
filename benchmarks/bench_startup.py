"""Dagster step start-up and sensor-like runs: spawn vs forkserver vs in-process (ADR 0006).

Measures, in one go, each part on its own temporary ``DAGSTER_HOME`` (a copy of the
project's dagster.yaml), storage root and drop folder, offline (``HF_HUB_OFFLINE=1``):

1. code-location load: ``python -c "import style_pipeline.definitions as d; d.defs()"``,
   wall time, best of ``--repeats-load``;
2. an empty day's ``ingest_job`` through ``dagster job execute -m style_pipeline.definitions``
   with the ``executor:`` settings set by environment to ``spawn`` (Dagster's own default,
   i.e. before ADR 0006), ``forkserver`` (after) and ``in_process``: run wall, per-step
   start-up (``STEP_WORKER_STARTING`` -> ``STEP_START`` in the run's event log; the steps
   launched before any step started also wait for the forkserver to boot, so that first
   wave is reported apart) and the summed step compute (``STEP_START`` -> its success or
   failure). The run fails on an empty day by design: the blocking check
   ``min_curated_count`` fails;
3. a sensor-like run: the demo's sample files (``style_pipeline.demo.samples.populate_drop``:
   a cut video, four photos, one corrupt file), generated once and copied into a fresh drop
   folder per mode, then today's ``ingest_job`` in each of the three modes, and the
   in-process baseline ``style-pipeline materialize --select "group:ingest or
   group:curation"`` (what ``demo`` and the CLI run: ``dg.materialize`` in its process).
   Every mode gets fresh storage and ``DAGSTER_HOME``, so no embedding cache, dedup index
   or run history carries over; the models are the demo's defaults (CLIP ``auto``, which
   offline falls back to the tiny random-init model cached under ``data/models``).

Usage::

    .venv/bin/python benchmarks/bench_startup.py [--repeats 1] [--repeats-load 3]
        [--video-seconds 30] [--no-docs]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

SECTION = "## Dagster: step start-up and sensor runs"
from docs_section import write_section  # noqa: E402

MODES: dict[str, dict[str, str]] = {
    "spawn": {
        "STYLE_PIPELINE_EXECUTOR__KIND": "multiprocess",
        "STYLE_PIPELINE_EXECUTOR__START_METHOD": "spawn",
    },
    "forkserver": {
        "STYLE_PIPELINE_EXECUTOR__KIND": "multiprocess",
        "STYLE_PIPELINE_EXECUTOR__START_METHOD": "forkserver",
    },
    "in_process": {"STYLE_PIPELINE_EXECUTOR__KIND": "in_process"},
}
CLI = "cli materialize"  # the in-process baseline of the sensor-like run
INGEST_SELECTION = "group:ingest or group:curation"  # what ingest_job selects
GOAL_RATIO, GOAL_STARTUP = 1.5, 3.0


def utc_day(days_ago: int = 0) -> str:
    return (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days_ago)).isoformat()


def isolated_env(root: Path, extra: dict[str, str]) -> dict[str, str]:
    """Environment of one measurement: its own DAGSTER_HOME, storage and drop under ``root``."""
    for name in ("home", "storage", "drop"):
        (root / name).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "dagster.yaml", root / "home" / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STYLE_PIPELINE_EXECUTOR__")}
    env.update(
        DAGSTER_HOME=str(root / "home"),
        STYLE_PIPELINE_STORAGE=str(root / "storage"),
        STYLE_PIPELINE_DROP=str(root / "drop"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        **extra,
    )
    return env


def timed(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - started, done


def load_seconds(tmp: Path, repeats: int) -> list[float]:
    """Wall seconds of a fresh interpreter importing and building the code location."""
    env = isolated_env(tmp / "load", {})
    code = "import style_pipeline.definitions as d; d.defs()"
    walls = []
    for _ in range(repeats):
        wall, done = timed([sys.executable, "-c", code], env)
        if done.returncode:
            raise RuntimeError(f"loading the definitions failed:\n{done.stderr[-3000:]}")
        walls.append(wall)
    return walls


def run_stats(home: Path) -> dict:
    """Start-up and compute per step of the one run recorded in ``home``."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        records = [e for e in instance.all_logs(run.run_id) if e.dagster_event and e.step_key]
        status = run.status.value
    launched: dict[str, float] = {}
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    for entry in records:
        kind, step = entry.dagster_event.event_type_value, entry.step_key
        if kind == "STEP_WORKER_STARTING":
            launched.setdefault(step, entry.timestamp)
        elif kind == "STEP_START":
            started.setdefault(step, entry.timestamp)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            ended[step] = entry.timestamp
    startup = {s: started[s] - launched[s] for s in launched if s in started}
    first_start = min(started.values(), default=0.0)
    first_wave = [t for s, t in startup.items() if launched[s] <= first_start]
    later = [t for s, t in startup.items() if launched[s] > first_start]
    compute = [ended[s] - started[s] for s in started if s in ended]
    return {
        "status": status,
        "steps": len(started),
        "startup": sorted(startup.values()),
        "first_wave": max(first_wave, default=None),
        "later_median": statistics.median(later) if later else None,
        "compute_sum": sum(compute),
    }


def job_execute(root: Path, mode: str, day: str, drop: Path | None = None) -> dict:
    """``dagster job execute`` of ``ingest_job`` for ``day`` in ``mode``; wall and steps."""
    env = isolated_env(root, MODES[mode])
    if drop is not None:
        shutil.rmtree(root / "drop")
        shutil.copytree(drop, root / "drop")  # copy2: mtimes (arrival day) kept
    command = [str(BIN / "dagster"), "job", "execute", "-m", "style_pipeline.definitions"]
    command += ["-j", "ingest_job", "--tags", json.dumps({"dagster/partition": day})]
    wall, done = timed(command, env)
    stats = run_stats(root / "home")
    warnings = [line for line in done.stderr.splitlines() if "warm_start" in line]
    return {"mode": mode, "wall": wall, "rc": done.returncode, "warm_start": warnings, **stats}


def cli_materialize(root: Path, day: str, drop: Path) -> dict:
    """The in-process baseline: ``style-pipeline materialize`` of ingest_job's selection."""
    env = isolated_env(root, {})
    shutil.rmtree(root / "drop")
    shutil.copytree(drop, root / "drop")
    command = [str(BIN / "style-pipeline"), "materialize", "--date", day]
    wall, done = timed([*command, "--select", INGEST_SELECTION], env)
    return {
        "mode": CLI,
        "wall": wall,
        "rc": done.returncode,
        "warm_start": [],
        **run_stats(root / "home"),
    }


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def best(results: list[dict]) -> dict:
    """The repeat with the lowest wall time (the least disturbed by other jobs)."""
    return min(results, key=lambda r: r["wall"])


def empty_day_table(results: dict[str, dict]) -> list[str]:
    spawn = results["spawn"]["wall"]
    lines = [
        "| executor | run | steps | first-wave start-up s | later start-up median s "
        "| start-up mean s | start-up max s | step compute sum s | run wall s | wall / spawn |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, r in results.items():
        ups = r["startup"]
        lines.append(
            f"| {mode} | {r['status'].lower()} | {r['steps']} | {fmt(r['first_wave'])} | "
            f"{fmt(r['later_median'])} | {fmt(statistics.mean(ups) if ups else None)} | "
            f"{fmt(max(ups, default=None))} | {fmt(r['compute_sum'], 1)} | {r['wall']:.1f} | "
            f"{r['wall'] / spawn:.2f} |"
        )
    return lines


def sensor_table(results: dict[str, dict]) -> list[str]:
    base = results[CLI]["wall"]
    lines = [
        "| how | run | steps | later start-up median s | start-up max s "
        "| step compute sum s | wall s | wall / in-process CLI |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, r in results.items():
        name = f"`dagster job execute`, {mode}" if mode in MODES else "`style-pipeline materialize`"
        lines.append(
            f"| {name} | {r['status'].lower()} | {r['steps']} | {fmt(r['later_median'])} | "
            f"{fmt(max(r['startup'], default=None))} | {fmt(r['compute_sum'], 1)} | "
            f"{r['wall']:.1f} | {r['wall'] / base:.2f} |"
        )
    return lines


def report(load: list[float], empty: dict[str, dict], sensor: dict[str, dict], args) -> str:
    import dagster

    fork_empty, fork_sensor = empty["forkserver"], sensor["forkserver"]
    ratio = fork_sensor["wall"] / sensor[CLI]["wall"]
    worst = max([*fork_empty["startup"], *fork_sensor["startup"]], default=0.0)
    later = max(fork_empty["later_median"] or 0.0, fork_sensor["later_median"] or 0.0)
    avg = os.getloadavg()
    verdict = "met" if worst < GOAL_STARTUP else "NOT met"
    if worst >= GOAL_STARTUP and later < GOAL_STARTUP:
        verdict = "met by every step after the forkserver's boot, NOT by the first wave"
    lines = [
        SECTION,
        "",
        f"Run on {platform.machine()} / Python {platform.python_version()}, Dagster "
        f"{dagster.__version__}, {os.cpu_count()} CPU cores shared with other jobs, no GPU, "
        "by `.venv/bin/python benchmarks/bench_startup.py`. Every measurement had its own "
        "temporary `DAGSTER_HOME` (the project's dagster.yaml), storage root and drop folder; "
        "the executor was chosen with `STYLE_PIPELINE_EXECUTOR__KIND` / `__START_METHOD`. "
        "Start-up is `STEP_WORKER_STARTING` -> `STEP_START` of a step in the run's event "
        "log; the first wave (steps launched before any step started) also waits for the "
        f"forkserver to boot. Best of {args.repeats} run(s) per row "
        f"(load average at the end: {avg[0]:.1f} over 1 min).",
        "",
        f"Code-location load (`import style_pipeline.definitions; defs()` in a fresh "
        f"interpreter): best {min(load):.2f} s of {len(load)} "
        f"({', '.join(f'{t:.2f}' for t in load)}). A spawned step pays this plus its own "
        "imports; a step forked from the warm server pays neither.",
        "",
        f"### An empty day's `ingest_job` (`dagster job execute`, {empty['spawn']['steps']} "
        "steps; fails by design at the blocking check `min_curated_count`)",
        "",
        *empty_day_table(empty),
        "",
        "### A sensor-like run: the demo's sample files, today's `ingest_job`",
        "",
        f"The demo's files (`populate_drop`: a {args.video_seconds:g} s 1080p cut video, four "
        "photos, one corrupt file) copied into a fresh drop folder per row; fresh storage "
        "and `DAGSTER_HOME` per row; CLIP on the demo's `auto` profile (offline: the tiny "
        "model). The last row is the in-process baseline (`style-pipeline materialize "
        f'--select "{INGEST_SELECTION}"`, the same assets and checks).',
        "",
        *sensor_table(sensor),
        "",
        f"Goals: forkserver sensor-like run within {GOAL_RATIO}x of in-process: "
        f"{ratio:.2f}x ({'met' if ratio <= GOAL_RATIO else 'NOT met'}); per-step start-up "
        f"under {GOAL_STARTUP:g} s: worst {worst:.2f} s including the forkserver boot, "
        f"later steps' median {later:.2f} s "
        f"({verdict}).",
        "",
        "`dagster job execute` runs the run in its own process, as the daemon's run worker "
        "does; a daemon-launched run additionally starts that worker process (`dagster api "
        "execute_run`, one code-location load) before its first step.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per row (best kept)")
    parser.add_argument("--repeats-load", type=int, default=3)
    parser.add_argument("--video-seconds", type=float, default=30.0, help="the demo's default")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()

    from style_pipeline.demo.samples import populate_drop

    with tempfile.TemporaryDirectory(prefix="bench_startup_") as name:
        tmp = Path(name)
        load = load_seconds(tmp, args.repeats_load)
        print(f"code-location load: {[round(t, 2) for t in load]}", flush=True)

        empty: dict[str, dict] = {}
        for mode in MODES:
            runs = [
                job_execute(tmp / f"empty-{mode}-{i}", mode, utc_day(1))
                for i in range(args.repeats)
            ]
            empty[mode] = best(runs)
            print(json.dumps(empty[mode]), flush=True)

        samples = tmp / "samples"
        populate_drop(samples, seed=0, video_seconds=args.video_seconds)
        sensor: dict[str, dict] = {}
        for mode in [*MODES, CLI]:
            runs = []
            for i in range(args.repeats):
                root = tmp / f"sensor-{mode.replace(' ', '_')}-{i}"
                if mode == CLI:
                    runs.append(cli_materialize(root, utc_day(), samples))
                else:
                    runs.append(job_execute(root, mode, utc_day(), samples))
            sensor[mode] = best(runs)
            print(json.dumps(sensor[mode]), flush=True)

    text = report(load, empty, sensor, args)
    print(text)
    if not args.no_docs:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
