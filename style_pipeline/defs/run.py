"""Run assets through the Dagster instance from Python (used by the CLI and the demo)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from style_pipeline.paths import PROJECT_ROOT

DEFAULT_DAGSTER_HOME = PROJECT_ROOT / ".dagster"


def ensure_dagster_home() -> Path:
    """``DAGSTER_HOME`` (default ``.dagster/``), holding a copy of the project dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    template = PROJECT_ROOT / "dagster.yaml"
    target = home / "dagster.yaml"
    if template.is_file() and template.resolve() != target.resolve():
        if not target.exists() or target.read_bytes() != template.read_bytes():
            shutil.copyfile(template, target)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def load_defs() -> dg.Definitions:
    from style_pipeline.definitions import defs

    return defs() if callable(defs) else defs


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    success: bool
    partition_key: str
    materialized: list[str]
    failed_steps: list[str]


def materialize_partition(
    partition_key: str,
    select: str = "*",
    instance: dg.DagsterInstance | None = None,
    log_level: str = "INFO",
) -> RunSummary:
    """Materialize the assets matching ``select`` (Dagster selection syntax) for one date."""
    defs = load_defs()
    selection = dg.AssetSelection.from_string(select)
    if defs.assets is None:
        raise RuntimeError("the loaded definitions have no assets")
    assets: list[dg.AssetsDefinition | dg.AssetSpec | dg.SourceAsset] = []
    for item in [*defs.assets, *(defs.asset_checks or [])]:
        if not isinstance(item, dg.AssetsDefinition | dg.AssetSpec | dg.SourceAsset):
            raise TypeError(f"cannot materialize {type(item).__name__} {item!r}")
        assets.append(item)
    instance = instance or dg.DagsterInstance.get()
    result = dg.materialize(
        assets,
        instance=instance,
        resources=defs.resources,
        partition_key=partition_key,
        selection=selection,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        raise_on_error=False,
        tags={"style_pipeline/trigger": "cli"},
    )
    materialized = []
    for event in result.get_asset_materialization_events():
        if event.asset_key is None:  # a materialization event always names its asset
            raise RuntimeError(f"materialization event without an asset key: {event}")
        materialized.append(event.asset_key.to_user_string())
    materialized.sort()
    failed = [e.step_key for e in result.all_events if e.is_step_failure and e.step_key]
    return RunSummary(result.run_id, result.success, partition_key, materialized, failed)


def materialized_partitions(instance: dg.DagsterInstance | None = None) -> dict[str, set[str]]:
    """``{asset_key: {partition, ...}}`` of what has been materialized."""
    instance = instance or dg.DagsterInstance.get()
    out = {}
    for key in load_defs().resolve_all_asset_keys():
        out[key.to_user_string()] = set(instance.get_materialized_partitions(key))
    return out
