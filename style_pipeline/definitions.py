"""The Dagster code location: everything is loaded from ``style_pipeline/defs``.

``warm()`` builds the definitions once and keeps them in ``_WARM``; the forkserver of a
launched run calls it (``style_pipeline.warm_start``, ADR 0006) so every step forked from
it finds its job already resolved instead of loading ``defs/`` again. Anywhere else
``_WARM`` stays None and ``defs()`` loads afresh on each call (tests reload it under
different environments).
"""

from pathlib import Path

import dagster as dg

_WARM: dg.Definitions | None = None


def _load() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


def warm() -> dg.Definitions:
    """Build the definitions once, with their repository (jobs, asset graph) resolved."""
    global _WARM
    if _WARM is None:
        loaded = _load()
        loaded.get_repository_def()  # cached on the object: the forked steps reuse it
        _WARM = loaded
    return _WARM


@dg.definitions
def defs() -> dg.Definitions:
    return _WARM if _WARM is not None else _load()
