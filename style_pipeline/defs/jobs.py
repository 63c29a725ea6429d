"""Named asset jobs: what the sensor, the schedule, the UI and ``dagster job backfill`` run.

Every job is a selection of asset groups (the assets carry the daily partitions, so a job
of them is partitioned too, and each selected asset's checks run with it). Runs are then
named after their job in the runs list instead of ``__anonymous_asset_job...``. A range of
days is backfilled with ``dagster job backfill -w workspace.yaml -j <job> --partitions
<d1>,<d2> --noprompt`` (or ``--from``/``--to``), or from the job's Partitions tab in the UI.
"""

import dagster as dg

from style_pipeline.defs.placement import DOCKER_GPU_RUN_TAGS

# What a new arrival refreshes for its day: ingest, then curation.
ARRIVAL_SELECTION = dg.AssetSelection.groups("ingest", "curation")

# What the nightly schedule runs for yesterday: captions, then training, evaluation and
# promotion (promoted_lora is in the training group; metrics' blocking checks gate it).
NIGHTLY_SELECTION = dg.AssetSelection.groups("captioning", "training")

# What the nightly LLM schedule runs for yesterday: the speech group (audio, Whisper
# transcripts, chat events), then the llm group (aligned pairs, SFT dataset, adapter,
# evaluation, promotion; llm_eval's blocking check gates promoted_llm_adapter). Speech runs
# here rather than on arrival for the reason captions do: Whisper wants the GPU, and the
# day's chat logs and videos are all in by then.
NIGHTLY_LLM_SELECTION = dg.AssetSelection.groups("speech", "llm")

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=ARRIVAL_SELECTION,
    description="A day's arrivals: ingest and curation (what hot_folder_sensor runs).",
)
nightly_training_job = dg.define_asset_job(
    "nightly_training_job",
    selection=NIGHTLY_SELECTION,
    description="A day's captions, LoRA, evaluation and promotion (what nightly_training runs).",
    tags=DOCKER_GPU_RUN_TAGS,  # TaggedDockerRunLauncher: the run container gets the GPUs
)

nightly_llm_job = dg.define_asset_job(
    "nightly_llm_job",
    selection=NIGHTLY_LLM_SELECTION,
    description="A day's audio, transcripts, chat events, aligned pairs, SFT dataset, LLM "
    "adapter, evaluation and promotion (what nightly_llm runs).",
    tags=DOCKER_GPU_RUN_TAGS,  # TaggedDockerRunLauncher: the run container gets the GPUs
)

# One job per group, for re-running or backfilling a single group of a day.
ingest_group_job = dg.define_asset_job(
    "ingest_group_job",
    selection=dg.AssetSelection.groups("ingest"),
    description="The ingest group alone: raw_media and frames.",
)
curation_job = dg.define_asset_job(
    "curation_job",
    selection=dg.AssetSelection.groups("curation"),
    description="The curation group alone, on the day's stored frames.",
)
captioning_job = dg.define_asset_job(
    "captioning_job",
    selection=dg.AssetSelection.groups("captioning"),
    description="The captioning group alone, on the day's curated frames.",
    tags=DOCKER_GPU_RUN_TAGS,  # TaggedDockerRunLauncher: the run container gets the GPUs
)
training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups("training"),
    description="The training group alone: dataset, reward model, LoRA, metrics, promotion.",
    tags=DOCKER_GPU_RUN_TAGS,  # TaggedDockerRunLauncher: the run container gets the GPUs
)

speech_job = dg.define_asset_job(
    "speech_job",
    selection=dg.AssetSelection.groups("speech"),
    description="The speech group alone: audio, transcripts and chat events of a day.",
    tags=DOCKER_GPU_RUN_TAGS,  # Whisper: the run container gets the GPUs
)
llm_job = dg.define_asset_job(
    "llm_job",
    selection=dg.AssetSelection.groups("llm"),
    description="The llm group alone: aligned pairs, SFT dataset, adapter, evaluation, "
    "promotion, on the day's stored transcripts and chat events.",
    tags=DOCKER_GPU_RUN_TAGS,  # TaggedDockerRunLauncher: the run container gets the GPUs
)

ALL_JOBS = (
    ingest_job,
    nightly_training_job,
    ingest_group_job,
    curation_job,
    captioning_job,
    training_job,
    nightly_llm_job,
    speech_job,
    llm_job,
)
