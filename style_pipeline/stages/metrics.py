"""Stage ``metrics``: samples of the day's LoRA at fixed prompts and seeds, scored (CLIP,
brand, aesthetic proxy, FID) and compared with the previous run."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl
from PIL import Image

from style_pipeline.contracts.models import ModelConfig
from style_pipeline.contracts.orchestration import PictureSettings
from style_pipeline.contracts.training import (
    LoraWeightsDocument,
    MetricsDocument,
    RewardModelDocument,
    SampleRef,
    TrainingSettings,
)
from style_pipeline.models import load_model
from style_pipeline.models.diffusion import load_pipeline
from style_pipeline.stages import FactValue
from style_pipeline.stages.reports import sample_grid_picture
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.evaluation import compare, generate_samples, regressions, score_samples
from style_pipeline.training.lora_models import WEIGHT_NAME
from style_pipeline.training.reward import load_reward_model


def evaluate_lora(
    lora_weights: Mapping,
    reward_model: Mapping,
    curated: pl.DataFrame,
    store: Store,
    partition: str,
    clip: ModelConfig,
    settings: TrainingSettings,
    trigger_word: str,
    log: Callable[[str], None],
    pictures: PictureSettings | None = None,
) -> tuple[MetricsDocument, dict[str, FactValue]]:
    """Generate fixed prompts/seeds with the LoRA, score them and compare with the previous run.

    ``lora_weights`` and ``reward_model`` are the upstream documents as loaded (dicts).
    Every sample is saved under ``metrics/<date>/samples/``; with ``pictures`` enabled, a
    prompt x seed grid too (and the compared run's grid is named beside it).
    """
    lora = LoraWeightsDocument.model_validate(lora_weights)
    reward = RewardModelDocument.model_validate(reward_model)
    config = settings.evaluation.model_copy(
        update={
            "prompts": tuple(_with_trigger(p, trigger_word) for p in settings.evaluation.prompts)
        }
    )
    pipe = load_pipeline(lora.model_path)
    with tempfile.TemporaryDirectory(prefix="lora_eval_") as tmp:
        lora_dir = Path(tmp)
        weights = store.read_bytes(layout.lora_version_file(lora.version, WEIGHT_NAME))
        (lora_dir / WEIGHT_NAME).write_bytes(weights)
        # FLUX's T5 reads as many tokens as it was trained with (the pipeline's 512 else).
        max_length = lora.config.get("max_sequence_length") if lora.family == "flux" else None
        samples = generate_samples(pipe, lora_dir, config, max_length)
    kept = curated.filter(pl.col("keep")).sort("frame_id").head(settings.reference_images)
    with store.local_copies(kept["path"].to_list()) as local:
        reference = [_rgb(local[p]) for p in kept["path"]]
    brand = load_reward_model(store, partition) if reward.trained else None
    metrics = score_samples(samples, reference, load_model(clip), brand)
    previous = previous_metrics(store, partition)
    flags = compare(metrics, previous["metrics"] if previous else None)
    refs = []
    order = {prompt: n for n, prompt in enumerate(dict.fromkeys(s.prompt for s in samples))}
    for sample in samples:
        name = f"p{order[sample.prompt]:02d}-{_slug(sample.prompt)}-s{sample.seed}.png"
        key = layout.metrics_sample_key(partition, name)
        store.put_bytes(_png(sample.image), key)
        refs.append(SampleRef(prompt=sample.prompt, seed=sample.seed, key=key))
    grid = previous_grid = None
    if pictures is not None and pictures.enabled and samples:
        title = f"{lora.version} ({partition})"
        cells = [(s.prompt, s.seed, s.image) for s in samples]
        grid = sample_grid_picture(cells, title, store, partition, pictures)
        if previous:
            earlier = layout.report_key(layout.METRICS, previous["partition"], "grid.jpg")
            previous_grid = earlier if store.exists(earlier) else None
    log(f"metrics {json.dumps({k: v for k, v in metrics.items() if isinstance(v, float)})}")
    document = MetricsDocument(
        lora_version=lora.version,
        metrics=metrics,
        previous_partition=previous["partition"] if previous else None,
        regressions=regressions(flags),
        compared=[f.metric for f in flags],
        samples=refs,
        grid=grid,
        previous_grid=previous_grid,
    )
    numbers = {k: v for k, v in document.metrics.items() if isinstance(v, int | float)}
    facts: dict[str, FactValue] = {
        **numbers,
        "fid_feature": str(document.metrics.get("fid_feature", "")),
        "previous_partition": document.previous_partition or "-",
        "regressions": len(document.regressions),
        "samples": len(refs),
    }
    return document, facts


def latest_curated(store: Store, partition: str) -> tuple[str, pl.DataFrame]:
    """The newest stored ``curated_frames`` table on or before ``partition``, and its day:
    the evaluation's reference images on a quiet day (``FileNotFoundError``: none)."""
    days = _stored_days(store, layout.CURATED_FRAMES, ".parquet", partition, inclusive=True)
    if not days:
        raise FileNotFoundError(f"no curated_frames table on or before {partition}")
    data = store.read_bytes(layout.table_key(layout.CURATED_FRAMES, days[-1]))
    return days[-1], pl.read_parquet(io.BytesIO(data))


def previous_metrics(store: Store, partition: str) -> dict | None:
    """The newest ``metrics/<date>.json`` strictly before ``partition`` (None: first run)."""
    earlier = _stored_days(store, layout.METRICS, ".json", partition, inclusive=False)
    if not earlier:
        return None
    document = store.read_bytes(layout.document_key(layout.METRICS, earlier[-1]))
    return {"partition": earlier[-1], **json.loads(document)}


def _stored_days(
    store: Store, asset: str, suffix: str, until: str, *, inclusive: bool
) -> list[str]:
    """Sorted days of ``asset``'s stored ``<day><suffix>`` files up to ``until``."""
    return sorted(
        day
        for key in store.list(asset)
        if key.endswith(suffix)
        and (day := layout.partition_of(key, asset)) is not None
        and (day <= until if inclusive else day < until)
    )


def _with_trigger(prompt: str, trigger: str) -> str:
    return prompt if trigger in prompt else f"{trigger}, {prompt}"


def _slug(text: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in text.lower())[:40]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")
