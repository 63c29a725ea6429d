"""Settings: YAML file, environment overrides, validation errors."""

import datetime as dt

import pytest
from pydantic import ValidationError

from style_pipeline.settings import DEFAULT_CONFIG, ConfigFileError, load_settings, read_config_file


def test_base_config_is_valid_and_complete(monkeypatch):
    monkeypatch.delenv("STYLE_PIPELINE_START_DATE", raising=False)  # pinned by conftest
    raw = read_config_file(DEFAULT_CONFIG)
    settings = load_settings(DEFAULT_CONFIG)
    assert "start_date" not in raw and settings.start_date is None  # first day with data
    assert settings.frames.mode == raw["frames"]["mode"]


@pytest.mark.parametrize(
    ("env", "value", "attr"),
    [
        ("STYLE_PIPELINE_DROP", "/srv/drop", lambda s: s.drop),
        ("STYLE_PIPELINE_STORAGE", "s3://bucket/prefix", lambda s: s.storage_root()),
        ("STYLE_PIPELINE_FRAMES__MODE", "interval", lambda s: s.frames.mode),
        ("STYLE_PIPELINE_INGEST__MAX_FILE_MB", "12.5", lambda s: s.ingest.max_file_mb),
    ],
)
def test_environment_overrides_file(monkeypatch, env, value, attr):
    monkeypatch.setenv(env, value)
    got = attr(load_settings())
    assert str(got) == value


def test_nested_override_keeps_other_file_values(monkeypatch, tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("frames:\n  interval_s: 7.5\n  mode: scene\n")
    monkeypatch.setenv("STYLE_PIPELINE_FRAMES__MODE", "interval")
    s = load_settings(cfg)
    assert (s.frames.mode, s.frames.interval_s) == ("interval", 7.5)


def test_config_path_from_environment(monkeypatch, tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("start_date: '2024-03-01'\n")
    monkeypatch.setenv("STYLE_PIPELINE_CONFIG", str(cfg))
    monkeypatch.delenv("STYLE_PIPELINE_START_DATE", raising=False)  # pinned by conftest
    assert load_settings().start_date == dt.date(2024, 3, 1)


def test_local_storage_is_made_absolute(monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_STORAGE", "data/storage")
    root = load_settings().storage_root()
    assert root.startswith("/") and root.endswith("data/storage")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("frames:\n  mode: sideways\n", "mode"),
        ("frames:\n  scene_threshold: 2\n", "scene_threshold"),
        ("unknown_key: 1\n", "unknown_key"),
        ("ingest:\n  max_file_mb: -1\n", "max_file_mb"),
    ],
)
def test_invalid_config_names_the_field(tmp_path, yaml_text, message):
    cfg = tmp_path / "bad.yml"
    cfg.write_text(yaml_text)
    with pytest.raises(ValidationError, match=message):
        load_settings(cfg)


def test_missing_or_non_mapping_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_settings(tmp_path / "nope.yml")
    bad = tmp_path / "list.yml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_settings(bad)


def test_settings_import_no_model_library():
    """Settings, contracts, storage and the media code are light: no model library loads."""
    import subprocess
    import sys

    code = (
        "import sys, style_pipeline.settings, style_pipeline.contracts.curation, "
        "style_pipeline.contracts.training, style_pipeline.contracts.captioning, "
        "style_pipeline.storage.store, style_pipeline.media.ingest, "
        "style_pipeline.media.frames, style_pipeline.media.hotfolder;"
        "heavy = {'torch', 'transformers', 'diffusers', 'open_clip', 'faiss', 'hdbscan', "
        "'peft', 'cv2', 'polars'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_nested_environment_override(monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_FRAMES__INTERVAL_S", "3.5")
    assert load_settings().frames.interval_s == 3.5


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    bad = tmp_path / "broken.yml"
    bad.write_text("frames:\n  mode: scene\n  interval_s: [1,\nsensor: {}\n")
    with pytest.raises(ConfigFileError, match=r"broken\.yml, line \d+ column \d+: invalid YAML"):
        load_settings(bad)
