"""Character specs: folders are characters, character.yaml optional, one bad folder skipped."""

from __future__ import annotations

import logging

import pytest

from style_pipeline.curation.character_refs import load_specs, read_specs


def _character(root, name, yaml_text=None):
    folder = root / name
    folder.mkdir(parents=True)
    if yaml_text is not None:
        (folder / "character.yaml").write_text(yaml_text)
    return folder


@pytest.fixture
def refs(tmp_path):
    return tmp_path / "characters"


def test_missing_references_dir_has_no_characters(tmp_path):
    assert load_specs(tmp_path / "nope") == {}
    assert read_specs(tmp_path / "nope") == ({}, [])


def test_folders_are_characters_with_optional_yaml(refs):
    _character(refs, "eileen", "trigger_word: eileen_sps\naliases: [astronaut]\nmax_share: 0.5\n")
    _character(refs, "grace")
    _character(refs, ".hidden")
    (refs / "README.txt").write_text("not a character")
    specs = load_specs(refs)
    assert list(specs) == ["eileen", "grace"]
    assert specs["eileen"].trigger == "eileen_sps" and specs["eileen"].aliases == ["astronaut"]
    assert specs["eileen"].max_share == 0.5
    assert specs["grace"].trigger == "grace" and specs["grace"].min_share == 0.0


def test_empty_yaml_means_defaults(refs):
    _character(refs, "eileen", "")
    assert load_specs(refs)["eileen"].trigger == "eileen"


@pytest.mark.parametrize(
    ("name", "yaml_text", "message"),
    [
        ("Bad Name", None, "name"),
        ("unknown_3", None, "unknown_"),
        ("eileen", "trigger_word: [unclosed", "invalid YAML"),
        ("eileen", "- a list\n", "must be a mapping"),
        ("eileen", "min_share: 0.8\nmax_share: 0.2\n", "min_share 0.8 > max_share 0.2"),
        ("eileen", "colour: blue\n", "colour"),
        ("eileen", "name: grace\n", "differs from its folder"),
    ],
)
def test_a_bad_character_is_skipped_and_named(refs, caplog, name, yaml_text, message):
    _character(refs, "good")
    folder = _character(refs, name, yaml_text)
    specs, problems = read_specs(refs)
    assert list(specs) == ["good"]
    [problem] = problems
    assert message in problem.reason and problem.path.startswith(str(folder))
    with caplog.at_level(logging.WARNING):
        assert list(load_specs(refs)) == ["good"]
    assert str(folder) in caplog.text
