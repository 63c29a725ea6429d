"""What the forkserver of a launched run imports before it forks the run's steps (ADR 0006).

Importing this module imports every module named in ``executor.preload`` (torch,
open_clip, ...) and builds the definitions (``definitions.warm()``), so a step forked
from the server starts with all of that in memory. A module that fails to import, or
definitions that fail to build, cost one line on stderr: the steps then import or load
them themselves and report the real error in the run.

Fork safety: this only imports and builds Python objects. It starts no thread of its own
and touches no CUDA device (both would be broken in the forked children); the idle helper
threads some native libraries start at import are not copied into the children, and
polars' query thread pool is created lazily, on a step's first query, after the fork.

Nothing here may raise: the forkserver ignores an ``ImportError`` of a preload module but
dies of any other error, and with it every step of the run.
"""

from __future__ import annotations

import importlib
import sys

from style_pipeline import definitions
from style_pipeline.settings import load_settings


def _preload(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - the step imports it itself, and fails there
            print(f"style_pipeline.warm_start: skipped preloading {name}: {err!r}", file=sys.stderr)


def _warm_definitions() -> None:
    try:
        definitions.warm()
    except Exception as err:  # noqa: BLE001 - each step loads the definitions and reports it
        print(f"style_pipeline.warm_start: definitions not prebuilt: {err!r}", file=sys.stderr)


def _modules() -> tuple[str, ...]:
    try:
        return load_settings().executor.preload
    except Exception as err:  # noqa: BLE001 - the steps load the settings and report it
        print(
            f"style_pipeline.warm_start: no settings, nothing preloaded: {err!r}", file=sys.stderr
        )
        return ()


_preload(_modules())
_warm_definitions()
