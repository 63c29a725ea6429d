"""Every storage key of the pipeline, in one place (keys are relative to the storage root).

Tables ``<asset>/<partition>.parquet`` and documents ``<asset>/<partition>.json`` are
written by the IO managers; files that belong to one partition live under
``<asset>/<partition>/``; content-addressed objects and caches under
``<asset>/objects|cache/``. Domain code asks this module for keys and never slices them
by position: ``partition_of`` parses a partition back out of a key.
"""

from __future__ import annotations

import datetime as dt
import re

RAW_MEDIA = "raw_media"
FRAMES = "frames"
DEDUP_SET = "dedup_set"
EMBEDDINGS = "embeddings"
CAPTIONS = "captions"
CAPTION_MODEL = "caption_model"
TRAINING_DATASET = "training_dataset"
REWARD_MODEL = "reward_model"
LORA_WEIGHTS = "lora_weights"
METRICS = "metrics"
PROMOTED_LORA = "promoted_lora"
SCORES = "scores"
RANKING = "ranking"
CURATED_LIST = "curated_list"
CURATED_FRAMES = "curated_frames"
# Pictures for the Dagster UI (frame strips, sample grids, loss curves), per asset and day.
REPORTS = "reports"

RAW_OBJECTS = f"{RAW_MEDIA}/objects"
RAW_QUARANTINE = f"{RAW_MEDIA}/quarantine"
RAW_LEDGER = f"{RAW_MEDIA}/ledger"
DEDUP_INDEX = f"{DEDUP_SET}/index"
EMBEDDING_CACHE = f"{EMBEDDINGS}/cache"
CAPTION_CACHE = f"{CAPTIONS}/cache"
TRAINING_CACHE = f"{TRAINING_DATASET}/cache"
JUDGMENT_CACHE = f"{RANKING}/cache"

_PARTITION = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def check_partition(partition: str) -> str:
    """``partition`` when it is a ``YYYY-MM-DD`` date, else ``ValueError``."""
    if not _PARTITION.match(partition):
        raise ValueError(f"not a daily partition key: {partition!r}")
    dt.date.fromisoformat(partition)
    return partition


def table_key(asset: str, partition: str) -> str:
    """The Parquet table of ``asset`` for one day (written by the IO manager)."""
    return f"{asset}/{check_partition(partition)}.parquet"


def document_key(asset: str, partition: str) -> str:
    """The JSON document of ``asset`` for one day (written by the IO manager)."""
    return f"{asset}/{check_partition(partition)}.json"


def partition_dir(asset: str, partition: str) -> str:
    """The folder of files that belong to one day of ``asset``."""
    return f"{asset}/{check_partition(partition)}"


def partition_of(key: str, asset: str) -> str | None:
    """The partition of a table, document or day folder key of ``asset`` (None: not one)."""
    head = f"{asset}/"
    if not key.startswith(head):
        return None
    name = key[len(head) :].split("/", 1)[0]
    for suffix in (".parquet", ".json"):
        name = name.removesuffix(suffix)
    return name if _PARTITION.match(name) else None


def raw_object_key(media_id: str, suffix: str) -> str:
    """A stored original, content-addressed by its sha256 (``suffix`` with its dot)."""
    return f"{RAW_OBJECTS}/{media_id[:2]}/{media_id}{suffix}"


def quarantine_key(partition: str, name: str) -> str:
    """A rejected file of one day kept for inspection (``name`` already made safe)."""
    return f"{RAW_QUARANTINE}/{check_partition(partition)}/{name}"


def ledger_dir(media_id: str) -> str:
    """The sightings of one content hash (one immutable object per day it was seen)."""
    return f"{RAW_LEDGER}/{media_id}"


def ledger_key(media_id: str, partition: str) -> str:
    """The sighting of ``media_id`` on one day."""
    return f"{ledger_dir(media_id)}/{check_partition(partition)}.json"


def frame_key(partition: str, frame_id: str) -> str:
    """A frame JPEG of one day."""
    return f"{partition_dir(FRAMES, partition)}/{frame_id}.jpg"


