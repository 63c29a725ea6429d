"""Build the training folder from curated frames and their captions.

Layout under ``training_dataset/<partition>/`` (deterministic names, no timestamps)::

    <repeats>_<concept>/<frame>.jpg   image, bytes copied unchanged
    <repeats>_<concept>/<frame>.txt   its caption (one line, UTF-8)
    <repeats>_<concept>/<frame>.mask.png  its loss mask (masks: faces, frames with faces only)
    reg/<repeats>_<class>/<name>.png  regularization images + .txt (regularization.py)
    metadata.jsonl                    Hugging Face imagefolder: file_name + text (+ bucket)
    manifest.json                     sha256 of every file, buckets, the bucket report of
                                      every image, skipped items (written last)

With ``layout: per_character`` each character the captions name has its own
``<repeats>_<character>/`` folder, repeats balancing the characters
(:mod:`style_pipeline.training.concepts`), and every ``metadata.jsonl`` row also carries its
``concept`` and ``repeats``: our trainer repeats such a row ``repeats`` times per epoch, as
kohya does its folder. One ``metadata.jsonl`` at the top still lists every image once.

A row also carries ``concept`` and ``repeats`` when its folder repeats more than once
(``concept_repeats``), ``mask`` when it has one and ``is_reg: true`` for a regularization
image. No image is lost to bucketing: every row keeps its bucket, and the loop's batches
(``data.epoch_batches``) keep a bucket's last, short batch; the manifest's ``images``
table lists every image with its size, bucket, repeats and concept.

kohya sd-scripts reads ``--train_data_dir <partition>`` (DreamBooth-style ``N_concept``
subfolders, ``--caption_extension .txt``); the diffusers LoRA scripts read
``--train_data_dir <partition>`` through ``metadata.jsonl``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from style_pipeline.contracts.training import DatasetBuildConfig, RegularizationSettings
from style_pipeline.storage import layout
from style_pipeline.storage.inventory import delete_keys, list_files
from style_pipeline.storage.store import Store
from style_pipeline.training.buckets import bucket_name, make_buckets, select_bucket
from style_pipeline.training.concepts import Concept, plan_concepts
from style_pipeline.training.masks import MASK_SUFFIX, Box, mask_png
from style_pipeline.training.regularization import REG_DIR, RegImage

MANIFEST_FORMAT = "style_pipeline.training_dataset/1"
MANIFEST_NAME = "manifest.json"
FORMAT_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class DatasetItem:
    """One training example: an absolute local path or a store key, its caption, its frame id,
    the characters its caption names (largest face first) and the boxes (face or subject,
    image pixels) its loss mask is drawn from."""

    source: str
    caption: str
    frame_id: str
    characters: tuple[str, ...] = ()
    boxes: tuple[Box, ...] = ()


@dataclass
class DatasetBuildResult:
    prefix: str
    manifest: dict
    skipped: list[dict] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # stale files of an earlier build

    @property
    def dataset_hash(self) -> str:
        return self.manifest["dataset_hash"]


def safe_stem(frame_id: str) -> str:
    """A file stem for ``frame_id``: unsafe characters become ``_`` (max 120 chars)."""
    stem = _UNSAFE.sub("_", frame_id).strip("._-")[:120]
    if not stem:
        raise ValueError(f"frame id {frame_id!r} gives an empty file name")
    return stem


def clean_caption(caption: str) -> str:
    """One line: whitespace runs collapsed, ends stripped."""
    return " ".join(caption.split())


def _read_source(store: Store, source: str) -> bytes:
    if os.path.isabs(source):
        return Path(source).read_bytes()
    return store.read_bytes(source)


def _inspect_image(data: bytes) -> tuple[str, int, int]:
    """(extension, width, height) of an encoded JPEG/PNG/WebP; ValueError for anything else."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format, image.size
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"unreadable image: {exc}") from exc
    if fmt not in FORMAT_EXTENSIONS:
        raise ValueError(f"unsupported image format {fmt}; expected JPEG, PNG or WebP")
    return FORMAT_EXTENSIONS[fmt], width, height


def _as_item(item: DatasetItem | tuple[str, str, str]) -> DatasetItem:
    return item if isinstance(item, DatasetItem) else DatasetItem(*item)


