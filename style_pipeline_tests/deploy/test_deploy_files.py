"""docker/compose.yaml, its .env.example and the Helm values, checked without an engine.

No Docker engine or Kubernetes cluster runs on the build machines: Compose itself renders
the file (``config`` needs no engine; CI installs Debian's docker-compose, v1, and
``docker compose`` v2 is used where it is the one installed), with docker/.env.example as
the env file, and the test reads what it rendered. The Helm values are checked against
deploy/helm/values.schema.json with check-jsonschema (helm is not installable here).
hadolint checks every docker/Dockerfile* in style_pipeline_tests/test_docker_files.py.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
HELM = ROOT / "deploy" / "helm"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"

SERVICES = {"postgres", "minio", "minio-init", "user-code", "webserver", "daemon", "serve"}
LONG_RUNNING = SERVICES - {"minio-init"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY", re.IGNORECASE)
# The names docker/dagster.yaml attaches every run container to.
NETWORK = "style_pipeline"
DATA_VOLUME = "style_pipeline_data"


def compose_command() -> list[str] | None:
    """``docker-compose`` (v1, what CI installs) or ``docker compose`` (v2), else None."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=60
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def render(env_file: Path) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        pytest.skip("neither docker-compose nor `docker compose` is installed (CI installs it)")
    return subprocess.run(
        [*command, "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def rendered() -> dict:
    """The compose file as Compose renders it with .env.example's values."""
    done = render(ENV_EXAMPLE)
    assert done.returncode == 0, done.stderr
    # Every variable the file uses has a value in .env.example (no "is not set" warning).
    assert "not set" not in done.stderr, done.stderr
    return yaml.safe_load(done.stdout)


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # v1 may render KEY=value lines
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def mounts(service: dict) -> set[tuple[str, str, bool]]:
    """(source, target, read-only) of each volume; v1 renders ``src:dst:mode`` strings,
    v2 long-syntax mappings. A bind mount's source is its path relative to the repo."""
    found = set()
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            read_only = bool(mode) and mode[0] == "ro"
        else:
            source, target = volume["source"], volume["target"]
            read_only = bool(volume.get("read_only"))
        if source.startswith(str(ROOT)):
            source = str(Path(source).relative_to(ROOT))
        found.add((source, target, read_only))
    return found


def test_the_services_are_there(rendered):
    assert set(rendered["services"]) == SERVICES


def test_every_long_running_service_has_a_health_check(rendered):
    for name in LONG_RUNNING:
        check = rendered["services"][name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no health check"
        assert not check.get("disable"), name
    tests = {n: " ".join(rendered["services"][n]["healthcheck"]["test"]) for n in LONG_RUNNING}
    assert "pg_isready" in tests["postgres"]
    assert "mc ready local" in tests["minio"]
    assert "/server_info" in tests["webserver"]
    assert "dagster-daemon liveness-check" in tests["daemon"]
    assert "dagster api grpc-health-check -p 4000" in tests["user-code"]
    assert "/healthz" in tests["serve"]  # style_pipeline.serving.app's health route


def test_services_start_after_what_they_need(rendered):
    services = rendered["services"]

    def after(name: str) -> dict[str, str]:
        deps = services[name].get("depends_on") or {}
        return {d: (c or {}).get("condition", "service_started") for d, c in deps.items()}

    assert after("minio-init") == {"minio": "service_healthy"}
    assert after("user-code") == {
        "postgres": "service_healthy",
        "minio-init": "service_completed_successfully",
    }
    for name in ("webserver", "daemon"):
        assert after(name) == {"postgres": "service_healthy", "user-code": "service_healthy"}
    assert after("serve")["webserver"] == "service_healthy"


def test_the_run_launcher_finds_its_network_and_data_volume_by_name(rendered):
    assert rendered["networks"][NETWORK]["name"] == NETWORK
    volumes = rendered["volumes"]
    assert volumes["data"]["name"] == DATA_VOLUME
    assert {"pgdata", "minio-data"} <= set(volumes)
    instance = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    kwargs = instance["run_launcher"]["config"]["container_kwargs"]
    assert f"{DATA_VOLUME}:/data" in kwargs["volumes"]
    for name in ("user-code", "serve"):
        assert ("data", "/data", False) in mounts(rendered["services"][name]), name
    for name in SERVICES:
        assert set(rendered["services"][name]["networks"]) == {NETWORK}, name
    assert environment(rendered["services"]["daemon"])["DAGSTER_DOCKER_NETWORK"] == NETWORK


def test_the_instance_env_is_wherever_the_instance_opens(rendered):
    """The launcher forwards these from the daemon; Dagster fails a launch on an unset one."""
    instance = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    forwarded = set(instance["run_launcher"]["config"]["env_vars"])
    needed = forwarded | {"DAGSTER_DOCKER_NETWORK"}
    for name in ("webserver", "daemon", "user-code"):
        env = environment(rendered["services"][name])
        assert needed <= set(env), f"{name} lacks {sorted(needed - set(env))}"
        assert all(env[k] for k in needed), name
    user_code = environment(rendered["services"]["user-code"])
    assert user_code["DAGSTER_CURRENT_IMAGE"] == rendered["services"]["user-code"]["image"]
    assert user_code["STYLE_PIPELINE_STORAGE"] == "s3://style-pipeline/storage"


def test_instance_and_workspace_are_mounted_into_dagster_home(rendered):
    instance = ("docker/dagster.yaml", "/opt/dagster/home/dagster.yaml", True)
    workspace = ("docker/workspace.yaml", "/opt/dagster/home/workspace.yaml", True)
    socket = ("/var/run/docker.sock", "/var/run/docker.sock", False)
    for name in ("webserver", "daemon", "user-code"):
        assert instance in mounts(rendered["services"][name]), name
    for name in ("webserver", "daemon"):
        assert {workspace, socket} <= mounts(rendered["services"][name]), name
    (server,) = yaml.safe_load((DOCKER / "workspace.yaml").read_text())["load_from"]
    assert server["grpc_server"] == {
        "host": "user-code",
        "port": 4000,
        "location_name": "style_pipeline",
    }


def test_images_build_from_the_dockerfiles(rendered):
    services = rendered["services"]
    assert services["user-code"]["build"]["dockerfile"].endswith("docker/Dockerfile")
    assert services["webserver"]["build"]["dockerfile"].endswith("docker/Dockerfile.dagster")
    assert services["daemon"]["image"] == services["webserver"]["image"]
    assert services["serve"]["image"] == services["user-code"]["image"]
    assert services["serve"]["command"][:2] == ["style-pipeline", "serve"]


def test_no_secret_is_written_into_the_compose_file():
    """Secret-named variables only ever come from docker/.env, by interpolation."""
    raw = yaml.safe_load(COMPOSE.read_text())
    blocks = [raw.get("x-storage-env", {}), raw.get("x-instance-env", {})]
    blocks += [s.get("environment") or {} for s in raw["services"].values()]
    checked = 0
    for env in blocks:
        for name, value in env.items():
            if name == "<<" or not SECRET_NAME.search(name):
                continue
            checked += 1
            assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{name}: {value}"
    assert checked >= 8


def test_the_env_example_holds_every_variable_and_no_real_secret():
    text = COMPOSE.read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))  # $$ escapes
    example = env_example()
    assert used <= set(example), f"missing in .env.example: {sorted(used - set(example))}"
    for name, value in example.items():
        if SECRET_NAME.search(name) and name != "AWS_ACCESS_KEY_ID":
            assert value == "change-me", f"{name} must be a placeholder in .env.example"
    assert (ROOT / ".gitignore").read_text().count("docker/.env") == 1


def test_a_missing_secret_stops_compose_with_its_name(tmp_path):
    env = tmp_path / "incomplete.env"
    env.write_text(
        "\n".join(f"{k}={v}" for k, v in env_example().items() if k != "DAGSTER_PG_PASSWORD")
    )
    done = render(env)
    assert done.returncode != 0
    assert "set DAGSTER_PG_PASSWORD in docker/.env" in done.stderr


# -- the Dagster image ------------------------------------------------------------------


def dagster_image_packages() -> list[str]:
    """The packages Dockerfile.dagster installs (from constraints.txt)."""
    text = (DOCKER / "Dockerfile.dagster").read_text().replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if "-c constraints.txt" in ln]
    words = line.split("-c constraints.txt", 1)[1].split("&&")[0].split()
    return [w for w in words if not w.startswith("-")]