def metrics_sample_key(partition: str, name: str) -> str:
    """A sample image generated while evaluating the day's LoRA."""
    return f"{partition_dir(METRICS, partition)}/samples/{name}"


def report_key(asset: str, partition: str, name: str) -> str:
    """A picture about one day of ``asset`` shown in its Dagster metadata."""
    if "/" in name or not _PICTURE_NAME.match(name):
        raise ValueError(f"not a picture file name: {name!r}")
    return f"{REPORTS}/{asset}/{check_partition(partition)}/{name}"


_PICTURE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.(?:jpg|png)$")
_DAY = r"\d{4}-\d{2}-\d{2}"
_PUBLIC_PICTURE = re.compile(
    rf"^(?:{REPORTS}/[a-z_]+/{_DAY}|{METRICS}/{_DAY}/samples)/"
    r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.(?:jpg|png)$"
)


def is_public_picture(key: str) -> bool:
    """Whether ``key`` is a report picture or an evaluation sample: what the web app may
    serve to the Dagster UI by key (nothing else of the store is reachable that way)."""
    return _PUBLIC_PICTURE.match(key) is not None


def lora_version_dir(version: str) -> str:
    """The folder of one published LoRA version."""
    return f"{LORA_WEIGHTS}/{version}"


def caption_model_dir(version: str) -> str:
    """The folder of one fine-tuned caption-model version."""
    return f"{CAPTION_MODEL}/{version}"


def quarantine_reason_key(quarantined: str) -> str:
    """The ``.reason.json`` kept beside a quarantined file (``quarantined``: its key)."""
    return f"{quarantined}.reason.json"


def dedup_index_key(partition: str, prefix: str = DEDUP_INDEX) -> str:
    """One day's entries of the incremental dedup index (``prefix``: its folder)."""
    return f"{prefix.rstrip('/')}/{check_partition(partition)}.parquet"


def embedding_cache_dir(model_key: str, prefix: str = EMBEDDING_CACHE) -> str:
    """The cached vectors of one model (``model_key``: the model id made storage-safe)."""
    return f"{prefix.strip('/')}/{model_key}"


def embedding_cache_key(cache_dir: str, sha256: str) -> str:
    """One cached vector, by the content sha256 of its image, under ``embedding_cache_dir``."""
    return f"{cache_dir}/{sha256[:2]}/{sha256}.npy"


FACE_CACHE = "characters/cache"


def face_cache_key(cache_dir: str, fingerprint: str, sha256: str) -> str:
    """The faces found in one image (JSON), by its content sha256, under ``cache_dir``
    (``characters.cache_dir``) and the ``fingerprint`` of the face models and settings
    that found them: another detector, embedder or setting never reads them."""
    if not re.fullmatch(r"[0-9a-f]{16,64}", fingerprint):
        raise ValueError(f"not a hex fingerprint: {fingerprint!r}")
    if not _SHA256.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"{cache_dir.strip('/')}/faces/{fingerprint}/{sha256[:2]}/{sha256}.json"


OVERRIDE_SUFFIXES = (".yaml", ".yml", ".json")


def override_keys(partition: str, prefix: str = "") -> list[str]:
    """Where a day's curation overrides may be, one key per accepted suffix.

    Overrides live in their own root (``overrides_root``), so ``prefix`` is usually empty.
    """
    base = f"{prefix.rstrip('/')}/{partition}" if prefix else partition
    return [f"{base}{suffix}" for suffix in OVERRIDE_SUFFIXES]


def caption_cache_key(digest: str) -> str:
    """A cached endpoint answer, addressed by the sha256 of (image, prompt, model)."""
    return f"{CAPTION_CACHE}/{digest}.json"


def caption_model_file(version: str, name: str) -> str:
    """A file of one caption-model version."""
    return f"{caption_model_dir(version)}/{name}"


def caption_model_version_of(key: str) -> str:
    """The version name of a key listed under ``caption_model/``."""
    return _first_part_under(key, CAPTION_MODEL)


def training_dataset_file(partition: str, rel: str) -> str:
    """A file of one day's training folder (``rel``: its path inside the folder)."""
    return f"{partition_dir(TRAINING_DATASET, partition)}/{rel}"


