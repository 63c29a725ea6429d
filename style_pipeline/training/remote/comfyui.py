"""ComfyUI as a remote training backend: a ComfyUI server with the Lora-Training-in-Comfy pack.

Routes used (ComfyUI's server API, as in comfyanonymous/ComfyUI ``server.py``):

- ``GET /system_stats``: reachability, ComfyUI version, ``devices[].vram_total/vram_free``;
- ``GET /object_info/{node_class}``: the node pack is installed, its ``ckpt_name`` choices;
- ``POST /upload/image`` (multipart ``image``, ``subfolder``, ``type=input``,
  ``overwrite=true``): every image and caption of the training folder, one request each,
  into ``input/<output_subfolder>/<job_id>/<repeats>_<concept>/``;
- ``POST /prompt`` ``{prompt, client_id, extra_data}`` -> ``{prompt_id, number, node_errors}``
  (``extra_data.style_pipeline`` keeps what download needs, so any process can download);
- ``/ws?clientId=``: progress and the prompt's end (``comfy_events.py``);
- ``GET /history/{prompt_id}`` (``outputs``, ``status {status_str, completed, messages}``)
  and ``GET /queue`` (``queue_running``, ``queue_pending``): the status whenever asked;
- ``POST /queue {delete: [id]}`` (still queued) or ``POST /interrupt {prompt_id}`` (running);
- ``GET /view?filename=<job_id>.safetensors&subfolder=<output_subfolder>&type=output``: the
  kohya-format LoRA, renamed to diffusers keys and checked with ``load_lora_weights``.

The workflow and what of the config reaches the node: ``comfy_workflow.py``.
"""

from __future__ import annotations

import mimetypes
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from style_pipeline.contracts.remote_training import ComfyUISettings, RemoteCallSettings
from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.training.remote import comfy_workflow as workflow
from style_pipeline.training.remote.base import Availability, RemoteStatus, RemoteTrainingError
from style_pipeline.training.remote.comfy_events import ComfyEvents, PromptEvents, describe_error
from style_pipeline.training.remote.http import RemoteBadAnswer, RemoteHttp, RemoteRefused

EXTRA_KEY = "style_pipeline"  # extra_data key of the facts download needs
GB = 1024**3


def _say(progress_log: Any, line: str) -> None:
    if callable(progress_log):
        progress_log(line)


