"""An in-memory RemoteBackend for the job lifecycle tests: scripted statuses, counted calls.

Its counters can live in a JSON file (``state``), so a run killed in a child process and
the re-run in the test process see the same service (what a real service would be).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from style_pipeline.contracts.remote_training import RemoteCallSettings
from style_pipeline.contracts.training import DatasetBuildConfig, TrainingSettings
from style_pipeline.storage.store import Store
from style_pipeline.training.dataset import build_training_dataset
from style_pipeline.training.remote.base import Availability, RemoteStatus, RemoteTrainingError
from style_pipeline_tests.training.factories import write_images

WEIGHTS = "pytorch_lora_weights.safetensors"


class FakeRemote:
    name = "comfyui"

    def __init__(
        self,
        script: list[RemoteStatus | BaseException],
        state: Path | None = None,
        available: Availability | None = None,
        weights_gone: bool = False,
        on_status: Any = None,
    ) -> None:
        self.script, self.state_file = list(script), state
        self._available = available or Availability(True, "fake ready", vram_gb=80.0)
        self.weights_gone, self.on_status = weights_gone, on_status
        self._state: dict[str, Any] = {"submits": [], "cancels": [], "polls": 0, "downloads": 0}
        if state is not None and state.exists():
            self._state = json.loads(state.read_text())

    # counters (persisted when a state file is given)
    def _write(self) -> None:
        if self.state_file is not None:
            self.state_file.write_text(json.dumps(self._state))

    @property
    def submits(self) -> list[str]:
        return self._state["submits"]

    @property
    def cancels(self) -> list[str]:
        return self._state["cancels"]

    @property
    def downloads(self) -> int:
        return self._state["downloads"]

    # the RemoteBackend protocol
    def available(self) -> Availability:
        return self._available

    def submit(self, dataset_dir: Path, config: Any, job_id: str, progress_log: Any) -> str:
        assert (Path(dataset_dir) / "metadata.jsonl").is_file()
        progress_log("uploaded 4 images")
        remote_id = f"remote-{len(self.submits) + 1}"
        self._state["submits"].append(remote_id)
        self._write()
        return remote_id

    def status(self, remote_id: str) -> RemoteStatus:
        self._state["polls"] += 1
        self._write()
        if self.on_status is not None:
            self.on_status(self._state["polls"])
        if remote_id in self.cancels:
            return RemoteStatus("cancelled", error="cancelled")
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, BaseException):
            raise item
        return item

    def cancel(self, remote_id: str) -> None:
        self._state["cancels"].append(remote_id)
        self._write()

    def logs(self, remote_id: str) -> list[str]:
        return [f"{remote_id}: step 1", f"{remote_id}: done"]

    def download(self, remote_id: str, dest_dir: Path) -> Path:
        if self.weights_gone:
            raise RemoteTrainingError(f"{remote_id}: output no longer on the server")
        self._state["downloads"] += 1
        self._write()
        dest = Path(dest_dir) / WEIGHTS
        dest.parent.mkdir(parents=True, exist_ok=True)
        generator = torch.Generator().manual_seed(0)
        tensors = {
            "unet.down_blocks.0.attentions.0.to_q.lora_A.weight": torch.randn(
                4, 32, generator=generator
            ),
            "unet.down_blocks.0.attentions.0.to_q.lora_B.weight": torch.zeros(32, 4),
        }
        save_file(tensors, str(dest))
        return dest


def running(step: int, total: int = 10, loss: float | None = 0.5) -> RemoteStatus:
    return RemoteStatus("running", step=step, total_steps=total, loss=loss, eta_s=30.0)


def done(seconds: float | None = 120.0) -> RemoteStatus:
    return RemoteStatus("completed", step=10, total_steps=10, loss=0.25, seconds=seconds)


def remote_stage_setup(
    tmp_path: Path, monkeypatch: Any, partition: str
) -> tuple[Store, FakeRemote, TrainingSettings]:
    """A two-picture training dataset for ``partition``, a FakeRemote (running, done) put in
    place of the remote backend, and tiny-preset ComfyUI settings that poll fast."""
    from style_pipeline.training.remote import factory

    store = Store(tmp_path / "storage")
    paths = write_images(tmp_path / "src", [(64, 64), (96, 64)])
    items = [(str(p), f"sks style, picture {i}", f"frame-{i}") for i, p in enumerate(paths)]
    build_training_dataset(items, store, partition, DatasetBuildConfig(resolution=64))
    fake = FakeRemote([running(2), done()])
    monkeypatch.setattr(factory, "remote_backend", lambda training, verify_pipeline: fake)
    settings = TrainingSettings(
        preset="tiny", backend="comfyui", model_cache_dir=str(tmp_path / "models"),
        remote=RemoteCallSettings(poll_interval_s=0.01),
    )  # fmt: skip
    return store, fake, settings