def training_cache_dir(kind: str, model_hash: str) -> str:
    """The cached encoder outputs of one model for LoRA training: ``kind`` is ``latents``
    (VAE posteriors) or ``text`` (frozen text-encoder states); ``model_hash`` (hex) names
    the encoder, its dtype and device, so another model or precision never reads them."""
    if kind not in ("latents", "text"):
        raise ValueError(f"not a training cache kind: {kind!r}")
    if not re.fullmatch(r"[0-9a-f]{16,64}", model_hash):
        raise ValueError(f"not a hex model hash: {model_hash!r}")
    return f"{TRAINING_CACHE}/{kind}/{model_hash}"


def training_cache_key(cache_dir: str, digest: str) -> str:
    """One cached entry under ``training_cache_dir``, by the sha256 of what it encodes."""
    if not _SHA256.match(digest):
        raise ValueError(f"not a sha256 hex digest: {digest!r}")
    return f"{cache_dir}/{digest[:2]}/{digest}.safetensors"


TRAINING_CHECKPOINTS = f"{TRAINING_DATASET}/checkpoints"


def training_checkpoint_run_dir(config_hash: str, dataset_hash: str) -> str:
    """The resumable checkpoints of one LoRA training run, by (config hash, dataset hash)."""
    for name, value in (("config", config_hash), ("dataset", dataset_hash)):
        if not re.fullmatch(r"[0-9a-f]{12,64}", value):
            raise ValueError(f"not a hex {name} hash: {value!r}")
    return f"{TRAINING_CHECKPOINTS}/{config_hash[:12]}-{dataset_hash[:12]}"


def training_checkpoint_dir(run_dir: str, step: int) -> str:
    """One checkpoint of a run (``step_<n>``, zero-padded so the names sort by step)."""
    if step < 1:
        raise ValueError(f"checkpoint step must be at least 1, got {step}")
    return f"{run_dir}/step_{step:08d}"


def training_checkpoint_step_of(key: str) -> int | None:
    """The step of a ``training_checkpoint_dir`` key; None for anything else."""
    match = re.fullmatch(r".*/step_(\d{8})", key)
    return int(match.group(1)) if match else None


def reward_model_file(partition: str, name: str) -> str:
    """A file of one day's brand reward model."""
    return f"{partition_dir(REWARD_MODEL, partition)}/{name}"


def lora_version_file(version: str, name: str) -> str:
    """A file of one published LoRA version."""
    return f"{lora_version_dir(version)}/{name}"


def lora_version_of(key: str) -> str:
    """The version name of a key listed under ``lora_weights/``."""
    return _first_part_under(key, LORA_WEIGHTS)


# Remote training jobs (ComfyUI, Replicate): one record per job id (backend + config hash +
# dataset hash), rewritten on every transition, and its log lines beside it.
TRAINING_JOBS = "training_jobs"
_JOB_ID = re.compile(r"^[a-z]+-[0-9a-f]{16}$")


def _check_job_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        raise ValueError(f"not a training job id (<backend>-<16 hex>): {job_id!r}")
    return job_id


def training_job_key(job_id: str) -> str:
    """A remote training job's record (``TrainingJob``)."""
    return f"{TRAINING_JOBS}/{_check_job_id(job_id)}.json"


def training_job_log_key(job_id: str) -> str:
    """A remote training job's log lines (transitions, progress, errors; never a token)."""
    return f"{TRAINING_JOBS}/{_check_job_id(job_id)}.log"


def training_job_of(key: str) -> str | None:
    """The job id of a record key listed under ``training_jobs/`` (None for a log or other)."""
    head = f"{TRAINING_JOBS}/"
    if not key.startswith(head) or not key.endswith(".json"):
        return None
    job_id = key[len(head) : -len(".json")]
    return job_id if _JOB_ID.match(job_id) else None


def _first_part_under(key: str, asset: str) -> str:
    head = f"{asset}/"
    if not key.startswith(head):
        raise ValueError(f"not a key under {head}: {key!r}")
    return key[len(head) :].split("/", 1)[0]


