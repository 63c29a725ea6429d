"""Training contracts: the LoRA training config, dataset, reward and evaluation sections."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from style_pipeline.contracts.models import (
    DEFAULT_PRETRAINED,
    DiffusionProfile,
    ModelFamily,
)
from style_pipeline.contracts.remote_training import (
    BackendName,
    ComfyUISettings,
    RemoteCallSettings,
    ReplicateSettings,
)
from style_pipeline.paths import DEFAULT_MODEL_DIR

LrScheduler = Literal[
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"
]


# How often a run saves its state: not part of the config hash (same weights either way).
CHECKPOINT_FIELDS = ("checkpoint_every_n_steps", "keep_checkpoints")
# What a run shows while it trains (validation images, how often it validates): not part of
# the config hash either. Exception: with early stop on, the validation interval and seed
# decide the step it stops at, so config_hash keeps them (EARLY_STOP_INPUTS).
MONITORING_FIELDS = (
    "validation_prompts",
    "validation_every_n_steps",
    "validation_inference_steps",
    "validation_guidance_scale",
    "validation_seed",
)
EARLY_STOP_INPUTS = ("validation_every_n_steps", "validation_seed")

# Flow-matching settings of FLUX.1 (``training/flow_matching.py``): meaningless for SD/SDXL.
FLUX_FIELDS = (
    "guidance_scale",
    "weighting_scheme",
    "logit_mean",
    "logit_std",
    "mode_scale",
    "max_sequence_length",
)
WeightingScheme = Literal["none", "logit_normal", "mode", "sigma_sqrt", "cosmap"]


class LoraTrainingConfig(BaseModel):
    """Everything that decides a LoRA training run (hashed into the weights' metadata)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    profile: DiffusionProfile = "auto"
    pretrained: str = DEFAULT_PRETRAINED
    model_family: ModelFamily = Field(
        "sd", description="sd (1.x/2.x), sdxl or flux (FLUX.1 dev/schnell); also the tiny kind"
    )
    guidance_scale: float = Field(
        1.0,
        ge=0,
        description="flux: value fed to the guidance embedding while training (FLUX.1-dev is "
        "guidance-distilled; diffusers' FLUX LoRA README trains with 1, its script defaults "
        "to 3.5); unused by models without one (schnell)",
    )
    weighting_scheme: WeightingScheme = Field(
        "none",
        description="flux: timestep density and loss weighting of flow matching (diffusers "
        "compute_density_for_timestep_sampling / compute_loss_weighting_for_sd3)",
    )
    logit_mean: float = Field(0.0, description="flux, weighting_scheme logit_normal: mean")
    logit_std: float = Field(1.0, gt=0, description="flux, weighting_scheme logit_normal: std")
    mode_scale: float = Field(1.29, description="flux, weighting_scheme mode: its scale")
    max_sequence_length: int = Field(
        512, ge=1, le=512, description="flux: T5 tokens per caption (dev 512, schnell 256)"
    )
    resolution: int = Field(512, ge=32, le=4096)
    rank: int = Field(16, ge=1, le=1024)
    alpha: float | None = Field(None, gt=0, description="LoRA alpha; None means alpha = rank")
    target_modules: tuple[str, ...] = ("to_k", "to_q", "to_v", "to_out.0")
    text_encoder_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj")
    train_text_encoder: bool = False
    learning_rate: float = Field(1e-4, gt=0)
    lr_scheduler: LrScheduler = "constant"
    lr_warmup_steps: int = Field(0, ge=0)
    num_train_epochs: int = Field(10, ge=1)
    max_train_steps: int | None = Field(None, ge=1, description="overrides num_train_epochs")
    train_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_checkpointing: bool = False
    max_grad_norm: float = Field(1.0, gt=0)
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.999, ge=0, lt=1)
    adam_weight_decay: float = Field(1e-2, ge=0)
    adam_epsilon: float = Field(1e-8, gt=0)
    noise_offset: float = Field(0.0, ge=0)
    snr_gamma: float | None = Field(None, gt=0)
    center_crop: bool = True
    random_flip: bool = False
    caption_dropout_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="kohya caption_dropout_rate: chance that an example trains on the empty "
        "caption (unconditional), drawn per example per epoch",
    )
    caption_tag_dropout_rate: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="kohya caption_tag_dropout_rate: chance that each comma-separated tag "
        "after the first keep_tokens is left out, per example per epoch",
    )
    keep_tokens: int = Field(
        1,
        ge=0,
        description="kohya keep_tokens: the first N comma-separated tags (the trigger word "
        "first) are never dropped nor shuffled",
    )
    shuffle_tags: bool = Field(
        False, description="kohya shuffle_caption: shuffle the tags after the kept ones"
    )
    masked_loss: bool = Field(
        False,
        description="weight the loss per latent pixel by the image's mask (<frame>.mask.png, "
        "from face boxes); images without a mask weigh 1 everywhere",
    )
    mask_background_weight: float = Field(
        0.1,
        ge=0,
        le=1,
        description="masked_loss: weight of the pixels outside the mask (kohya: 0, ignored)",
    )
    prior_loss_weight: float = Field(
        1.0, ge=0, description="weight of the regularization images' loss (kohya, DreamBooth)"
    )
    use_buckets: bool = Field(True, description="train each image at its aspect-ratio bucket")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = True
    keep_versions: int = Field(3, ge=1)
    cache_latents: bool = Field(
        True,
        description="encode each (image, bucket, flip) with the VAE once and keep its posterior "
        "in storage (training_dataset/cache/latents/); bypassed with random crops",
    )
    cache_text_embeddings: bool = Field(
        True,
        description="encode each caption once and keep the frozen text encoders' outputs in "
        "storage (training_dataset/cache/text/); bypassed when train_text_encoder is on",
    )
    dataloader_workers: int | None = Field(
        None, ge=0, description="image decoding processes; None: 0 on CPU, up to 8 on CUDA"
    )
    compile_unet: bool = Field(
        False, description="torch.compile the UNet (CUDA only: ignored with a note on CPU)"
    )
    checkpoint_every_n_steps: int = Field(
        0,
        ge=0,
        description="save a resumable checkpoint (LoRA weights, optimizer, LR schedule, RNGs, "
        "batch order) every N optimisation steps under training_dataset/checkpoints/; a re-run "
        "of the same config and dataset resumes from the newest one; 0: off",
    )
    keep_checkpoints: int = Field(
        0,
        ge=0,
        description="checkpoints kept after the version is published (newest first); 0: the "
        "run's checkpoints are deleted once it is published (during training the newest is kept)",
    )
    validation_split: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="share of the images held out of training for a validation loss (by "
        "image, at least one when > 0 and at least one left to train on; chosen from seed)",
    )
    validation_every_n_steps: int = Field(
        0,
        ge=0,
        description="validation loss and images every N optimisation steps, and after the "
        "last step; 0: after the last step only",
    )
    validation_prompts: tuple[str, ...] = Field(
        (), description="prompts rendered at each validation into the run's image grid"
    )
    validation_inference_steps: int = Field(
        10, ge=1, description="denoising steps of each validation image"
    )
    validation_guidance_scale: float | None = Field(
        None, ge=0, description="guidance of the validation images; None: the pipeline's"
    )
    validation_seed: int = Field(
        0, description="seed of the validation images and the validation loss's fixed noise"
    )
    early_stop_patience: int = Field(
        0,
        ge=0,
        description="stop after N validations in a row without a validation loss lower than "
        "the best by early_stop_min_delta, and publish the best validation's weights; 0: off",
    )
    early_stop_min_delta: float = Field(
        0.0, ge=0, description="early stop: how much lower a validation loss must be to count"
    )
    ema_decay: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="keep an exponential moving average of the LoRA weights (diffusers' EMA "
        "warm-up: min(decay, (1 + step) / (10 + step))), validate and publish it; None: off",
    )

    @model_validator(mode="after")
    def _check(self) -> LoraTrainingConfig:
        if self.early_stop_patience and not self.validation_split:
            raise ValueError("early_stop_patience needs a validation_split above 0")
        if self.resolution % 8:
            raise ValueError(f"resolution must be a multiple of 8, got {self.resolution}")
        if not self.target_modules:
            raise ValueError("target_modules must name at least one module")
        _check_family_fields(self)
        return self

    @property
    def lora_alpha(self) -> float:
        return float(self.alpha if self.alpha is not None else self.rank)

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of every field (the name and the checkpoint
        settings excluded: they do not change the weights, and a resume with another
        checkpoint interval is the same run; the monitoring settings too, except the
        validation interval and seed when early stop is on)."""
        monitoring = set(MONITORING_FIELDS)
        if self.early_stop_patience:
            monitoring -= set(EARLY_STOP_INPUTS)
        payload = self.model_dump(mode="json", exclude={"name", *CHECKPOINT_FIELDS, *monitoring})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _check_family_fields(config: LoraTrainingConfig) -> None:
    """FLUX's flow-matching fields only with ``model_family: flux``; DDPM-only options
    (Min-SNR, noise offset) and text-encoder LoRA not with it."""
    if config.model_family != "flux":
        changed = [f for f in FLUX_FIELDS if f in config.model_fields_set]
        defaults = LoraTrainingConfig.model_fields
        changed = [f for f in changed if getattr(config, f) != defaults[f].default]
        if changed:
            raise ValueError(
                f"{', '.join(changed)}: only used by model_family flux, not {config.model_family}"
            )
        return
    if config.resolution % 16:
        raise ValueError(
            f"flux: resolution must be a multiple of 16 (VAE 8x, 2x2 packing), got "
            f"{config.resolution}"
        )
    unsupported = {
        "snr_gamma": config.snr_gamma is not None,
        "noise_offset": config.noise_offset != 0,
        "train_text_encoder": config.train_text_encoder,
    }
    if any(unsupported.values()):
        names = ", ".join(k for k, v in unsupported.items() if v)
        raise ValueError(
            f"flux: {names} not supported (flow matching uses weighting_scheme; the CLIP and "
            "T5 text encoders stay frozen)"
        )


DatasetLayout = Literal["flat", "per_character"]
MaskSource = Literal["none", "faces"]


class DatasetBuildConfig(BaseModel):
    """How the folder is laid out and bucketed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resolution: int = Field(512, ge=32)
    bucket_step: int = Field(64, ge=8)
    concept: str = Field("style", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    repeats: int = Field(1, ge=1)
    layout: DatasetLayout = Field(
        "flat",
        description="flat: every image in <repeats>_<concept>/; per_character: one "
        "<repeats>_<character>/ folder per named character, the rest in <repeats>_<concept>/",
    )
    max_repeats: int = Field(
        10, ge=1, description="per_character: cap of a character's balancing repeats"
    )
    concept_repeats: dict[str, int] = Field(
        default_factory=dict,
        description="repeats of a concept or character folder by name, over the computed ones",
    )
    masks: MaskSource = Field(
        "none", description="faces: <frame>.mask.png from the frame's face boxes (masked loss)"
    )
    mask_padding: float = Field(
        0.25, ge=0, le=2, description="masks: each face box grown by this share of its size"
    )

    @property
    def image_dir(self) -> str:
        return f"{self.repeats}_{self.concept}"


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompts: tuple[str, ...] = (
        "a photo in the house style",
        "a portrait in the house style",
        "a landscape in the house style",
        "a product shot in the house style",
    )
    seeds: tuple[int, ...] = (0, 1)
    num_inference_steps: int = Field(25, ge=1)
    guidance_scale: float = Field(7.5, ge=0)
    resolution: int | None = Field(None, ge=32, description="None: the pipeline's default")
    lora_scale: float = Field(1.0, ge=0)


class Tolerance(BaseModel):
    """A change counts as a regression when worse by more than max(absolute, relative x |prev|)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    absolute: float = Field(0.0, ge=0)
    relative: float = Field(0.0, ge=0)

    def allowed(self, previous: float) -> float:
        return max(self.absolute, self.relative * abs(previous))


class RewardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden: int = Field(256, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    epochs: int = Field(200, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    holdout: float = Field(0.25, gt=0, lt=1)
    seed: int = 0


class TrainerLaunchSettings(BaseModel):
    """``training.launcher``: where ``lora_weights`` runs the trainer, through Dagster Pipes.

    ``subprocess`` (default): a child Python process on the step's machine; ``docker``: a
    container of ``image`` (dagster-docker's PipesDockerClient); ``k8s``: a pod of ``image``
    (dagster-k8s's PipesK8sClient); ``in_process``: inside the step process (no Pipes; what
    the tests of the training code itself use). Every kind reports step, loss and ETA to
    the run's event log and stops the trainer when the run is cancelled.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["subprocess", "docker", "k8s", "in_process"] = "subprocess"
    image: str | None = Field(
        None,
        description="docker/k8s: the trainer's image (default: DAGSTER_CURRENT_IMAGE, the "
        "image the run itself runs in)",
    )
    env: list[str] = Field(
        default_factory=lambda: ["STYLE_PIPELINE_*", "AWS_*", "HF_*", "DAGSTER_HOME"],
        description="docker/k8s: variables passed on to the trainer (a name, or a prefix "
        "ending in *); a subprocess inherits the whole environment",
    )
    gpus: int = Field(0, ge=0, description="docker/k8s: GPUs the trainer's container asks for")
    docker_network: str | None = Field(None, description="docker: network of the container")
    docker_volumes: list[str] = Field(
        default_factory=list, description="docker: volumes, 'name_or_path:/mount[:ro]'"
    )
    k8s_namespace: str | None = Field(None, description="k8s: namespace of the pod")
    k8s_node_selector: dict[str, str] = Field(
        default_factory=dict, description="k8s: node labels the trainer's pod must match"
    )
    termination_grace_s: float = Field(
        30.0, gt=0, description="after a cancel, seconds the trainer gets before it is killed"
    )


class ReproCheckSettings(BaseModel):
    """``training.repro_check``: the ``lora_weights_reproducible`` asset check re-trains the
    newest version from its stored config and dataset and compares the weights' sha256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["auto", "always", "never"] = Field(
        "auto",
        description="auto: only versions trained deterministically on this device type in "
        "under max_train_seconds; always: every version; never: the check reports 'not run'",
    )
    max_train_seconds: float = Field(
        900.0, gt=0, description="auto re-trains a version only when it trained this fast"
    )


class RegularizationSettings(BaseModel):
    """``training.dataset.regularization``: kohya's regularization (prior-preservation)
    images, written to ``reg/<repeats>_<class_name>/`` of the training folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["none", "folder", "generate"] = Field(
        "none",
        description="folder: images (+ optional .txt captions) from `folder`; generate: "
        "rendered by the base model from the captions' class words; none: off",
    )
    folder: str | None = Field(None, description="source folder: the images to use")
    class_prompt: str | None = Field(
        None,
        description="caption of a regularization image without a .txt (folder) and prompt of "
        "every generated one; None: each training caption without its trigger words",
    )
    class_name: str = Field("class", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    images: int = Field(8, ge=1, description="generate: how many images (at most, folder)")
    repeats: int = Field(1, ge=1)
    num_inference_steps: int = Field(25, ge=1, description="generate: denoising steps")
    guidance_scale: float = Field(7.5, ge=0, description="generate: classifier-free guidance")
    seed: int = Field(0, description="generate: image i uses seed + i")


class DatasetSettings(BaseModel):
    """``training.dataset``: the layout of the training folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layout: DatasetLayout = Field(
        "flat",
        description="flat: one <repeats>_<concept>/ folder; per_character: a kohya concept "
        "folder per character the captions name (repeats balance them), the rest in the "
        "concept's folder",
    )
    max_repeats: int = Field(
        10, ge=1, description="per_character: most repeats a rare character's images get"
    )
    concept_repeats: dict[str, int] = Field(
        default_factory=dict,
        description="repeats by concept or character name (kohya's <repeats>_<name>), over "
        "the concept's 1 and the per_character balancing",
    )
    masks: MaskSource = Field(
        "none",
        description="faces: write <frame>.mask.png from the faces asset's boxes, for "
        "masked_loss; none: no masks",
    )
    mask_padding: float = Field(
        0.25, ge=0, le=2, description="masks: each face box grown by this share of its size"
    )
    regularization: RegularizationSettings = RegularizationSettings()


class TrainingSettings(BaseModel):
    """``training:`` section of configs/base.yml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: str = Field("sd15", description="a name in configs/presets/ or a YAML path")
    window_days: int = Field(7, ge=1, description="train on captions of the last N days")
    concept: str = "style"
    dataset: DatasetSettings = DatasetSettings()
    model_cache_dir: str = f"{DEFAULT_MODEL_DIR}/diffusion"
    reward: RewardConfig = RewardConfig()
    labels_path: str | None = Field(None, description="CSV/JSON of frame_id,label (optional)")
    evaluation: EvalConfig = EvalConfig()
    reference_images: int = Field(64, ge=2, description="curated frames FID compares with")
    allow_tiny_promotion: bool = Field(
        False, description="let a LoRA trained on the tiny random-init model go live (demo)"
    )
    log_every_n_steps: int = Field(
        25,
        ge=1,
        description="every trainer (LoRA, caption fine-tune) logs step 1, every Nth and the last",
    )
    launcher: TrainerLaunchSettings = TrainerLaunchSettings()
    backend: BackendName = Field(
        "local", description="where the LoRA trains: local (diffusers + PEFT), comfyui, replicate"
    )
    comfyui: ComfyUISettings = ComfyUISettings()
    replicate: ReplicateSettings = ReplicateSettings()
    remote: RemoteCallSettings = RemoteCallSettings()
    repro_check: ReproCheckSettings = ReproCheckSettings()


class TrainingDatasetDocument(BaseModel):
    """``training_dataset/<partition>.json``: where the day's training folder is, what it holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = Field(description="store folder of the training images and captions")
    dataset_hash: str
    images: int
    buckets: dict[str, int] = Field(description="images per aspect-ratio bucket")
    skipped: list[dict[str, str]] = Field(description="frame_id + reason of each item left out")
    partitions: list[str] = Field(description="caption partitions of the window")
    manifest: str = Field(description="store key of manifest.json")
    layout: DatasetLayout = Field("flat", description="training.dataset.layout it was built with")
    concepts: dict[str, int] = Field(
        default_factory=dict, description="images per concept folder (<repeats>_<name>)"
    )
    regularization: int = Field(0, description="regularization images (reg/ folder)")
    masks: int = Field(0, description="images with a loss mask (<frame>.mask.png)")
    examples_per_epoch: int = Field(0, description="images x repeats, regularization included")


class RewardModelDocument(BaseModel):
    """``reward_model/<partition>.json``: the brand MLP's facts, or why none was trained.

    Untrained: ``trained``, ``reason``, ``examples``. Trained: ``trained``, ``prefix``,
    ``examples`` and the model's facts. Absent fields are left out of the JSON.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    trained: bool
    examples: list[int] = Field(description="[negatives, positives]")
    reason: str | None = None
    prefix: str | None = Field(None, description="store folder of the weights")
    dim: int | None = None
    hidden: int | None = None
    embedding_model: str | None = None
    auc: float | None = Field(None, description="held-out ROC AUC")
    train_loss: float | None = None
    n_train: int | None = None
    n_holdout: int | None = None
    n_positive: int | None = None
    n_negative: int | None = None
    config: RewardConfig | None = None

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # the stored JSON of an untrained model has no model facts, not nulls
        return {k: v for k, v in handler(self).items() if v is not None}


class LoraWeightsDocument(BaseModel):
    """``lora_weights/<partition>.json``: the published LoRA version and how it was made.

    Extra keys are kept: the model resolver's facts (``model_*``) ride along unchanged.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    prefix: str = Field(description="store folder of the version")
    pruned: list[str] = Field(description="versions deleted after publishing")
    version: str
    partition: str
    weights: str = Field(description="file name of the weights in the version folder")
    sha256: str
    dataset_hash: str
    config_hash: str
    config: dict[str, Any]
    seed: int
    backend: str
    steps: int
    epochs: int
    final_loss: float
    losses: list[float]
    seconds: float
    device: str
    mixed_precision: str
    family: str
    n_images: int
    lora_parameters: int
    notes: list[str]
    cache: dict[str, Any] = Field(
        default_factory=dict, description="latent and text cache hits, misses and bypasses"
    )
    determinism: str = Field("", description="which reproducibility holds for this run")
    model_path: str
    model_profile: str
    model_profile_requested: str
    model_profile_reason: str
    estimate: dict[str, Any]
    torch_threads: int
    versions: dict[str, str]


class SampleRef(BaseModel):
    """One evaluation sample saved in storage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    seed: int
    key: str = Field(description="store key of the PNG")


class MetricsDocument(BaseModel):
    """``metrics/<partition>.json``: evaluation of the day's LoRA and its regressions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lora_version: str
    metrics: dict[str, float | int | str | None]
    previous_partition: str | None = Field(description="the run compared with (None: first)")
    regressions: list[dict[str, Any]] = Field(description="metrics worse beyond tolerance")
    compared: list[str] = Field(description="metrics present in both runs")
    samples: list[SampleRef] = Field(
        default_factory=list, description="every generated sample, in prompt x seed order"
    )
    grid: str | None = Field(None, description="store key of the prompt x seed sample grid")
    previous_grid: str | None = Field(None, description="the compared run's grid, if stored")


class PromotionEvent(BaseModel):
    """One change of the live LoRA: who, when, which version and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    action: Literal["promote", "rollback"]
    at: dt.datetime
    by: str = Field(description="'promoted_lora' for the nightly asset, else the user")
    reason: str = ""


class LiveLora(BaseModel):
    """The ``lora_weights`` version that is live (served, never pruned) and its history.

    Stored at ``storage.layout.live_lora_key()``; ``version`` is None until a first
    promotion. Newest event last.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str | None = None
    sha256: str | None = None
    history: list[PromotionEvent] = Field(default_factory=list)


class PromotedLoraDocument(BaseModel):
    """``promoted_lora/<partition>.json``: what the nightly promotion decided for the day.

    ``promoted``: the day's version went live. ``already_live``: it was live before this run
    (a re-run). ``newer_live``: a later version is live, so it was left alone (the asset
    never moves the live version backwards; ``style-pipeline lora rollback`` does).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Literal["promoted", "already_live", "newer_live"]
    version: str = Field(description="the day's lora_weights version")
    sha256: str = Field(description="sha256 of the version's weights")
    previous: str | None = Field(description="the version live before it (None: first)")
    live: str = Field(description="the version live after this decision")
    at: dt.datetime | None = Field(description="when the day's version went live")
