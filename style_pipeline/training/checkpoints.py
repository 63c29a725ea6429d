"""Resumable checkpoints of a LoRA training run, kept in the Store.

Every ``checkpoint_every_n_steps`` optimisation steps the loop saves what decides the rest
of the run, so a re-run of the same training (same config hash, same dataset hash)
continues from the newest checkpoint and ends with bit-identical weights on CPU
(``deterministic: true``):

- the trainable (LoRA) parameters, the AdamW state, the LR schedule, the fp16 loss scaler;
- the step, the epoch and the position inside the epoch's batch order, plus the data
  generator's state at the start of that epoch (the epoch's shuffled batches, crops and
  flips are drawn again from it: same order, same augments);
- the noise generator (VAE posterior samples, noise, timesteps), torch's global CPU RNG,
  the CUDA RNGs when on CUDA, Python's ``random`` and NumPy's global RNG;
- the losses so far;
- the state of the run's monitors (``extras``): the EMA of the weights, the validation
  history, early stop's best loss and weights, the validation images so far.

Layout: ``training_dataset/checkpoints/<config_hash[:12]>-<dataset_hash[:12]>/step_<n>/``
with ``state.safetensors`` (tensors) and ``checkpoint.json`` (everything else, and the
sha256 of the tensors file). No pickle anywhere. ``checkpoint.json`` is written last, each
file atomically: a folder without it, or whose tensors do not match its sha256, is
incomplete and ignored. The JSON also records the full hashes, the model and the device
type; a checkpoint whose identity differs from the run's is never resumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.lora_models import LoraModels
from style_pipeline.training.objective import Optimization

log = logging.getLogger(__name__)
FORMAT = 1
STATE_NAME = "state.safetensors"
INDEX_NAME = "checkpoint.json"


def dataset_hash_in(dataset_dir: Path) -> str | None:
    """The folder's dataset hash (``manifest.json``); None without a manifest."""
    manifest = Path(dataset_dir) / "manifest.json"
    if not manifest.is_file():
        return None
    value = json.loads(manifest.read_text()).get("dataset_hash")
    return value if isinstance(value, str) else None


def run_dir(config: LoraTrainingConfig, dataset_hash: str) -> str:
    return layout.training_checkpoint_run_dir(config.config_hash(), dataset_hash)


def _named_trainables(models: LoraModels) -> dict[str, torch.nn.Parameter]:
    """The trainable parameters by a stable name (module prefix + parameter name)."""
    modules: list[tuple[str, torch.nn.Module]] = [("unet", models.unet)]
    if models.train_text_encoder:
        modules += [(f"text_encoder_{i}", te) for i, te in enumerate(models.text_encoders)]
    named = {
        f"{prefix}.{name}": p
        for prefix, module in modules
        for name, p in module.named_parameters()
        if p.requires_grad
    }
    if len(named) != len(models.params):
        raise RuntimeError(f"{len(named)} named trainable parameters, {len(models.params)} params")
    return named


def model_identity(models: LoraModels) -> dict:
    """What the checkpoint must agree with besides the config: model kind and device."""
    config = cast("dict[str, Any]", models.unet.config)  # diffusers' FrozenDict
    unet_config = json.dumps(dict(config), sort_keys=True, default=str)
    return {
        "pipeline": models.pipeline_cls.__name__,
        "unet_config_sha256": hashlib.sha256(unet_config.encode()).hexdigest(),
        "device_type": models.device.type,
        "parameters": models.lora_parameter_count(),
        "torch": torch.__version__,
    }


@dataclass
class LoopPosition:
    """Where the loop resumes: ``epoch`` from batch ``position`` (batches already used)."""

    step: int
    epoch: int
    position: int
    epoch_data_state: torch.Tensor  # the data generator at the start of ``epoch``
    losses: list[float]
    # name -> (JSON part, tensors) of a monitor (``ema``, ``validation``)
    extras: dict[str, tuple[dict, dict[str, torch.Tensor]]] = field(default_factory=dict)