def requirement_closure(names: list[str]) -> set[str]:
    """The distributions ``names`` install, following their (marker-true) requirements."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = md.distribution(todo.pop()).metadata["Name"].lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for spec in md.requires(name) or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def test_the_dagster_image_holds_everything_the_run_launcher_imports():
    """docker/dagster.yaml names style_pipeline.docker_launcher; that image installs our
    package without its dependencies, so the module may import nothing else of them."""
    code = (
        "import sys, json; before = set(sys.modules); import style_pipeline.docker_launcher; "
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout))
    installed = requirement_closure(dagster_image_packages())
    owners = md.packages_distributions()
    outside = {
        m
        for m in modules
        if m in owners
        and m != "style_pipeline"
        and not {d.lower().replace("_", "-") for d in owners[m]} & installed
    }
    assert not outside, f"imported but not in Dockerfile.dagster: {sorted(outside)}"
    assert {"dagster-postgres", "dagster-docker", "dagster-aws"} <= installed


# -- Helm -------------------------------------------------------------------------------


def helm_values() -> dict:
    return yaml.safe_load((HELM / "values.yaml").read_text())


def test_helm_values_match_the_schema():
    if shutil.which("helm"):  # pragma: no cover - helm is not installable on the build image
        pytest.skip("helm is installed: run `helm template` instead (docs/deployment.md)")
    done = subprocess.run(
        [
            str(CHECK_JSONSCHEMA),
            "--schemafile",
            str(HELM / "values.schema.json"),
            str(HELM / "values.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_refuses_a_misspelt_key_and_a_password(tmp_path):
    schema = json.loads((HELM / "values.schema.json").read_text())
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    assert not list(validator.iter_errors(helm_values()))
    bad = helm_values()
    bad["runLauncher"]["config"]["k8sRunLauncher"]["runK8sconfig"] = {}
    assert list(validator.iter_errors(bad))
    bad = helm_values()
    bad["postgresql"]["postgresqlPassword"] = "hunter2"
    assert list(validator.iter_errors(bad))


def test_helm_values_run_steps_as_k8s_jobs_with_the_user_code_image():
    from style_pipeline.contracts.orchestration import ExecutorSettings

    values = helm_values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"] == ["-m", "style_pipeline.definitions"]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    env = deployment["env"]
    settings = ExecutorSettings(
        kind=env["STYLE_PIPELINE_EXECUTOR__KIND"],
        max_concurrent=int(env["STYLE_PIPELINE_EXECUTOR__MAX_CONCURRENT"]),
    )
    assert settings.kind == "k8s_job"
    assert {m["mountPath"] for m in deployment["volumeMounts"]} == {"/data"}
    assert env["STYLE_PIPELINE_DROP"].startswith("/data/")