class ComfyUIBackend:
    """:class:`~style_pipeline.training.remote.base.RemoteBackend` for one ComfyUI server.

    ``verify_pipeline`` is the local pipeline folder the downloaded LoRA must load into (the
    same base model the server trains on, or its tiny stand-in in tests).
    """

    name = "comfyui"

    def __init__(
        self,
        settings: ComfyUISettings,
        call: RemoteCallSettings,
        verify_pipeline: str | Path | None = None,
        *,
        http: RemoteHttp | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.url:
            raise RemoteTrainingError("training.comfyui.url is not set (e.g. http://gpu-box:8188)")
        token = None
        if settings.token_env:
            token = os.environ.get(settings.token_env)
            if not token:
                raise RemoteTrainingError(
                    f"environment variable {settings.token_env} (training.comfyui.token_env) "
                    "is not set"
                )
        self.settings, self.call, self.clock = settings, call, clock
        self.verify_pipeline = Path(verify_pipeline) if verify_pipeline else None
        self.http = http or RemoteHttp(
            settings.url, call, self.name, token, token_env=settings.token_env
        )
        self.client_id = uuid.uuid4().hex
        self._events: ComfyEvents | None = None
        self._cancelled: set[str] = set()  # dequeued here: gone from queue and history

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
        self.http.close()

    # -- availability -----------------------------------------------------------------------

    def available(self) -> Availability:
        try:
            stats = self.http.get_json("/system_stats")
            info = self.http.get_json(f"/object_info/{quote(workflow.NODE_CLASS)}")
        except RemoteTrainingError as exc:
            return Availability(False, str(exc))
        devices = stats.get("devices") if isinstance(stats, dict) else None
        device = devices[0] if isinstance(devices, list) and devices else {}
        total, free = device.get("vram_total"), device.get("vram_free")
        extra = {
            "comfyui_version": (stats.get("system") or {}).get("comfyui_version"),
            "device": device.get("name"),
            "vram_free_gb": round(free / GB, 2) if isinstance(free, int | float) else None,
        }
        vram_gb = round(total / GB, 2) if isinstance(total, int | float) else None
        if not isinstance(info, dict) or workflow.NODE_CLASS not in info:
            return Availability(
                False,
                f"node '{workflow.NODE_CLASS}' not installed on the server: install "
                f"{workflow.NODE_PACK} in ComfyUI/custom_nodes",
                vram_gb,
                extra,
            )
        checkpoints = _choices(info[workflow.NODE_CLASS], "ckpt_name")
        if self.settings.checkpoint and checkpoints and self.settings.checkpoint not in checkpoints:
            return Availability(
                False,
                f"checkpoint {self.settings.checkpoint} not on the server (has: "
                f"{', '.join(checkpoints[:10])})",
                vram_gb,
                extra,
            )
        detail = f"ComfyUI {extra['comfyui_version'] or '?'} on {extra['device'] or '?'}"
        if vram_gb is not None:
            detail += f": {extra['vram_free_gb']} of {vram_gb} GB VRAM free"
        return Availability(True, detail, vram_gb, extra)

    # -- submit -----------------------------------------------------------------------------

    def submit(
        self, dataset_dir: Path, config: LoraTrainingConfig, job_id: str, progress_log: Any
    ) -> str:
        if self.settings.upload != "per_image":
            raise RemoteTrainingError(
                "training.comfyui.upload=zip: ComfyUI has no route that unpacks an archive and "
                f"the {workflow.NODE_CLASS} node reads a folder; use upload: per_image"
            )
        prompt = workflow.build_workflow(config, self.settings, dataset_dir, job_id)
        for note in workflow.unmapped_notes(config):
            _say(progress_log, f"comfyui: {note}")
        self._upload(dataset_dir, job_id, progress_log)
        self._follow()
        extra = {
            "job_id": job_id,
            "output_name": job_id,
            "output_subfolder": self.settings.output_subfolder,
            "train_text_encoder": config.train_text_encoder,
            "total_steps": workflow.total_steps(config, dataset_dir),
        }
        body = {"prompt": prompt, "client_id": self.client_id, "extra_data": {EXTRA_KEY: extra}}
        try:
            answer = self.http.post_json("/prompt", body)
        except RemoteRefused as exc:
            raise RemoteTrainingError(
                f"ComfyUI refused the workflow (is {workflow.NODE_PACK} installed and "
                f"training.comfyui.checkpoint on the server?): {exc}"
            ) from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("prompt_id"), str):
            raise RemoteBadAnswer(f"POST /prompt: no prompt_id in the answer: {str(answer)[:200]}")
        if answer.get("node_errors"):
            raise RemoteTrainingError(f"POST /prompt: node errors {answer['node_errors']}")
        _say(progress_log, f"comfyui: queued prompt {answer['prompt_id']} ({answer.get('number')})")
        return answer["prompt_id"]

    def _upload(self, dataset_dir: Path, job_id: str, progress_log: Any) -> None:
        files = workflow.dataset_files(dataset_dir)
        base = workflow.upload_subfolder(self.settings, job_id)
        every = max(1, len(files) // 10)
        for index, path in enumerate(files, 1):
            subfolder = f"{base}/{path.parent.name}"
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            fields = {"subfolder": subfolder, "type": "input", "overwrite": "true"}
            answer = self.http.post_multipart(
                "/upload/image", fields, {"image": (path.name, path, kind)}
            )
            if not isinstance(answer, dict) or answer.get("name") != path.name:
                raise RemoteBadAnswer(
                    f"POST /upload/image: {path.name} stored as {answer!r} (expected its name)"
                )
            if index % every == 0 or index == len(files):
                _say(progress_log, f"comfyui: uploaded {index}/{len(files)} files")

    def _follow(self) -> None:
        if not self.settings.websocket or self._events is not None:
            return
        url = self.http.ws_url(f"/ws?clientId={self.client_id}")
        self._events = ComfyEvents(
            url, self.http.auth_headers(), timeout_s=self.call.timeout_s, clock=self.clock
        )
        self._events.start(wait_s=min(5.0, self.call.timeout_s))

    # -- follow -----------------------------------------------------------------------------

    def _history(self, prompt_id: str) -> dict[str, Any] | None:
        answer = self.http.get_json(f"/history/{quote(prompt_id)}")
        if not isinstance(answer, dict):
            raise RemoteBadAnswer(f"GET /history/{{id}}: expected an object, got {answer!r:.100}")
        entry = answer.get(prompt_id)
        if entry is not None and not isinstance(entry, dict):
            raise RemoteBadAnswer("GET /history/{id}: the prompt's entry is not an object")
        return entry

    def _queue(self) -> tuple[list[str], list[str]]:
        answer = self.http.get_json("/queue")
        try:
            running = [item[1] for item in answer["queue_running"]]
            pending = [item[1] for item in answer["queue_pending"]]
        except (KeyError, IndexError, TypeError) as exc:
            raise RemoteBadAnswer(f"GET /queue: unexpected shape ({exc})") from exc
        return running, pending

    def status(self, remote_id: str) -> RemoteStatus:
        events = self._events.get(remote_id) if self._events is not None else None
        entry = self._history(remote_id)
        if entry is not None:
            return _finished(entry, events)
        running, pending = self._queue()
        total = events.max if events and events.max else None
        if remote_id in running:
            return RemoteStatus(
                "running",
                step=events.value if events else 0,
                total_steps=total,
                eta_s=events.eta_s(self.clock()) if events else None,
                extra={"websocket": self._events is not None and self._events.connected.is_set()},
            )
        if remote_id in pending:
            return RemoteStatus("queued", extra={"position": pending.index(remote_id) + 1})
        if remote_id in self._cancelled:
            return RemoteStatus("cancelled")
        entry = self._history(remote_id)  # it may have ended between the two requests
        if entry is not None:
            return _finished(entry, events)
        if events is not None and events.final:  # ended, history not written yet
            return RemoteStatus(events.final, step=events.value, total_steps=total)  # type: ignore[arg-type]
        return RemoteStatus(
            "failed",
            error=f"prompt {remote_id} is neither queued, running nor in the history "
            "(ComfyUI restarted or its history was cleared)",
        )

    def cancel(self, remote_id: str) -> None:
        """Dequeue a waiting prompt, interrupt a running one (nothing for an ended one).

        The interrupt flag is checked between nodes and by nodes that report progress; the
        targeted node runs sd-scripts in a subprocess and does neither, so that process may
        run on until it ends on the server. The job is cancelled here either way.
        """
        running, pending = self._queue()
        if remote_id in pending:
            self.http.post_json("/queue", {"delete": [remote_id]})
            self._cancelled.add(remote_id)
        elif remote_id in running:
            self.http.post_json("/interrupt", {"prompt_id": remote_id})

    def logs(self, remote_id: str) -> list[str]:
        lines: list[str] = []
        entry = self._history(remote_id)
        if entry is not None:
            for message in (entry.get("status") or {}).get("messages") or []:
                if isinstance(message, list | tuple) and len(message) == 2:
                    kind, data = message
                    detail = describe_error(data) if kind == "execution_error" else ""
                    lines.append(f"{kind} {detail}".strip())
        events = self._events.get(remote_id) if self._events is not None else None
        return lines + list(events.lines if events else ())

    # -- download ---------------------------------------------------------------------------

    def download(self, remote_id: str, dest_dir: Path) -> Path:
        from safetensors.torch import load, save

        from style_pipeline.training.lora_models import WEIGHT_NAME, canonicalize_safetensors
        from style_pipeline.training.remote.lora_files import (
            verify_loads,
            write_diffusers_lora,
        )

        if self.verify_pipeline is None:
            raise RemoteTrainingError("comfyui: no local pipeline to check the weights with")
        entry = self._history(remote_id)
        if entry is None or _finished(entry, None).status != "completed":
            raise RemoteTrainingError(f"prompt {remote_id} has not completed; no weights yet")
        facts = _extra(entry)
        filename = f"{facts['output_name']}.safetensors"
        raw = Path(dest_dir) / f"comfyui-{filename}"
        params = {"filename": filename, "subfolder": facts["output_subfolder"], "type": "output"}
        try:
            self.http.download("/view", raw, params=params)
        except RemoteRefused as exc:
            raise RemoteTrainingError(
                f"the node ended but {facts['output_subfolder']}/{filename} is not in ComfyUI's "
                "output folder: sd-scripts failed (the node does not report its exit status: "
                f"see the ComfyUI console) or server_output_dir is wrong ({exc})"
            ) from exc
        tensors = load(raw.read_bytes())
        if not facts.get("train_text_encoder", False):
            tensors = {k: v for k, v in tensors.items() if not k.startswith("lora_te")}
        payload = save(tensors, metadata={"source": "comfyui"})
        weights = write_diffusers_lora(payload, Path(dest_dir) / WEIGHT_NAME, f"comfyui:{filename}")
        canonicalize_safetensors(weights)
        verify_loads(weights, self.verify_pipeline)
        raw.unlink()
        return weights


def _choices(node_info: Any, name: str) -> list[str]:
    """A combo input's choices from ``/object_info`` (``input.required.<name>[0]``)."""
    try:
        options = node_info["input"]["required"][name][0]
    except (KeyError, IndexError, TypeError):
        return []
    return [str(o) for o in options] if isinstance(options, list) else []


def _extra(entry: dict[str, Any]) -> dict[str, Any]:
    """The facts ``submit`` left in ``extra_data`` (history's ``prompt`` is
    ``[number, prompt_id, prompt, extra_data, outputs_to_execute]``)."""
    try:
        facts = entry["prompt"][3][EXTRA_KEY]
        facts["output_name"], facts["output_subfolder"]  # noqa: B018 - both must be there
    except (KeyError, IndexError, TypeError) as exc:
        raise RemoteBadAnswer(
            "GET /history/{id}: the prompt carries no style_pipeline extra_data (not ours?)"
        ) from exc
    return facts


def _finished(entry: dict[str, Any], events: PromptEvents | None) -> RemoteStatus:
    """A history entry's outcome: interrupted, error or success, with its run time."""
    status = entry.get("status") or {}
    messages = [m for m in status.get("messages") or [] if isinstance(m, list | tuple)]
    kinds = {m[0]: m[1] for m in messages if len(m) == 2 and isinstance(m[1], dict)}
    started, ended = kinds.get("execution_start", {}), None
    for kind in ("execution_success", "execution_error", "execution_interrupted"):
        if kind in kinds:
            ended = kinds[kind]
    seconds = None
    if started.get("timestamp") and ended and ended.get("timestamp"):
        seconds = (ended["timestamp"] - started["timestamp"]) / 1000.0
    total = None
    try:
        total = _extra(entry).get("total_steps")
    except RemoteBadAnswer:
        pass
    step = events.value if events else 0
    if "execution_interrupted" in kinds:
        return RemoteStatus("cancelled", step=step, total_steps=total, seconds=seconds)
    if status.get("status_str") == "error" or "execution_error" in kinds:
        error = describe_error(kinds.get("execution_error", {}))
        return RemoteStatus("failed", step=step, total_steps=total, error=error, seconds=seconds)
    if status.get("status_str") == "success" or status.get("completed"):
        return RemoteStatus("completed", step=total or step, total_steps=total, seconds=seconds)
    return RemoteStatus("running", step=step, total_steps=total)