def build_training_dataset(
    items: Iterable[DatasetItem | tuple[str, str, str]],
    store: Store,
    partition: str,
    config: DatasetBuildConfig | None = None,
    regularization: Sequence[RegImage] = (),
    reg_settings: RegularizationSettings | None = None,
) -> DatasetBuildResult:
    """Write the training folder for ``partition``; unreadable items are skipped with a reason.

    ``regularization`` images go to ``reg/<repeats>_<class_name>/`` of ``reg_settings``.

    Items are processed in ``frame_id`` order, so the same inputs give byte-identical files.
    Raises ``ValueError`` for duplicate frame ids, file-name collisions or when nothing is left.
    Per-character repeats count the items with a caption (an unreadable image among them,
    skipped later, still counts: frames are our own JPEGs, so that is rare).
    """
    config = config or DatasetBuildConfig()
    prefix = layout.partition_dir(layout.TRAINING_DATASET, partition)
    buckets = make_buckets(config.resolution, config.bucket_step)
    ordered = sorted((_as_item(i) for i in items), key=lambda i: i.frame_id)
    ids = Counter(i.frame_id for i in ordered)
    if dupes := sorted(k for k, n in ids.items() if n > 1):
        raise ValueError(f"duplicate frame ids: {dupes[:5]}")
    stems = Counter(safe_stem(i.frame_id) for i in ordered)
    if clashes := sorted(k for k, n in stems.items() if n > 1):
        raise ValueError(f"frame ids collide after sanitising into file names: {clashes[:5]}")

    files: list[dict] = []
    records: list[dict] = []
    skipped: list[dict] = []
    captioned = [i for i in ordered if clean_caption(i.caption)]
    concepts = plan_concepts(((i.frame_id, i.characters) for i in captioned), config)
    for item in ordered:
        caption = clean_caption(item.caption)
        if not caption:
            skipped.append({"frame_id": item.frame_id, "reason": "empty_caption"})
            continue
        concept = concepts[item.frame_id]
        try:
            data = _read_source(store, item.source)
            ext, width, height = _inspect_image(data)
        except (OSError, ValueError) as exc:
            skipped.append({"frame_id": item.frame_id, "reason": f"bad_image: {exc}"})
            continue
        stem = safe_stem(item.frame_id)
        image_rel = f"{concept.folder}/{stem}{ext}"
        text_rel = f"{concept.folder}/{stem}.txt"
        text = (caption + "\n").encode()
        store.put_bytes(data, layout.training_dataset_file(partition, image_rel))
        store.put_bytes(text, layout.training_dataset_file(partition, text_rel))
        files += [_file_entry(image_rel, data), _file_entry(text_rel, text)]
        mask: dict = {}
        if config.masks != "none" and item.boxes:
            mask_rel = f"{concept.folder}/{stem}{MASK_SUFFIX}"
            mask_bytes = mask_png(width, height, item.boxes, config.mask_padding)
            store.put_bytes(mask_bytes, layout.training_dataset_file(partition, mask_rel))
            files.append(_file_entry(mask_rel, mask_bytes))
            mask = {"mask": mask_rel}
        bucket = select_bucket(width, height, buckets)
        records.append(
            {
                "file_name": image_rel,
                "text": caption,
                "frame_id": item.frame_id,
                "width": width,
                "height": height,
                "bucket_width": bucket[0],
                "bucket_height": bucket[1],
                **_concept_fields(concept, config),
                **mask,
            }
        )
    if not records:
        raise ValueError(f"no usable training images for {partition}: {skipped[:3]}")
    reg_settings = reg_settings or RegularizationSettings()
    if regularization:
        records += _write_regularization(
            regularization, reg_settings, store, partition, buckets, files
        )

    metadata = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    metadata_bytes = metadata.encode()
    store.put_bytes(metadata_bytes, layout.training_dataset_file(partition, "metadata.jsonl"))
    files.append(_file_entry("metadata.jsonl", metadata_bytes))
    manifest = {
        "format": MANIFEST_FORMAT,
        "partition": partition,
        "config": config.model_dump(mode="json"),
        "image_dir": config.image_dir,
        "count": len(records),
        "dataset_hash": dataset_hash(files),
        "buckets": dict(sorted(Counter(_bucket_of(r) for r in records).items())),
        "layout": config.layout,
        "concepts": concept_summary(records),
        "images": bucket_report(records),
        "bucket_examples": bucket_examples(records),
        "regularization": {
            "count": sum(1 for r in records if r.get("is_reg")),
            **(reg_settings.model_dump(mode="json") if regularization else {}),
        },
        "masks": sum(1 for r in records if r.get("mask")),
        "files": files,
        "skipped": skipped,
    }
    store.put_bytes(json.dumps(manifest, indent=1).encode(), manifest_key(partition))
    removed = remove_stale_files(store, prefix, {f["path"] for f in files} | {MANIFEST_NAME})
    return DatasetBuildResult(prefix=prefix, manifest=manifest, skipped=skipped, removed=removed)


def remove_stale_files(store: Store, prefix: str, keep: set[str]) -> list[str]:
    """Delete the files under ``prefix`` that this build did not write (an earlier build's:
    another layout, other repeats, a frame no longer captioned), so that kohya, which reads
    the folders rather than the manifest, sees this build only; their keys, sorted."""
    stale = [f.key for f in list_files(store, prefix) if f.key[len(prefix) + 1 :] not in keep]
    delete_keys(store, stale)
    return stale


