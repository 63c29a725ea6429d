"""Pipeline runs in child processes with their own roots, for faults a process cannot survive.

Each ``Roots`` is one isolated deployment under a test's tmp_path: drop folder, storage
root, ``DAGSTER_HOME`` and ``TMPDIR``. ``start`` materializes a selection for one date in a
``python -c`` child (the same ``materialize_partition`` the CLI calls), so the test can
SIGKILL it mid-step and run it again in a second child.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from style_pipeline.paths import PROJECT_ROOT
from style_pipeline_tests.conftest import TINY_ENV

# The child prints its RunSummary as one JSON line so the parent can check it.
_CHILD = """
import dataclasses, json, sys, torch
torch.set_num_threads(1)
from style_pipeline.defs.run import ensure_dagster_home, materialize_partition
ensure_dagster_home()
summary = materialize_partition(sys.argv[1], sys.argv[2], log_level="WARNING")
print("SUMMARY " + json.dumps(dataclasses.asdict(summary)))
sys.exit(0 if summary.success else 3)
"""


@dataclass(frozen=True)
class Roots:
    """One isolated deployment: every path the pipeline writes lives under ``base``."""

    base: Path
    models: Path  # shared tiny-model cache, so each child does not rebuild the models

    @property
    def drop(self) -> Path:
        return self.base / "drop"

    @property
    def storage(self) -> Path:
        return self.base / "storage"

    @property
    def home(self) -> Path:
        return self.base / "dagster_home"

    @property
    def tmp(self) -> Path:
        return self.base / "tmp"

    def create(self, media: Path) -> Roots:
        """Make the folders and copy ``media`` (a tree of dated folders) into the drop."""
        shutil.copytree(media, self.drop, copy_function=shutil.copy2)
        for path in (self.storage, self.home, self.tmp):
            path.mkdir(parents=True, exist_ok=True)
        return self

    def env(self, extra: Mapping[str, str] = {}) -> dict[str, str]:
        env = {
            **os.environ,
            "STYLE_PIPELINE_DROP": str(self.drop),
            "STYLE_PIPELINE_STORAGE": str(self.storage),
            "DAGSTER_HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            # Many small frames and one image per embedding batch: each step writes
            # its outputs one by one over a window long enough to be killed inside.
            "STYLE_PIPELINE_FRAMES__MODE": "interval",
            "STYLE_PIPELINE_FRAMES__INTERVAL_S": "0.2",
            "STYLE_PIPELINE_CURATION__EMBEDDINGS__BATCH_SIZE": "1",
        }
        env.update({f"STYLE_PIPELINE_{k}": v for k, v in TINY_ENV.items()})
        env["STYLE_PIPELINE_CURATION__CLIP__CACHE_DIR"] = str(self.models)
        env.update(extra)
        return env

    def start(self, day: str, select: str, extra: Mapping[str, str] = {}) -> subprocess.Popen:
        """A child process materializing ``select`` for ``day`` (stdout/stderr piped)."""
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD, day, select],
            cwd=PROJECT_ROOT,
            env=self.env(extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, day: str, select: str, timeout: float = 120) -> str:
        """Materialize to completion; returns the child's output, fails on a failed run."""
        proc = self.start(day, select)
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"child exited {proc.returncode}:\n{out}\n{err[-4000:]}")
        return out

    def table(self, asset: str, day: str) -> pl.DataFrame:
        return pl.read_parquet(io.BytesIO((self.storage / asset / f"{day}.parquet").read_bytes()))

    def files(self, under: Path | None = None) -> list[str]:
        """Every file below ``under`` (default the storage root), relative, sorted."""
        root = under or self.storage
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen, deadline_s: float) -> float:
    """Poll ``condition`` every 5 ms; seconds waited. Fails if the child ends first or too late."""
    started = time.monotonic()
    while not condition():
        if proc.poll() is not None:
            _, err = proc.communicate()
            code = proc.returncode
            raise AssertionError(f"child ended ({code}) before the fault:\n{err[-3000:]}")
        if time.monotonic() - started > deadline_s:
            proc.kill()
            proc.wait()
            raise AssertionError(f"condition not reached within {deadline_s} s")
        time.sleep(0.005)
    return time.monotonic() - started