# The hot-folder sensor's state snapshots (issue 17): content-addressed by the sha256 of
# the stored bytes, so the Dagster cursor needs to carry only that digest.
RAW_SENSOR_STATE = f"{RAW_MEDIA}/sensor"
_SENSOR_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_STATE_SUFFIX = ".json.gz"


def sensor_state_dir(sensor: str) -> str:
    """The state snapshots of one sensor (``sensor``: its Dagster name)."""
    if not _SENSOR_NAME.match(sensor):
        raise ValueError(f"not a sensor name: {sensor!r}")
    return f"{RAW_SENSOR_STATE}/{sensor}"


def sensor_state_key(sensor: str, digest: str) -> str:
    """One snapshot of a sensor's state, named by the sha256 of its bytes."""
    if not _SHA256.match(digest):
        raise ValueError(f"not a sha256 hex digest: {digest!r}")
    return f"{sensor_state_dir(sensor)}/{digest}{_STATE_SUFFIX}"


def sensor_state_digest_of(key: str, sensor: str) -> str | None:
    """The digest of a snapshot key of ``sensor`` (None: not a snapshot key)."""
    head = f"{sensor_state_dir(sensor)}/"
    if not key.startswith(head) or not key.endswith(_STATE_SUFFIX):
        return None
    digest = key[len(head) : -len(_STATE_SUFFIX)]
    return digest if _SHA256.match(digest) else None


def live_lora_key() -> str:
    """The ``LiveLora`` document: which LoRA version is live, and its promotion history."""
    return f"{PROMOTED_LORA}/live.json"


def judgments_key(partition: str) -> str:
    """The day's pairwise judgments and judge spend (``JudgmentsDocument``)."""
    return f"{partition_dir(RANKING, partition)}/judgments.json"


def judgment_cache_key(digest: str) -> str:
    """A cached judgment, named by the hash of (pair contents, theme, model, prompt)."""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return f"{JUDGMENT_CACHE}/{digest[:2]}/{digest}.json"


# Characters: a day's unknown face groups each leave one representative crop, for a user to
# copy into data/characters/<name>/ (then the next run names that group).
CHARACTERS = "characters"
_UNKNOWN_GROUP = re.compile(r"^unknown_\d+$")


def unknown_group_key(partition: str, label: str) -> str:
    """The representative face crop of the day's unknown group ``label`` (``unknown_<n>``)."""
    if not _UNKNOWN_GROUP.match(label):
        raise ValueError(f"not an unknown group label: {label!r}")
    return f"{partition_dir(CHARACTERS, partition)}/{label}.jpg"


def unknown_group_of(key: str) -> str | None:
    """The label of an ``unknown_group_key`` (None: not one)."""
    name = key.rsplit("/", 1)[-1].removesuffix(".jpg")
    return name if key.endswith(".jpg") and _UNKNOWN_GROUP.match(name) else None


def export_key(partition: str, rank: int, frame_id: str) -> str:
    """A chosen frame copied in rank order into the day's export folder."""
    return f"{partition_dir(CURATED_LIST, partition)}/export/{rank:04d}_{frame_id}.jpg"


# Retention (``stages/retention.py``) dates what it deletes by the keys themselves, never by
# file times (caches excepted): these parse the keys that do not start with ``<asset>/<day>``.
_RAW_OBJECT = re.compile(rf"^{RAW_OBJECTS}/([0-9a-f]{{2}})/([0-9a-f]{{64}})(?:\.[A-Za-z0-9]+)?$")
_LEDGER_ENTRY = re.compile(rf"^{RAW_LEDGER}/([0-9a-f]{{64}})/({_DAY})\.json$")
_REPORT = re.compile(rf"^{REPORTS}/([a-z_]+)/({_DAY})/[^/]+$")


def raw_object_media_id(key: str) -> str | None:
    """The sha256 of a ``raw_object_key`` (None: not one)."""
    match = _RAW_OBJECT.match(key)
    if match is None or not match.group(2).startswith(match.group(1)):
        return None
    return match.group(2)


def ledger_entry_of(key: str) -> tuple[str, str] | None:
    """(sha256, day) of a ``ledger_key`` (None: not one, e.g. a temp file)."""
    match = _LEDGER_ENTRY.match(key)
    return (match.group(1), match.group(2)) if match else None


