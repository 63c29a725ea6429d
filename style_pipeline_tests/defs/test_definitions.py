"""The code location loads, and every asset is on the one daily partitions definition."""

import dagster as dg
import pytest

from style_pipeline.defs.partitions import DAILY_PARTITIONS
from style_pipeline.defs.run import load_defs

EXPECTED_GROUPS = {
    "raw_media": "ingest",
    "frames": "ingest",
    "quality_scores": "curation",
    "dedup_set": "curation",
    "ontology": "curation",
    "embeddings": "curation",
    "clusters": "curation",
    "faces": "curation",
    "curated_frames": "curation",
    "caption_model": "captioning",
    "captions": "captioning",
    "training_dataset": "training",
    "reward_model": "training",
    "lora_weights": "training",
    "metrics": "training",
    "promoted_lora": "training",
}


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return load_defs()


def test_definitions_validate(defs):
    dg.Definitions.validate_loadable(defs)


def test_every_asset_is_daily_partitioned_and_described(defs):
    specs = defs.resolve_all_asset_specs()
    assert specs
    for spec in specs:
        assert spec.partitions_def == DAILY_PARTITIONS, spec.key
        assert spec.description and "\n" not in spec.description.strip(), spec.key
        assert spec.group_name, spec.key


@pytest.mark.parametrize(("asset", "group"), sorted(EXPECTED_GROUPS.items()))
def test_expected_assets_and_groups(defs, asset, group):
    spec = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}[asset]
    assert spec.group_name == group


def test_sensor_and_resources_are_bound(defs):
    assert defs.resolve_sensor_def("hot_folder_sensor") is not None
    assert {"storage", "drop_folder", "settings", "io_manager"} <= set(defs.resources)


def test_min_curated_check_blocks_downstream(defs):
    checks = {
        spec.name: spec
        for assets_def in defs.assets
        if isinstance(assets_def, dg.AssetsDefinition)
        for spec in assets_def.check_specs
    }
    assert checks["min_curated_count"].blocking is True
    assert {"gate_pass_rate", "duplicate_rate"} <= set(checks)
    assert checks["no_regression"].blocking is True
    assert checks["trained_on_real_weights"].blocking is True


def test_promoted_lora_is_gated_by_metrics_checks_and_runs_nightly(defs):
    """Blocking checks skip what is downstream of their asset: promoted_lora must be."""
    from style_pipeline.defs.jobs import NIGHTLY_SELECTION

    graph = defs.resolve_asset_graph()
    promoted = dg.AssetKey("promoted_lora")
    assert graph.get(promoted).parent_keys == {dg.AssetKey("metrics"), dg.AssetKey("lora_weights")}
    checks = {key.name for key in graph.get(dg.AssetKey("metrics")).check_keys}
    assert checks == {"no_regression", "trained_on_real_weights"}
    assert promoted in NIGHTLY_SELECTION.resolve(graph)


def test_training_runs_in_one_pool(defs):
    lora = defs.get_assets_def("lora_weights")
    assert {spec.pool for spec in [lora.op]} == {"training"}


def test_partitions_are_utc_daily_and_include_today():
    import datetime as dt

    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert DAILY_PARTITIONS.timezone == "UTC"
    assert DAILY_PARTITIONS.has_partition_key(today)


def test_loading_the_code_location_imports_no_model_library():
    """Every run and step subprocess loads the definitions: they must stay light."""
    import subprocess
    import sys

    code = (
        "import sys, style_pipeline.definitions as d;"
        "d.defs().resolve_asset_graph();"
        "heavy = {'torch', 'open_clip', 'transformers', 'diffusers', 'peft', 'hdbscan', "
        "'faiss', 'cv2', 'piq'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


JOB_GROUPS = {
    "ingest_job": {"ingest", "curation"},
    "nightly_training_job": {"captioning", "training"},
    "ingest_group_job": {"ingest"},
    "curation_job": {"curation"},
    "captioning_job": {"captioning"},
    "training_job": {"training"},
    "nightly_llm_job": {"speech", "llm"},
    "speech_job": {"speech"},
    "llm_job": {"llm"},
}


@pytest.mark.parametrize(("job", "groups"), sorted(JOB_GROUPS.items()))
def test_named_jobs_select_their_groups_and_their_checks(defs, job, groups):
    graph = defs.resolve_asset_graph()
    job_def = defs.resolve_job_def(job)
    assert job_def.partitions_def == DAILY_PARTITIONS
    selected = set(job_def.asset_layer.selected_asset_keys)
    expected = {k for k in graph.get_all_asset_keys() if graph.get(k).group_name in groups}
    assert selected == expected
    checks = {c.name for c in job_def.asset_layer.asset_graph.asset_check_keys}
    expected_checks = {c.name for k in expected for c in graph.get(k).check_keys}
    assert expected_checks <= checks


def test_sensor_and_schedule_target_the_named_jobs(defs):
    assert defs.resolve_sensor_def("hot_folder_sensor").job_name == "ingest_job"
    assert defs.resolve_schedule_def("nightly_training").job_name == "nightly_training_job"
    assert defs.resolve_schedule_def("nightly_llm").job_name == "nightly_llm_job"


def _check_specs(defs) -> list[dg.AssetCheckSpec]:
    return [
        spec
        for assets_def in defs.assets
        if isinstance(assets_def, dg.AssetsDefinition)
        for spec in assets_def.check_specs
    ]


def test_every_check_is_described_and_daily_partitioned(defs):
    specs = _check_specs(defs)
    assert len(specs) >= 5
    for spec in specs:
        assert spec.description and len(spec.description) > 20, spec.key
        assert spec.partitions_def == DAILY_PARTITIONS, spec.key


def test_every_asset_has_owners_and_group_domain_tags(defs):
    from style_pipeline.defs.ownership import OWNERSHIP

    for spec in defs.resolve_all_asset_specs():
        group = spec.group_name
        assert spec.owners == list(OWNERSHIP[group].owners), spec.key
        assert spec.tags["group"] == group and spec.tags["domain"] == OWNERSHIP[group].domain


def test_nightly_outputs_have_freshness_policies(defs):
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    for name in ("metrics", "promoted_lora"):
        assert specs[name].freshness_policy is not None, name
