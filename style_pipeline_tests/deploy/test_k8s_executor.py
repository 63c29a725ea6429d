"""On Kubernetes each step is its own Job (``executor.kind: k8s_job``), and the op tags of
lora_weights and llm_adapter put their pods on a GPU node. No cluster here: the tests check
the executor Dagster gets and the Job that dagster-k8s builds from the tags (the same call
its step handler makes), not a scheduled pod."""

from __future__ import annotations

import json
import subprocess
import sys

import dagster as dg
import pytest

from style_pipeline.contracts.orchestration import ExecutorSettings
from style_pipeline.defs.executor import K8S_EXECUTOR_NAME, step_executor
from style_pipeline.defs.jobs import ALL_JOBS
from style_pipeline.defs.placement import (
    K8S_CONFIG_TAG,
    K8S_GPU_NODE_SELECTOR,
    K8S_GPU_OP_TAGS,
    K8S_GPU_RESOURCE,
)
from style_pipeline.defs.run import load_defs


def mapped_config(executor: dg.ExecutorDefinition) -> dict:
    result = executor.apply_config_mapping({})
    assert result.success, result.errors
    return result.value["config"]


def test_k8s_job_is_dagster_k8s_job_executor_with_the_pod_cap():
    executor = step_executor(ExecutorSettings(kind="k8s_job", max_concurrent=4))
    assert executor.name == K8S_EXECUTOR_NAME
    config = mapped_config(executor)
    assert config["max_concurrent"] == 4
    assert "start_method" not in config  # the forkserver settings do not apply


def test_k8s_job_without_a_cap():
    config = mapped_config(step_executor(ExecutorSettings(kind="k8s_job")))
    assert config.get("max_concurrent") is None


def test_the_other_kinds_do_not_import_dagster_k8s():
    code = (
        "import sys; from style_pipeline.defs.executor import step_executor; "
        "from style_pipeline.contracts.orchestration import ExecutorSettings; "
        "[step_executor(ExecutorSettings(kind=k)) for k in ('multiprocess', 'in_process')]; "
        "print('dagster_k8s' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("job", [job.name for job in ALL_JOBS])
def test_the_environment_switches_every_job_to_k8s_jobs(monkeypatch, job):
    """What deploy/helm/values.yaml sets on the code location (and so on its runs)."""
    monkeypatch.setenv("STYLE_PIPELINE_EXECUTOR__KIND", "k8s_job")
    monkeypatch.setenv("STYLE_PIPELINE_EXECUTOR__MAX_CONCURRENT", "4")
    executor = load_defs().resolve_job_def(job).executor_def
    assert executor.name == K8S_EXECUTOR_NAME
    assert mapped_config(executor)["max_concurrent"] == 4


def gpu_job():
    """The Job dagster-k8s builds for a step carrying K8S_GPU_OP_TAGS."""
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )

    config = DagsterK8sJobConfig(
        job_image="registry.example.com/style-pipeline-user-code:0.1.0",
        dagster_home="/opt/dagster/dagster_home",
        instance_config_map="dagster-instance",
    )
    user_defined = get_user_defined_k8s_config(K8S_GPU_OP_TAGS)  # validates the tag
    return construct_dagster_k8s_job(
        config, ["dagster", "api", "execute_step"], "dagster-step-x", user_defined
    )


def test_the_gpu_tags_ask_for_one_gpu_on_a_gpu_node():
    assert json.loads(K8S_GPU_OP_TAGS[K8S_CONFIG_TAG])  # a JSON string, as op tags are
    pod = gpu_job().spec.template.spec
    (container,) = pod.containers
    assert container.resources.limits == {K8S_GPU_RESOURCE: "1"}
    assert pod.node_selector == K8S_GPU_NODE_SELECTOR
    (toleration,) = pod.tolerations
    assert (toleration.key, toleration.operator, toleration.effect) == (
        K8S_GPU_RESOURCE,
        "Exists",
        "NoSchedule",
    )


def test_a_step_without_the_tags_asks_for_no_gpu():
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job

    config = DagsterK8sJobConfig(job_image="img", dagster_home="/h", instance_config_map="i")
    pod = construct_dagster_k8s_job(config, ["dagster"], "dagster-step-y").spec.template.spec
    assert not pod.tolerations and not pod.node_selector
    assert not (pod.containers[0].resources and pod.containers[0].resources.limits)


def step_tags(asset: str) -> dict[str, str]:
    defs = load_defs()
    node = defs.resolve_assets_def(asset).node_def
    return dict(node.tags)


# The two trainings: the style LoRA and the LLM adapter.
GPU_ASSETS = ("lora_weights", "llm_adapter")


@pytest.mark.parametrize("asset", GPU_ASSETS)
def test_the_trainings_carry_the_gpu_tags(asset):
    assert step_tags(asset)[K8S_CONFIG_TAG] == K8S_GPU_OP_TAGS[K8S_CONFIG_TAG]


def test_the_other_assets_stay_on_cpu_nodes():
    defs = load_defs()
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        if key.to_user_string() in GPU_ASSETS:
            continue
        tags = defs.resolve_assets_def(key).node_def.tags
        assert K8S_CONFIG_TAG not in tags, key