def report_of(key: str) -> tuple[str, str] | None:
    """(asset, day) of a ``report_key`` (None: not one)."""
    match = _REPORT.match(key)
    return (match.group(1), match.group(2)) if match else None


# LLM adapter side (llm_adapter, llm_eval, promoted_llm_adapter): adapter versions are
# ``llm_adapter/<YYYY-MM-DD>.<NNN>/`` beside the day documents ``llm_adapter/<day>.json``.
LLM_ADAPTER = "llm_adapter"
LLM_EVAL = "llm_eval"
PROMOTED_LLM_ADAPTER = "promoted_llm_adapter"
SFT_DATASET_ASSET = "sft_dataset"
_LLM_VERSION = re.compile(rf"^{_DAY}\.\d{{3,}}$")


def llm_adapter_dir(version: str) -> str:
    """The folder of one published LLM adapter version."""
    if not _LLM_VERSION.match(version):
        raise ValueError(f"not an adapter version <YYYY-MM-DD>.<NNN>: {version!r}")
    return f"{LLM_ADAPTER}/{version}"


def llm_adapter_file(version: str, name: str) -> str:
    """A file of one published LLM adapter version."""
    return f"{llm_adapter_dir(version)}/{name}"


def llm_adapter_version_of(key: str) -> str | None:
    """The version of a key listed under ``llm_adapter/`` (None: a day document or other)."""
    part = _first_part_under(key, LLM_ADAPTER)
    return part if _LLM_VERSION.match(part) else None


def live_llm_adapter_key() -> str:
    """The ``LiveLlmAdapter`` document: the live adapter version and its history."""
    return f"{PROMOTED_LLM_ADAPTER}/live.json"


def sft_split_file(partition: str, split: str) -> str:
    """Default key of an ``sft_dataset`` split's chat JSONL (when its document names none)."""
    return f"{partition_dir(SFT_DATASET_ASSET, partition)}/{split}.jsonl"


# Alignment and SFT (aligned_pairs, sft_dataset): the day's SFT files live in
# ``sft_dataset/<day>/`` (train/val/test.jsonl, rows.parquet, manifest.json).
ALIGNED_PAIRS = "aligned_pairs"
SFT_FILES = ("train", "val", "test", "rows", "manifest")


def sft_file_key(partition: str, name: str) -> str:
    """A file of the day's SFT dataset: a split's JSONL, ``rows`` (parquet) or ``manifest``."""
    suffix = {"rows": ".parquet", "manifest": ".json"}.get(name, ".jsonl")
    if name not in SFT_FILES:
        raise ValueError(f"not an sft_dataset file: {name!r} (one of {SFT_FILES})")
    return f"{partition_dir(SFT_DATASET_ASSET, partition)}/{name}{suffix}"


# Speech side (audio, transcripts): the FLACs are content-addressed by their own sha256;
# the caches are keyed by a derivation key (sha256 of the input and the config fingerprint).
AUDIO = "audio"
TRANSCRIPTS = "transcripts"
AUDIO_OBJECTS = f"{AUDIO}/objects"
AUDIO_CACHE = f"{AUDIO}/cache"
TRANSCRIPT_CACHE = f"{TRANSCRIPTS}/cache"


def _sha256_hex(value: str, what: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"not a sha256 hex digest ({what}): {value!r}")
    return value


def audio_object_key(sha256: str) -> str:
    """A 16 kHz mono FLAC, named by the sha256 of its bytes."""
    _sha256_hex(sha256, "audio")
    return f"{AUDIO_OBJECTS}/{sha256[:2]}/{sha256}.flac"


def audio_cache_key(derivation: str) -> str:
    """The ``audio`` row derived from one video under one audio config (JSON)."""
    _sha256_hex(derivation, "audio derivation")
    return f"{AUDIO_CACHE}/{derivation[:2]}/{derivation}.json"


def transcript_cache_key(derivation: str) -> str:
    """The segments of one FLAC under one model and transcription config (JSON)."""
    _sha256_hex(derivation, "transcript derivation")
    return f"{TRANSCRIPT_CACHE}/{derivation[:2]}/{derivation}.json"
