"""LoRA fine-tune of BLIP on seed captions (image + ``.txt`` pairs), versioned in the store.

The decoder learns ``<conditional prompt><seed caption>`` with the prompt tokens masked out
of the loss, so a captioner that prompts the same way continues in the seed vocabulary.
Runs are deterministic on CPU: the LoRA init and the sample order come from the seed.
Each run writes ``caption_model/<version>/`` (PEFT ``adapter_model.safetensors``,
``adapter_config.json``) and ``metadata.json`` last, which marks the version complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from style_pipeline.contracts.captioning import (
    CaptionFinetuneConfig,
)
from style_pipeline.models.blip import LoadedBlip
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.estimates import is_logged_step

METADATA = "metadata.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class SeedPair:
    image: Path
    caption: str


@dataclass(frozen=True)
class FinetuneResult:
    version: str
    key: str
    metadata: dict


def load_seed_pairs(folder: str | Path) -> list[SeedPair]:
    """Image files with a same-stem ``.txt`` caption, sorted by name; raises if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"seed caption folder not found: {folder}")
    pairs = []
    for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        text = image.with_suffix(".txt")
        if not text.is_file():
            continue
        caption = " ".join(text.read_text(encoding="utf-8").split())
        if not caption:
            raise ValueError(f"empty seed caption: {text}")
        pairs.append(SeedPair(image, caption))
    if not pairs:
        raise ValueError(f"no image + .txt pairs in {folder}")
    return pairs


def data_fingerprint(pairs: Sequence[SeedPair]) -> str:
    """sha256 over (file name, image sha256, caption) of every pair."""
    digest = hashlib.sha256()
    for pair in sorted(pairs, key=lambda p: p.image.name):
        image_hash = hashlib.sha256(pair.image.read_bytes()).hexdigest()
        digest.update(json.dumps([pair.image.name, image_hash, pair.caption]).encode())
    return digest.hexdigest()


def _batch(processor, pairs: Sequence[SeedPair], prompt: str, max_length: int, device):
    images = [Image.open(p.image).convert("RGB") for p in pairs]
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    tok = processor.tokenizer
    texts = [prompt + p.caption for p in pairs]
    enc = tok(texts, padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
    input_ids = enc["input_ids"].clone()
    input_ids[:, 0] = tok.bos_token_id  # BLIP's decoder starts from [DEC], as in generate()
    labels = input_ids.masked_fill(enc["attention_mask"] == 0, -100)
    prompt_len = len(tok(prompt)["input_ids"]) - 1 if prompt else 1
    labels[:, :prompt_len] = -100
    return {
        "pixel_values": pixels.to(device),
        "input_ids": input_ids.to(device),
        "attention_mask": enc["attention_mask"].to(device),
        "labels": labels.to(device),
    }


def _order(count: int, steps: int, batch: int, seed: int) -> list[list[int]]:
    """Batches of sample indices: seeded permutations, concatenated, cut into batches."""
    gen = torch.Generator().manual_seed(seed)
    flat: list[int] = []
    while len(flat) < steps * batch:
        flat += torch.randperm(count, generator=gen).tolist()
    return [flat[i * batch : (i + 1) * batch] for i in range(steps)]


def train_lora(
    base: LoadedBlip,
    pairs: Sequence[SeedPair],
    config: CaptionFinetuneConfig,
    out_dir: Path,
    log: Callable[[str], None] | None = None,
    log_every_n_steps: int = 25,
) -> list[float]:
    """Train the LoRA adapter and save it to ``out_dir``; returns the loss of every step.

    LoRA layers are injected into ``base.model`` for the run and removed afterwards.
    Progress goes to ``log`` at step 1, every ``log_every_n_steps``-th and the last step
    (``training.log_every_n_steps``, the same steps the LoRA trainer logs).
    """
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,  # type: ignore[arg-type]  # peft annotates int; alpha/r is a float scale
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
    )
    prompt = config.prompt()
    losses: list[float] = []
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(config.num_threads or threads)
        torch.manual_seed(config.seed)
        model = get_peft_model(base.model, lora)
        try:
            model.train()
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
            for step, indices in enumerate(
                _order(len(pairs), config.steps, config.batch_size, config.seed), start=1
            ):
                batch = _batch(
                    base.processor, [pairs[i] for i in indices], prompt, config.max_length,
                    base.device,
                )  # fmt: skip
                loss = model(**batch).loss
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"caption fine-tune loss is {loss.item()} at {step}")
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(float(loss.item()))
                if log and is_logged_step(step, config.steps, log_every_n_steps):
                    log(f"caption finetune step {step}/{config.steps} loss {losses[-1]:.4f}")
            model.save_pretrained(str(out_dir), safe_serialization=True)
        finally:
            model.unload()
            base.model.eval()
            torch.set_num_threads(threads)
    return losses


