"""Themes: the shipped default validates; errors name the file and the field; hash is stable."""

from __future__ import annotations

import pytest
import yaml

from style_pipeline.curation.themes import ThemeError, load_theme, theme_path
from style_pipeline.paths import PROJECT_ROOT


def test_default_theme_is_valid_and_hash_is_stable():
    theme = load_theme("default", "data/themes")
    assert theme.name == "default" and [r.name for r in theme.roles][0] == "opener"
    assert theme.theme_hash() == load_theme("default", "data/themes").theme_hash()
    assert len(theme.theme_hash()) == 64


def test_a_path_is_taken_as_is(tmp_path):
    assert theme_path("x/brand.yaml", "data/themes").name == "brand.yaml"
    assert theme_path("brand", "data/themes") == PROJECT_ROOT / "data/themes/brand.yaml"


def _write(tmp_path, **changes) -> str:
    data = yaml.safe_load((PROJECT_ROOT / "data/themes/default.yaml").read_text())
    data.update(changes)
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"roles": [{"name": "opener", "quota": -1}]}, r"roles\.0\.quota"),
        ({"roles": [{"name": "a", "quota": 1}, {"name": "a", "quota": 2}]}, "duplicate role"),
        ({"axis_emphasis": {"mood": 1.0}}, r"axis_emphasis\.mood: no such axis"),
        ({"axes": {"palette": [{"value": "warm", "prompts": ["x"]}]}}, "palette is measured"),
        ({"rubric": {"q_tech": 0, "aesthetic": 0, "vibe": 0, "typography": 0,
                     "composition": 0}}, "at least one weight"),
        ({"version": "one"}, r"version"),
        ({"vibe_prompts": []}, r"vibe_prompts"),
    ],
)  # fmt: skip
def test_invalid_theme_names_the_file_and_field(tmp_path, changes, message):
    path = _write(tmp_path, **changes)
    with pytest.raises(ThemeError, match=message) as info:
        load_theme(path, "data/themes")
    assert "t.yaml" in str(info.value)


def test_missing_theme_names_the_path():
    with pytest.raises(ThemeError, match="theme file not found: .*nope.yaml"):
        load_theme("nope", "data/themes")
