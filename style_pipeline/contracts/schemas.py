"""JSON Schemas of every contract: asset records, documents and config sections.

``python -m style_pipeline.contracts`` writes them to ``contracts/schemas/``; a test keeps
the committed files current.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from style_pipeline.contracts import (
    alignment,
    caption_checks,
    captioning,
    captioning_vlm,
    characters,
    chat,
    curation,
    ingest,
    llm,
    media,
    models,
    orchestration,
    remote_training,
    retention,
    serving,
    speech,
    themes,
    training,
)

SCHEMA_DIR = Path(__file__).parent / "schemas"


def export_json_schemas(models: Iterable[type[BaseModel]], out_dir: Path) -> list[Path]:
    """Write ``<Model>.schema.json`` for each model; returns the written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for model in models:
        path = out_dir / f"{model.__name__}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def _public_models() -> list[type[BaseModel]]:
    """Every pydantic model defined in a contracts module, in module then name order."""
    found: list[type[BaseModel]] = []
    for module in (
        media,
        ingest,
        models,
        curation,
        captioning,
        captioning_vlm,
        caption_checks,
        training,
        serving,
        themes,
        orchestration,
        retention,
        characters,
        remote_training,
        llm,
        alignment,
        chat,
        speech,
    ):
        for name in sorted(vars(module)):
            value = getattr(module, name)
            if (
                isinstance(value, type)
                and issubclass(value, BaseModel)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found.append(value)
    return found


ALL_MODELS = _public_models()
