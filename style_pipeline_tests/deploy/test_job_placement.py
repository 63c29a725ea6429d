"""Which jobs' runs get the GPUs when every run is its own container (docker/dagster.yaml)."""

from style_pipeline.defs.jobs import ALL_JOBS
from style_pipeline.defs.placement import DOCKER_CONTAINER_CONTEXT_TAG, DOCKER_GPU_RUN_TAGS
from style_pipeline.docker_launcher import tagged_container_context

GPU_JOBS = {
    "nightly_training_job",
    "captioning_job",
    "training_job",
    "nightly_llm_job",
    "speech_job",
    "llm_job",
}


def test_only_the_caption_speech_and_training_jobs_ask_for_gpus():
    tagged = {job.name for job in ALL_JOBS if DOCKER_CONTAINER_CONTEXT_TAG in (job.tags or {})}
    assert tagged == GPU_JOBS
    for job in ALL_JOBS:
        if job.name in GPU_JOBS:
            assert dict(job.tags) == DOCKER_GPU_RUN_TAGS
            context = tagged_container_context(dict(job.tags))
            assert context is not None
            (request,) = context.container_kwargs["device_requests"]
            assert request["capabilities"] == [["gpu"]] and request["count"] == -1
