"""Check ``lora_weights_reproducible``: re-train a published version from what it recorded
(config, dataset hash, seed, thread count) and compare the sha256 of the weights.

A deterministic run on the same device type, library versions and thread count gives
bit-identical weights (see ``training.train_loop.deterministic_mode``); a different hash
then means something changed that the version's metadata does not capture. Nothing is
published: the weights go to a temporary folder. The latent and text caches of the Store
are used as in the original run (a cache hit and a fresh encoding train alike).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from style_pipeline.contracts.training import LoraTrainingConfig, ReproCheckSettings
from style_pipeline.storage.store import Store
from style_pipeline.training.versions import read_metadata


@dataclass(frozen=True)
class Reproduction:
    """What the check found: ``ran`` False means not re-trained (``reason`` says why);
    ``unverifiable`` that it should have been but its inputs are gone or changed."""

    version: str
    expected: str
    ran: bool
    reason: str
    actual: str | None = None
    seconds: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)
    unverifiable: bool = False

    @property
    def matches(self) -> bool:
        return self.ran and self.actual == self.expected


def _device_type(device: str) -> str:
    return device.split(":", 1)[0]


def why_not(metadata: dict, settings: ReproCheckSettings, device_type: str) -> str | None:
    """Why ``auto``/``never`` leaves this version alone, or None to re-train it."""
    if settings.mode == "never":
        return "training.repro_check.mode is never"
    if settings.mode == "always":
        return None
    if not metadata.get("config", {}).get("deterministic", False):
        return "trained with deterministic: false (bit-identical weights are not expected)"
    if _device_type(str(metadata.get("device", ""))) != device_type:
        return f"trained on {metadata.get('device')}, this machine trains on {device_type}"
    seconds = float(metadata.get("seconds", 0.0))
    if seconds > settings.max_train_seconds:
        return (
            f"training took {seconds:.0f} s, over training.repro_check.max_train_seconds "
            f"({settings.max_train_seconds:.0f} s); set mode: always to re-train it anyway"
        )
    return None


def reproduce_version(
    store: Store, version: str, settings: ReproCheckSettings, model_cache_dir: Path
) -> Reproduction:
    """Re-train ``version`` (when ``settings`` allow) and compare its weights' sha256."""
    import time

    import torch

    from style_pipeline.media.checksum import sha256_file
    from style_pipeline.models.device import pick_device
    from style_pipeline.models.diffusion import resolve_diffusion
    from style_pipeline.training.backends import LocalDiffusersBackend, TrainingRequest
    from style_pipeline.training.dataset import download_dataset
    from style_pipeline.training.trainer import dataset_hash_of

    metadata = read_metadata(store, version)
    expected = str(metadata["sha256"])
    config = LoraTrainingConfig.model_validate(metadata["config"])
    device_type = pick_device(config.device).type
    reason = why_not(metadata, settings, device_type)
    if reason:
        return Reproduction(version, expected, ran=False, reason=reason)
    with tempfile.TemporaryDirectory(prefix="repro_") as tmp:
        try:
            dataset_dir = download_dataset(store, metadata["partition"], Path(tmp) / "dataset")
        except (FileNotFoundError, ValueError) as exc:
            return Reproduction(
                version, expected, ran=False, reason=f"dataset unreadable: {exc}",
                unverifiable=True,
            )  # fmt: skip
        dataset_hash = dataset_hash_of(dataset_dir)
        if dataset_hash != metadata["dataset_hash"]:
            return Reproduction(
                version, expected, ran=False,
                reason=f"training_dataset/{metadata['partition']} was rebuilt since "
                f"(dataset hash {dataset_hash[:12]}, the version trained on "
                f"{str(metadata['dataset_hash'])[:12]})",
                unverifiable=True,
            )  # fmt: skip
        model = resolve_diffusion(
            config.profile, config.pretrained, model_cache_dir, config.seed, config.model_family
        )
        if model.profile != metadata.get("model_profile"):
            return Reproduction(
                version, expected, ran=False,
                reason=f"the base model resolves to {model.profile!r} now, the version "
                f"trained on {metadata.get('model_profile')!r}",
                unverifiable=True,
            )  # fmt: skip
        threads = torch.get_num_threads()
        torch.set_num_threads(int(metadata.get("torch_threads") or threads))
        started = time.perf_counter()
        try:
            request = TrainingRequest(dataset_dir, Path(tmp) / "out", config, model, store)
            outcome = LocalDiffusersBackend().train(request)
            actual = sha256_file(outcome.weights_path)
        finally:
            torch.set_num_threads(threads)
    import diffusers
    import peft

    now = {"torch": torch.__version__, "diffusers": diffusers.__version__, "peft": peft.__version__}
    then = metadata.get("versions", {})
    facts = {
        "torch_threads": int(metadata.get("torch_threads") or threads),
        "library_versions_changed": ", ".join(
            f"{k} {then.get(k)} -> {v}" for k, v in now.items() if then.get(k) != v
        )
        or "-",
    }
    seconds = round(time.perf_counter() - started, 2)
    return Reproduction(version, expected, True, "re-trained", actual, seconds, facts)