@dataclass
class Checkpointer:
    """Saves and finds one run's checkpoints (``every`` steps; 0 saves none)."""

    store: Store
    prefix: str
    identity: dict
    every: int

    @classmethod
    def for_run(
        cls,
        store: Store | None,
        config: LoraTrainingConfig,
        dataset_dir: Path,
        models: LoraModels,
    ) -> Checkpointer | None:
        """None when checkpoints are off, there is no store or the folder has no hash."""
        if not config.checkpoint_every_n_steps or store is None:
            return None
        data_hash = dataset_hash_in(dataset_dir)
        if data_hash is None:
            log.warning("checkpoints off: %s has no manifest.json (no dataset hash)", dataset_dir)
            return None
        identity = {
            "config_hash": config.config_hash(),
            "dataset_hash": data_hash,
            **model_identity(models),
        }
        return cls(store, run_dir(config, data_hash), identity, config.checkpoint_every_n_steps)

    def due(self, step: int, total: int) -> bool:
        return self.every > 0 and step % self.every == 0 and step < total

    def steps(self) -> list[int]:
        found = (layout.training_checkpoint_step_of(k) for k in self.store.list(self.prefix))
        return sorted(s for s in found if s is not None)

    def save(
        self,
        models: LoraModels,
        optimization: Optimization,
        noise_gen: torch.Generator,
        position: LoopPosition,
    ) -> str:
        """Write ``step_<n>/`` (tensors, then the index), then drop older checkpoints."""
        tensors: dict[str, torch.Tensor] = {}
        for name, p in _named_trainables(models).items():
            tensors[f"param/{name}"] = p.detach().to("cpu", copy=True).contiguous()
        optim_state = optimization.optimizer.state_dict()
        scalars: dict[str, dict] = {}
        for index, state in optim_state["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim/{index}/{key}"] = value.detach().to("cpu").contiguous()
                else:
                    scalars.setdefault(str(index), {})[key] = value
        tensors["rng/torch_cpu"] = torch.get_rng_state()
        tensors["rng/noise"] = noise_gen.get_state()
        tensors["rng/data_epoch_start"] = position.epoch_data_state
        extras = {}
        for name, (saved, extra_tensors) in position.extras.items():
            extras[name] = saved
            tensors.update({f"extra/{name}/{k}": v for k, v in extra_tensors.items()})
        if torch.cuda.is_available() and models.device.type == "cuda":
            for i, state in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng/cuda/{i}"] = state
        blob = save_safetensors(tensors)
        np_state = cast("tuple[Any, ...]", np.random.get_state())
        index = {
            "format": FORMAT,
            "identity": self.identity,
            "step": position.step,
            "epoch": position.epoch,
            "position": position.position,
            "losses": position.losses,
            "optimizer": {"param_groups": optim_state["param_groups"], "scalars": scalars},
            "lr_scheduler": optimization.lr_scheduler.state_dict(),
            "grad_scaler": optimization.scaler.state_dict() if optimization.scaler else None,
            "python_random": _python_state_to_json(random.getstate()),
            "numpy_random": [
                np_state[0],
                np.asarray(np_state[1]).tolist(),
                *[_plain(v) for v in np_state[2:]],
            ],
            "extras": extras,
            "state_sha256": hashlib.sha256(blob).hexdigest(),
        }
        folder = layout.training_checkpoint_dir(self.prefix, position.step)
        self.store.put_bytes(blob, f"{folder}/{STATE_NAME}")
        self.store.put_bytes(json.dumps(index, indent=1).encode(), f"{folder}/{INDEX_NAME}")
        log.info("checkpoint at step %d: %s", position.step, folder)
        self.prune(keep=1)
        return folder

    def prune(self, keep: int) -> list[int]:
        """Delete all but the newest ``keep`` checkpoints (0: the whole run folder)."""
        steps = self.steps()
        doomed = steps[:-keep] if keep else steps
        for step in doomed:
            path = self.store.path(layout.training_checkpoint_dir(self.prefix, step))
            path.fs.rm(path.path, recursive=True)
        if not keep:
            path = self.store.path(self.prefix)
            if path.exists():
                path.fs.rm(path.path, recursive=True)
        return doomed

    def latest(self) -> tuple[dict, dict[str, torch.Tensor]] | None:
        """The newest complete checkpoint of this run (index, tensors), else None."""
        for step in reversed(self.steps()):
            folder = layout.training_checkpoint_dir(self.prefix, step)
            try:
                index = json.loads(self.store.read_bytes(f"{folder}/{INDEX_NAME}"))
                blob = self.store.read_bytes(f"{folder}/{STATE_NAME}")
            except (FileNotFoundError, json.JSONDecodeError) as exc:
                log.warning("checkpoint %s incomplete (%s): skipped", folder, exc)
                continue
            if hashlib.sha256(blob).hexdigest() != index.get("state_sha256"):
                log.warning("checkpoint %s: tensors do not match their sha256: skipped", folder)
                continue
            if index.get("step") != step:
                log.warning("checkpoint %s holds step %s: skipped", folder, index.get("step"))
                continue
            if index.get("format") != FORMAT or index.get("identity") != self.identity:
                log.warning("checkpoint %s belongs to another run or model: not resumed", folder)
                continue
            return index, load_safetensors(blob)
        return None

    def resume(
        self,
        models: LoraModels,
        optimization: Optimization,
        noise_gen: torch.Generator,
    ) -> LoopPosition | None:
        """Restore the newest checkpoint into the run's objects; its loop position."""
        found = self.latest()
        if found is None:
            return None
        index, tensors = found
        with torch.no_grad():
            for name, p in _named_trainables(models).items():
                p.copy_(tensors[f"param/{name}"])
        optimization.optimizer.load_state_dict(_optimizer_state(index["optimizer"], tensors))
        optimization.lr_scheduler.load_state_dict(index["lr_scheduler"])
        if optimization.scaler and index["grad_scaler"]:
            optimization.scaler.load_state_dict(index["grad_scaler"])
        torch.set_rng_state(tensors["rng/torch_cpu"])
        noise_gen.set_state(tensors["rng/noise"])
        cuda = sorted(k for k in tensors if k.startswith("rng/cuda/"))
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
        random.setstate(_python_state_from_json(index["python_random"]))
        name, keys, *rest = index["numpy_random"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        extras = {
            extra: (saved, _prefixed(tensors, f"extra/{extra}/"))
            for extra, saved in index.get("extras", {}).items()
        }
        return LoopPosition(
            step=index["step"],
            epoch=index["epoch"],
            position=index["position"],
            epoch_data_state=tensors["rng/data_epoch_start"],
            losses=[float(x) for x in index["losses"]],
            extras=extras,
        )


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _optimizer_state(saved: dict, tensors: dict[str, torch.Tensor]) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in saved["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    groups = [
        {k: tuple(v) if k == "betas" else v for k, v in group.items()}
        for group in saved["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _python_state_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_state_from_json(saved: list) -> tuple:
    version, internal, gauss = saved
    return version, tuple(internal), gauss


def prune_run(store: Store, config: LoraTrainingConfig, dataset_hash: str, keep: int) -> list[int]:
    """After publishing: keep the run's newest ``keep`` checkpoints (0: delete them all)."""
    try:
        prefix = run_dir(config, dataset_hash)
    except ValueError:  # a dataset hash that is no hex digest never had checkpoints
        return []
    return Checkpointer(store, prefix, {}, 0).prune(keep)
