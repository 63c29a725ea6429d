"""The ComfyUI workflow that trains a LoRA: one node of the Lora-Training-in-Comfy pack.

Targeted node pack: **LarryJane491's Lora-Training-in-Comfy** (checked at commit 96dde0cb),
node class ``"Lora Training in Comfy (Advanced)"``. Why this pack: it is the one whose whole
training is one node with plain inputs (no custom socket types wiring five nodes together),
so the API workflow is a single dict whose inputs can be stated exactly; it trains SD 1.x/2.x LoRAs
with kohya sd-scripts' ``train_network.py`` (the families this project trains by default),
and writes a kohya-format ``<output_name>.safetensors`` into ``output_dir``. (kijai's
ComfyUI-FluxTrainer trains FLUX/SD3/SDXL only, through a chain of custom-typed nodes.)

The node's inputs (all required) and what fills them (:func:`node_inputs`):

==================== ================================ =====================================
input                type / choices                   from
==================== ================================ =====================================
ckpt_name            checkpoints file list            training.comfyui.checkpoint
v2                   "No" | "Yes"                     "Yes" when ``pretrained`` names SD 2
networkmodule        networks.lora|lycoris.kohya|...  "networks.lora"
mixed_precision      "fp16" | "bf16"                  config.mixed_precision ("no" -> fp16)
save_precision       "float" | "fp16" | "bf16"        "float" (fp32 weights, as locally)
networkdimension     INT                              config.rank
conv_dim             INT                              4 (LyCORIS only; unused by LoRA)
networkalpha         INT                              round(config.lora_alpha)
trainingresolution   INT (step 8)                     config.resolution
data_path            STRING                           the uploaded folder (kohya layout)
batch_size           INT                              config.train_batch_size
max_train_epoches    INT                              config.num_train_epochs, or the
                                                      epochs covering max_train_steps
save_every_n_epochs  INT                              = max_train_epoches (one file)
keeptokens           INT                              0
minSNRgamma          FLOAT                            config.snr_gamma or 0
learningrateText     FLOAT                            config.learning_rate (see below)
learningrateUnet     FLOAT                            config.learning_rate
learningRateScheduler the six diffusers schedulers    config.lr_scheduler (same names)
lrRestartCycles      INT                              1
optimizerType        AdamW8bit|Lion8bit|...|prodigy   "AdamW8bit" (no plain AdamW offered)
output_name          STRING                           the job id
algorithm            lora|loha|lokr|ia3|dylora|locon  "lora"
networkDropout       FLOAT                            0.0
clip_skip            INT                              1 (SD 1.x's last layer, as diffusers)
output_dir           STRING                           <server_output_dir>/<output_subfolder>
tensorboard          BOOLEAN                          false
==================== ================================ =====================================

Not settable through the node (fixed in its module, listed by :func:`unmapped_notes` when the
config asks for something else): seed (the node draws its own), lr_warmup_steps (0),
noise_offset (0), gradient_accumulation_steps (1), max_grad_norm, Adam betas/eps/weight
decay, center_crop/random_flip (kohya buckets, no flip), target_modules (kohya's default
set: every attention and MLP linear of the UNet's transformer blocks and of CLIP), and the
text encoder is always trained: with ``train_text_encoder: false`` its LoRA is dropped from
the downloaded file. The node formats learning rates by deleting every ``0`` digit of
``format(lr, "e")``, so ``1.05e-4`` would reach sd-scripts as ``1.5e-4``:
:func:`node_learning_rate` refuses such values instead of training with a wrong one.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from style_pipeline.contracts.remote_training import ComfyUISettings
from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.training.remote.base import RemoteTrainingError

NODE_PACK = "LarryJane491/Lora-Training-in-Comfy"
NODE_CLASS = "Lora Training in Comfy (Advanced)"
NODE_ID = "1"
OPTIMIZER = "AdamW8bit"
CONCEPT_DIR = re.compile(r"^(\d+)_.+$")  # kohya: <repeats>_<concept>
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
CAPTION_SUFFIX = ".txt"


def node_learning_rate(value: float, name: str) -> float:
    """``value`` as the node hands it to sd-scripts, refused when its formatting changes it.

    The node does ``"".join(c for c in format(lr, "e").rstrip("0") if c != "0")``.
    """
    text = "".join(c for c in format(value, "e").rstrip("0").rstrip() if c != "0")
    try:
        parsed = float(text)
    except ValueError:
        parsed = math.nan
    if not math.isclose(parsed, value, rel_tol=1e-9):
        raise RemoteTrainingError(
            f"{name}={value:g} reaches sd-scripts as '{text}' through the "
            f"{NODE_CLASS} node's formatting (it deletes every 0 digit); pick a learning "
            "rate without a 0 in its digits, e.g. 1e-4, 2e-4, 1.5e-4"
        )
    return value


def dataset_folders(dataset_dir: Path) -> list[Path]:
    """The kohya concept folders (``<repeats>_<concept>``) of a training folder."""
    folders = sorted(p for p in dataset_dir.iterdir() if p.is_dir() and CONCEPT_DIR.match(p.name))
    if not folders:
        raise RemoteTrainingError(
            f"{dataset_dir}: no <repeats>_<concept> folder; the node reads kohya's layout"
        )
    return folders


def dataset_files(dataset_dir: Path) -> list[Path]:
    """Every image and caption the node needs, in a stable order."""
    return [
        path
        for folder in dataset_folders(dataset_dir)
        for path in sorted(folder.iterdir())
        if path.is_file()
        and (path.suffix.lower() in IMAGE_SUFFIXES or path.suffix == CAPTION_SUFFIX)
    ]


def examples_per_epoch(dataset_dir: Path) -> int:
    """Images an epoch sees: each concept folder's images times its repeats."""
    total = 0
    for folder in dataset_folders(dataset_dir):
        match = CONCEPT_DIR.match(folder.name)
        assert match is not None
        images = sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        total += images * int(match.group(1))
    return total


