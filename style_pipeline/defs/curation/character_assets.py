"""Curation group: ``faces`` (every face of every frame, with its descriptor) and what is
built on it.

Wiring and reporting only: the stages are imported inside each asset, so loading the code
location imports neither dlib nor OpenCV.
"""

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from style_pipeline.defs.curation.assets import CURATION
from style_pipeline.defs.metadata import sample_table, table_metadata
from style_pipeline.defs.resources import SettingsResource, StorageResource

if TYPE_CHECKING:
    from style_pipeline.curation.character_refs import RejectedReference, SpecProblem
    from style_pipeline.stages.characters import UnknownGroup

FACE_COLUMNS = ["frame_id", "face_index", "x0", "y0", "x1", "y1", "detector_score", "blur"]


@dg.asset(**CURATION, kinds={"dlib", "opencv", "parquet"})
def faces(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    frames: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """Every face per frame: box, landmarks, detector score, blur, 128-d descriptor (cached)."""
    from style_pipeline.stages.faces import empty_faces_table, find_partition_faces

    started = time.perf_counter()
    everything = settings.load()
    cfg = everything.characters
    if not cfg.enabled:
        table = empty_faces_table()
        context.log.info("characters.enabled is false: no faces are looked for")
        return dg.Output(
            table,
            metadata={
                **table_metadata(table),
                "reason": "characters.enabled is false",
                "frames": frames.height,
            },
        )
    table, facts = find_partition_faces(
        frames,
        storage.store(),
        cfg,
        everything.curation.quality.faces,
        workers=cfg.workers,
        log=context.log.info,
    )
    if facts.fallback_reason:
        context.log.warning(f"FACES FELL BACK TO OPENCV: {facts.fallback_reason}")
    for key in facts.unreadable:
        context.log.warning(f"unreadable face cache entry {key}: recomputed and rewritten")
    return dg.Output(
        table,
        metadata={
            **table_metadata(table),
            **facts.models,
            "fallback_reason": facts.fallback_reason,
            "frames": facts.frames,
            "frames_with_faces": facts.frames_with_faces,
            "faces": facts.faces,
            "embedded": facts.embedded,
            "computed": facts.computed,
            "cached": facts.cached,
            "cache_rewritten": len(facts.unreadable),
            "workers": facts.workers,
            "scan_seconds": round(facts.scan_seconds, 3),
            "frames_per_s": round(facts.frames_per_s, 2),
            "faces_per_s": round(facts.faces_per_s, 2),
            "seconds": round(time.perf_counter() - started, 3),
            "sample": sample_table(table, FACE_COLUMNS),
        },
    )


CHARACTER_COLUMNS = ["frame_id", "face_index", "label", "matched", "distance", "margin",
                     "confidence"]  # fmt: skip


def matched_markdown(matched: dict[str, int], references: dict[str, int]) -> str:
    """One row per character: faces matched and usable reference photos."""
    if not matched:
        return "_no characters: add photos to a folder per character under the references dir_"
    lines = ["| character | faces matched | reference photos |", "|---|---|---|"]
    lines += [f"| {name} | {n} | {references.get(name, 0)} |" for name, n in matched.items()]
    return "\n".join(lines)


def unknown_markdown(
    groups: "Sequence[UnknownGroup]", sheet_url: str | None, store_path: Callable[[str], object]
) -> str:
    """The unknown groups' crops (one picture) and where each crop is stored."""
    if not groups:
        return "_no unknown groups_"
    lines = [f"![unknown groups]({sheet_url})", ""] if sheet_url else []
    lines += ["| group | faces | representative frame | crop |", "|---|---|---|---|"]
    for g in groups:
        where = f"`{store_path(g.crop_key)}`" if g.crop_key else "_frame unreadable_"
        lines.append(f"| {g.label} | {g.faces} | `{g.frame_id[:8]}` #{g.face_index} | {where} |")
    lines += ["", "Name a group: copy its crop into the references dir as `<name>/` and re-run."]
    return "\n".join(lines)


def rejected_markdown(
    rejected: "Sequence[RejectedReference]", problems: "Sequence[SpecProblem]"
) -> str:
    """Reference photos that gave no descriptor and character folders skipped, by name."""
    if not rejected and not problems:
        return "_none_"
    lines = ["| file | reason | detail |", "|---|---|---|"]
    lines += [f"| `{r.file}` | {r.reason} | {r.detail.replace('|', '/')} |" for r in rejected]
    lines += [
        f"| `{p.path}` | invalid character | {p.reason.replace('|', '/')} |" for p in problems
    ]
    return "\n".join(lines)


@dg.asset(**CURATION, kinds={"dlib", "hdbscan", "parquet"})
def characters(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    frames: pl.DataFrame,
    faces: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """A label per face: a reference character, an unknown_<n> group (with a crop), or none."""
    from style_pipeline.defs.metadata import picture_url
    from style_pipeline.paths import resolve_local
    from style_pipeline.stages.characters import characters_partition, empty_characters_table

    started = time.perf_counter()
    everything = settings.load()
    cfg = everything.characters
    if not cfg.enabled:
        table = empty_characters_table()
        context.log.info("characters.enabled is false: no face is named")
        return dg.Output(
            table, metadata={**table_metadata(table), "reason": "characters.enabled is false"}
        )
    store = storage.store()
    references_dir = resolve_local(cfg.references_dir)
    table, facts = characters_partition(
        faces,
        frames,
        store,
        cfg,
        references_dir,
        context.partition_key,
        opencv=everything.curation.quality.faces,
        sheet=everything.pictures.enabled,
    )
    for problem in facts.problems:
        context.log.warning(f"character skipped: {problem.path}: {problem.reason}")
    for item in facts.rejected:
        context.log.warning(f"reference {item.file} rejected ({item.reason}): {item.detail}")
    for note in facts.notes:
        context.log.warning(note)
    sheet_url = None
    if facts.sheet_key:
        sheet_url = picture_url(everything.serving.base_url(), facts.sheet_key)
    return dg.Output(
        table,
        metadata={
            **table_metadata(table),
            "references_dir": dg.MetadataValue.path(str(references_dir)),
            "faces": facts.faces,
            "embedded": facts.embedded,
            "matched": dict(facts.matched),
            "matched_faces": sum(facts.matched.values()),
            "characters": dg.MetadataValue.md(
                matched_markdown(dict(facts.matched), dict(facts.references))
            ),
            "unknown_groups": len(facts.unknown),
            "unknown": dg.MetadataValue.md(
                unknown_markdown(facts.unknown, sheet_url, lambda key: store.path(key))
            ),
            "unlabelled": facts.unlabelled,
            "rejected_references": len(facts.rejected),
            "rejected": dg.MetadataValue.md(rejected_markdown(facts.rejected, facts.problems)),
            "notes": "; ".join(facts.notes),
            "timings": dict(facts.timings),
            "seconds": round(time.perf_counter() - started, 3),
            "sample": sample_table(table, CHARACTER_COLUMNS),
        },
    )
