"""Old home of the CLIP loader, kept only for importers outside ``models/`` not yet moved.

``defs/curation/assets.py`` (as committed when this was written) still imports
``load_model`` from here; new code imports from ``style_pipeline.models`` (or
``style_pipeline.models.clip``). Delete this module once no importer is left.
"""

from style_pipeline.models.clip import (
    LoadedModel,
    build_tiny,
    load_model,
    load_pretrained,
    load_tiny,
    tiny_dir,
)

__all__ = ["LoadedModel", "build_tiny", "load_model", "load_pretrained", "load_tiny", "tiny_dir"]