def _write_regularization(
    images: Sequence[RegImage],
    settings: RegularizationSettings,
    store: Store,
    partition: str,
    buckets: list,
    files: list[dict],
) -> list[dict]:
    """Write the regularization images and captions; their ``metadata.jsonl`` rows."""
    folder = f"{REG_DIR}/{settings.repeats}_{settings.class_name}"
    stems = Counter(safe_stem(i.stem) for i in images)
    if clashes := sorted(k for k, n in stems.items() if n > 1):
        raise ValueError(f"regularization images collide after sanitising: {clashes[:5]}")
    rows = []
    for image in sorted(images, key=lambda i: safe_stem(i.stem)):
        ext, width, height = _inspect_image(image.data)
        stem = safe_stem(image.stem)
        image_rel, text_rel = f"{folder}/{stem}{ext}", f"{folder}/{stem}.txt"
        caption = clean_caption(image.caption)
        text = (caption + "\n").encode()
        store.put_bytes(image.data, layout.training_dataset_file(partition, image_rel))
        store.put_bytes(text, layout.training_dataset_file(partition, text_rel))
        files += [_file_entry(image_rel, image.data), _file_entry(text_rel, text)]
        bucket = select_bucket(width, height, buckets)
        rows.append(
            {
                "file_name": image_rel,
                "text": caption,
                "frame_id": f"{REG_DIR}/{stem}",
                "width": width,
                "height": height,
                "bucket_width": bucket[0],
                "bucket_height": bucket[1],
                "concept": settings.class_name,
                "repeats": settings.repeats,
                "is_reg": True,
            }
        )
    return rows


def _concept_fields(concept: Concept, config: DatasetBuildConfig) -> dict:
    """The ``metadata.jsonl`` fields of the concept: per_character always; flat only when its
    folder repeats (flat rows of 1 repeat, and so their dataset hashes, are unchanged)."""
    if config.layout == "flat" and concept.repeats == 1:
        return {}
    return {"concept": concept.name, "repeats": concept.repeats}


def _folder_of(record: dict) -> str:
    return record["file_name"].rsplit("/", 1)[0]


def concept_summary(records: list[dict]) -> dict[str, int]:
    """Images per concept folder, by folder name (``reg/<repeats>_<class>`` included)."""
    return dict(sorted(Counter(_folder_of(r) for r in records).items()))


def bucket_report(records: list[dict]) -> list[dict]:
    """Every image and where it trains: file, size, bucket, repeats, concept (+ reg, mask)."""
    return [
        {
            "file": r["file_name"],
            "size": f"{r['width']}x{r['height']}",
            "bucket": _bucket_of(r),
            "repeats": int(r.get("repeats", 1)),
            "concept": r.get("concept") or _folder_of(r).split("_", 1)[-1],
            "is_reg": bool(r.get("is_reg", False)),
            "mask": bool(r.get("mask")),
        }
        for r in records
    ]


def bucket_examples(records: list[dict]) -> dict[str, int]:
    """Examples per bucket and epoch (images x repeats): what the loop batches per bucket."""
    counts: Counter[str] = Counter()
    for r in records:
        counts[_bucket_of(r)] += int(r.get("repeats", 1))
    return dict(sorted(counts.items()))


def _bucket_of(record: dict) -> str:
    return bucket_name((record["bucket_width"], record["bucket_height"]))


def _file_entry(rel: str, data: bytes) -> dict:
    return {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def dataset_hash(files: list[dict]) -> str:
    """sha256 over the sorted ``path sha256`` lines of the dataset's files."""
    lines = sorted(f"{f['path']} {f['sha256']}" for f in files)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def manifest_key(partition: str) -> str:
    """Store key of the manifest of ``partition``'s training folder."""
    return layout.training_dataset_file(partition, MANIFEST_NAME)


def read_manifest(store: Store, partition: str) -> dict:
    key = manifest_key(partition)
    if not store.exists(key):
        raise FileNotFoundError(f"no training dataset manifest at {key}")
    return json.loads(store.read_bytes(key))


def download_dataset(store: Store, partition: str, dest: Path) -> Path:
    """Copy the folder of ``partition`` to local ``dest`` and check every sha256 on the way."""
    manifest = read_manifest(store, partition)
    dest.mkdir(parents=True, exist_ok=True)
    for entry in manifest["files"]:
        data = store.read_bytes(layout.training_dataset_file(partition, entry["path"]))
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ValueError(f"{entry['path']}: sha256 differs from the manifest")
        target = dest / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (dest / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))
    return dest