def default_version(now: dt.datetime, data_hash: str, config_hash: str) -> str:
    """``<UTC timestamp>-<hash8>``: sorts by time, names the inputs."""
    inputs = hashlib.sha256((data_hash + config_hash).encode()).hexdigest()[:8]
    return f"{now:%Y%m%dT%H%M%SZ}-{inputs}"


def finetune_caption_model(
    store: Store,
    pairs: Sequence[SeedPair],
    base: LoadedBlip,
    config: CaptionFinetuneConfig | None = None,
    *,
    version: str | None = None,
    log: Callable[[str], None] | None = None,
    log_every_n_steps: int = 25,
) -> FinetuneResult:
    """Fine-tune, then write ``caption_model/<version>/`` (adapter first, metadata last)."""
    config = config or CaptionFinetuneConfig()
    data_hash, config_hash = data_fingerprint(pairs), config.fingerprint()
    now = dt.datetime.now(dt.UTC)
    version = version or default_version(now, data_hash, config_hash)
    if not _VERSION.match(version):
        raise ValueError(f"invalid caption model version {version!r}")
    key = layout.caption_model_dir(version)
    if store.exists(layout.caption_model_file(version, METADATA)):
        raise FileExistsError(f"caption model version {version} already exists in {store}")
    with tempfile.TemporaryDirectory(prefix="caption_lora_") as tmp:
        losses = train_lora(base, pairs, config, Path(tmp), log, log_every_n_steps)
        files = sorted(p for p in Path(tmp).iterdir() if p.suffix in (".json", ".safetensors"))
        for path in files:
            store.put_file(path, layout.caption_model_file(version, path.name))
        adapter_sha = hashlib.sha256((Path(tmp) / ADAPTER_WEIGHTS).read_bytes()).hexdigest()
    metadata = {
        "version": version,
        "created_at": now.isoformat(),
        "base_model": base.model_id,
        "base_source": base.source,
        "base_profile": base.profile_used,
        "data_hash": data_hash,
        "num_pairs": len(pairs),
        "config_hash": config_hash,
        "config": config.model_dump(mode="json"),
        "prompt": config.prompt(),
        "steps": len(losses),
        "final_loss": losses[-1],
        "losses": losses,
        "adapter_sha256": adapter_sha,
        "files": [p.name for p in files],
    }
    if not math.isfinite(losses[-1]):
        raise FloatingPointError("final loss is not finite")
    store.put_bytes(
        json.dumps(metadata, indent=2).encode(), layout.caption_model_file(version, METADATA)
    )
    return FinetuneResult(version, key, metadata)


def latest_caption_model(store: Store) -> str | None:
    """Key (``caption_model/<version>``) of the newest complete version, or None."""
    complete = [k for k in store.list(layout.CAPTION_MODEL) if store.exists(_metadata_key(k))]
    return max(complete, key=layout.caption_model_version_of) if complete else None


def read_caption_model_metadata(store: Store, key: str) -> dict:
    return json.loads(store.read_bytes(_metadata_key(key)))


def _metadata_key(key: str) -> str:
    return layout.caption_model_file(layout.caption_model_version_of(key), METADATA)


@contextlib.contextmanager
def adapter_local_dir(store: Store, key: str) -> Iterator[Path]:
    """A local directory holding the adapter files of ``key`` (the directory itself if local)."""
    if store.is_local:
        yield store.local_path(key)
        return
    with tempfile.TemporaryDirectory(prefix="caption_adapter_") as tmp:
        for name in read_caption_model_metadata(store, key)["files"]:
            version = layout.caption_model_version_of(key)
            Path(tmp, name).write_bytes(store.read_bytes(layout.caption_model_file(version, name)))
        yield Path(tmp)