def epochs_for(config: LoraTrainingConfig, dataset_dir: Path) -> int:
    """The node counts epochs only: ``max_train_steps`` becomes the epochs that cover it."""
    if config.max_train_steps is None:
        return config.num_train_epochs
    steps_per_epoch = max(1, math.ceil(examples_per_epoch(dataset_dir) / config.train_batch_size))
    return max(1, math.ceil(config.max_train_steps / steps_per_epoch))


def total_steps(config: LoraTrainingConfig, dataset_dir: Path) -> int:
    """Optimizer steps sd-scripts will run (batches per epoch x epochs)."""
    per_epoch = math.ceil(examples_per_epoch(dataset_dir) / config.train_batch_size)
    return max(1, per_epoch) * epochs_for(config, dataset_dir)


def server_data_path(settings: ComfyUISettings, job_id: str) -> str:
    """Where the uploaded folder lies as the node's training process sees it."""
    return f"{settings.server_input_dir.rstrip('/')}/{upload_subfolder(settings, job_id)}"


def upload_subfolder(settings: ComfyUISettings, job_id: str) -> str:
    """The dataset's subfolder of ComfyUI's input folder (``/upload/image``'s ``subfolder``)."""
    return f"{settings.output_subfolder}/{job_id}"


def server_output_dir(settings: ComfyUISettings) -> str:
    return f"{settings.server_output_dir.rstrip('/')}/{settings.output_subfolder}"


def node_inputs(
    config: LoraTrainingConfig, settings: ComfyUISettings, dataset_dir: Path, job_id: str
) -> dict[str, Any]:
    """The node's inputs for ``config`` (the table in this module's docstring)."""
    if config.model_family != "sd":
        raise RemoteTrainingError(
            f"model_family={config.model_family}: the {NODE_CLASS} node trains SD 1.x/2.x "
            "only (sd-scripts' train_network.py); train SDXL locally or on Replicate"
        )
    if not settings.checkpoint:
        raise RemoteTrainingError(
            "training.comfyui.checkpoint is not set: name the base model's file in the "
            "ComfyUI server's models/checkpoints (the node's ckpt_name)"
        )
    lr = node_learning_rate(config.learning_rate, "learning_rate")
    epochs = epochs_for(config, dataset_dir)
    return {
        "ckpt_name": settings.checkpoint,
        "v2": "Yes" if "stable-diffusion-2" in config.pretrained else "No",
        "networkmodule": "networks.lora",
        "mixed_precision": "bf16" if config.mixed_precision == "bf16" else "fp16",
        "save_precision": "float",
        "networkdimension": config.rank,
        "conv_dim": 4,
        "networkalpha": max(1, round(config.lora_alpha)),
        "trainingresolution": config.resolution,
        "data_path": server_data_path(settings, job_id),
        "batch_size": config.train_batch_size,
        "max_train_epoches": epochs,
        "save_every_n_epochs": epochs,
        "keeptokens": 0,
        "minSNRgamma": float(config.snr_gamma or 0.0),
        "learningrateText": lr,
        "learningrateUnet": lr,
        "learningRateScheduler": config.lr_scheduler,
        "lrRestartCycles": 1,
        "optimizerType": OPTIMIZER,
        "output_name": job_id,
        "algorithm": "lora",
        "networkDropout": 0.0,
        "clip_skip": 1,
        "output_dir": server_output_dir(settings),
        "tensorboard": False,
    }


def build_workflow(
    config: LoraTrainingConfig, settings: ComfyUISettings, dataset_dir: Path, job_id: str
) -> dict[str, Any]:
    """The API-format workflow (``POST /prompt``'s ``prompt``): the one training node."""
    return {
        NODE_ID: {
            "class_type": NODE_CLASS,
            "inputs": node_inputs(config, settings, dataset_dir, job_id),
            "_meta": {"title": f"style_pipeline {job_id}"},
        }
    }


def unmapped_notes(config: LoraTrainingConfig) -> list[str]:
    """What of ``config`` the node cannot honour (its fixed values differ from the config's)."""
    defaults = LoraTrainingConfig()
    notes = []
    fixed = {
        "lr_warmup_steps": 0,
        "noise_offset": 0.0,
        "gradient_accumulation_steps": 1,
        "random_flip": False,
    }
    for name, node_value in fixed.items():
        if getattr(config, name) != node_value:
            notes.append(f"{name}={getattr(config, name)} ignored: the node uses {node_value}")
    for name in ("max_grad_norm", "adam_beta1", "adam_beta2", "adam_weight_decay", "adam_epsilon"):
        if getattr(config, name) != getattr(defaults, name):
            notes.append(f"{name}={getattr(config, name)} ignored: the node has no such input")
    if config.mixed_precision == "no":
        notes.append("mixed_precision=no: the node trains in fp16 (its choices: fp16, bf16)")
    if tuple(config.target_modules) != tuple(defaults.target_modules):
        notes.append("target_modules ignored: sd-scripts adapts its default layer set")
    notes.append(
        f"seed={config.seed} ignored: the node draws its own seed (not reproducible); "
        f"optimizer {OPTIMIZER} (the node offers no plain AdamW)"
    )
    if not config.train_text_encoder:
        notes.append("the node always trains the text encoder: its LoRA is dropped on download")
    return notes
