"""Load the theme in force: ``curation.theme`` names ``<themes_dir>/<name>.yaml`` or a path.

Errors name the file and the field (``roles.0.quota: ...``), never a bare pydantic dump.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from style_pipeline.contracts.themes import Theme
from style_pipeline.paths import resolve_local


class ThemeError(ValueError):
    """The theme file is missing or invalid; the message names the file and the fields."""


def theme_path(theme: str, themes_dir: str) -> Path:
    """``theme`` as a YAML path when it looks like one, else ``<themes_dir>/<theme>.yaml``."""
    if theme.endswith((".yaml", ".yml")) or "/" in theme:
        return resolve_local(theme)
    return resolve_local(themes_dir) / f"{theme}.yaml"


def load_theme(theme: str, themes_dir: str) -> Theme:
    """The validated theme; ``ThemeError`` naming the file and every bad field."""
    path = theme_path(theme, themes_dir)
    if not path.is_file():
        raise ThemeError(f"theme file not found: {path} (curation.theme = {theme!r})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ThemeError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ThemeError(f"{path}: a theme must be a mapping, got {type(data).__name__}")
    try:
        return Theme.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ThemeError(f"{path}: {problems}") from None
