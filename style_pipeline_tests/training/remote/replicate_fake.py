"""A fake Replicate HTTP API v1 on 127.0.0.1 (real HTTP, a thread) for the backend's tests.

Routes and answer shapes follow replicate.com/docs/reference/http: ``GET /v1/account``,
``GET /v1/models/{owner}/{name}``, ``POST /v1/files`` (multipart ``content``),
``POST /v1/models/{owner}/{name}/versions/{version}/trainings``, ``GET /v1/trainings/{id}``,
``POST /v1/trainings/{id}/cancel``. Every route checks ``Authorization: Bearer <token>``.
A training advances ``steps_per_poll`` steps per ``GET`` (tqdm lines in its ``logs``, as
cog-sdxl prints), then succeeds with ``output.weights`` on a second server (the CDN, other
port: it records whether a token reached it) serving a ``trained_model.tar`` (cog-sdxl's
layout) or a bare ``.safetensors``, with kohya or cog-sdxl key names shaped for a real
(tiny) UNet. Faults: ``fail_at_step`` (a failure mid-run), ``faults`` (a queue of
(route prefix, status, body, headers) answers: 429/5xx bursts, malformed JSON) and
``slow_upload_s``.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import io
import json
import tarfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

TOKEN = "r8_fake0123456789abcdefTOKEN"
VERSION = "a" * 64
ATTENTION = (".to_q", ".to_k", ".to_v", ".to_out.0")


def lora_tensors(pipeline_dir: Path, style: str = "kohya", rank: int = 4) -> dict:
    """A random LoRA for every attention projection of the pipeline's UNet, with kohya
    (``lora_unet_..lora_down.weight`` + ``.alpha``) or cog-sdxl (``...processor.to_q_lora
    .down.weight``) key names; shapes read from the UNet's safetensors header."""
    generator = torch.Generator().manual_seed(0)
    out = {}
    for file in sorted((Path(pipeline_dir) / "unet").glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as fh:
            for key in fh.keys():
                shape = fh.get_slice(key).get_shape()
                module = key.removesuffix(".weight")
                if not (key.endswith(".weight") and len(shape) == 2):
                    continue
                if not any(module.endswith(t) for t in ATTENTION):
                    continue
                down = torch.randn(rank, shape[1], generator=generator) * 0.1
                up = torch.randn(shape[0], rank, generator=generator) * 0.1
                if style == "kohya":
                    name = "lora_unet_" + module.replace(".", "_")
                    out[f"{name}.lora_down.weight"] = down
                    out[f"{name}.lora_up.weight"] = up
                    out[f"{name}.alpha"] = torch.tensor(float(rank) / 2)
                else:
                    parent, _, proj = module.rpartition(".to_")
                    proj = proj.removesuffix(".0")  # to_out.0 -> processor.to_out_lora
                    out[f"{parent}.processor.to_{proj}_lora.down.weight"] = down
                    out[f"{parent}.processor.to_{proj}_lora.up.weight"] = up
    return out


def weights_payload(tensors: dict, archive: bool) -> bytes:
    """cog-sdxl's ``trained_model.tar`` (lora.safetensors, embeddings.pti,
    special_params.json) or the bare safetensors bytes."""
    data = save(tensors)
    if not archive:
        return data
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in (
            ("lora.safetensors", data),
            ("embeddings.pti", save({"text_encoders_0": torch.zeros(2, 4)})),
            ("special_params.json", b'{"TOK": "<s0><s1>"}'),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@dataclass
class FakeReplicate:
    """State of the fake service; the tests set the knobs and read what it received."""

    weights: bytes = b""
    weights_name: str = "trained_model.tar"
    steps_per_poll: int = 2
    fail_at_step: int | None = None
    slow_upload_s: float = 0.0
    predict_seconds_per_step: float = 1.5
    faults: list[tuple[str, int, str, dict]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    trainings: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    cdn_authorization: list[str | None] = field(default_factory=list)
    base_url: str = ""
    cdn_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def advance(self, training: dict[str, Any]) -> None:
        """One poll's worth of progress."""
        if training["status"] in ("succeeded", "failed", "canceled"):
            return
        total = training["_total"]
        if training["status"] == "starting":
            training["status"] = "processing"
            training["started_at"] = "2026-01-01T00:00:00.000Z"
            training["logs"] = "Loading SDXL...\n"
            return
        step = min(total, training["_step"] + self.steps_per_poll)
        training["_step"] = step
        if self.fail_at_step is not None and step >= self.fail_at_step:
            training["status"] = "failed"
            training["error"] = f"CUDA out of memory at step {step} (token={TOKEN})"
            training["completed_at"] = "2026-01-01T00:01:00.000Z"
            return
        percent = int(100 * step / total)
        left = int((total - step) * self.predict_seconds_per_step)
        training["logs"] += (
            f"# PTI :step: {step}, epoch: 0: {percent:3d}%|#| {step}/{total} "
            f"[00:{step:02d}<00:{left:02d},  1.00it/s]\r loss: {1.0 / step:.4f}\n"
        )
        if step >= total:
            training["status"] = "succeeded"
            training["completed_at"] = "2026-01-01T00:02:00.000Z"
            training["metrics"] = {"predict_time": total * self.predict_seconds_per_step}
            training["output"] = {
                "version": f"tester/style:{'b' * 64}",
                "weights": f"{self.cdn_url}/pbxt/{training['id']}/{self.weights_name}",
            }


class _Api(BaseHTTPRequestHandler):
    fake: FakeReplicate

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: Any, headers: dict | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (the slow-upload test): nothing to answer

    def _fault(self) -> bool:
        with self.fake.lock:
            for i, (prefix, status, body, headers) in enumerate(self.fake.faults):
                if self.path.startswith(prefix):
                    del self.fake.faults[i]
                    self._send(status, body.encode(), headers)
                    return True
        return False

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self._send(401, {"title": "Unauthenticated", "detail": "You did not pass a valid token"})
        return False

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        self.fake.requests.append(("GET", self.path))
        if self._fault() or not self._authorized():
            return
        parts = self.path.strip("/").split("/")
        if parts == ["v1", "account"]:
            return self._send(200, {"type": "user", "username": "tester", "name": "Tester"})
        if parts[:2] == ["v1", "models"] and len(parts) == 4:
            return self._send(200, {"owner": parts[2], "name": parts[3],
                                    "latest_version": {"id": VERSION}})  # fmt: skip
        if parts[:2] == ["v1", "trainings"] and len(parts) == 3:
            with self.fake.lock:
                training = self.fake.trainings.get(parts[2])
                if training is None:
                    return self._send(404, {"detail": "Not found."})
                self.fake.advance(training)
                shown = {k: v for k, v in training.items() if not k.startswith("_")}
            return self._send(200, shown)
        self._send(404, {"detail": "Not found."})

    def do_POST(self) -> None:
        self.fake.requests.append(("POST", self.path))
        body = self._body()
        if self._fault() or not self._authorized():
            return
        parts = self.path.strip("/").split("/")
        if parts == ["v1", "files"]:
            return self._upload(body)
        if parts[:2] == ["v1", "models"] and parts[4:] == ["versions", VERSION, "trainings"]:
            return self._create(json.loads(body), f"{parts[2]}/{parts[3]}")
        if parts[:2] == ["v1", "trainings"] and parts[3:] == ["cancel"]:
            with self.fake.lock:
                training = self.fake.trainings.get(parts[2])
                if training is None:
                    return self._send(404, {"detail": "Not found."})
                if training["status"] in ("succeeded", "failed", "canceled"):
                    return self._send(409, {"detail": "Training already finished"})
                training["status"] = "canceled"
                shown = {k: v for k, v in training.items() if not k.startswith("_")}
            return self._send(200, shown)
        self._send(404, {"detail": "Not found."})

    def _upload(self, body: bytes) -> None:
        time.sleep(self.fake.slow_upload_s)
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        content = None
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "content":
                content = part.get_payload(decode=True)
        if content is None:
            return self._send(400, {"detail": "content is required"})
        file_id = hashlib.sha256(content).hexdigest()[:12]
        self.fake.files[file_id] = content
        get = f"{self.fake.base_url}/v1/files/{file_id}"
        self._send(201, {"id": file_id, "size": len(content), "content_type": "application/zip",
                         "checksums": {"sha256": hashlib.sha256(content).hexdigest()},
                         "urls": {"get": get}})  # fmt: skip

    def _create(self, request: dict, model: str) -> None:
        inputs = request.get("input") or {}
        if not request.get("destination"):
            return self._send(422, {"detail": "destination is required"})
        file_id = str(inputs.get("input_images", "")).rsplit("/", 1)[-1]
        if file_id not in self.fake.files:
            return self._send(422, {"detail": "input_images: not an uploaded file"})
        with self.fake.lock:
            training_id = f"t{len(self.fake.trainings) + 1:05d}"
            self.fake.trainings[training_id] = {
                "id": training_id, "model": model, "version": VERSION, "input": inputs,
                "status": "starting", "logs": "", "output": None, "error": None,
                "created_at": "2026-01-01T00:00:00.000Z", "started_at": None,
                "completed_at": None, "metrics": {},
                "urls": {"get": f"{self.fake.base_url}/v1/trainings/{training_id}",
                         "cancel": f"{self.fake.base_url}/v1/trainings/{training_id}/cancel"},
                "_step": 0, "_total": int(inputs.get("max_train_steps", 1000)),
            }  # fmt: skip
            shown = {k: v for k, v in self.fake.trainings[training_id].items() if k[0] != "_"}
        self._send(201, shown)


class _Cdn(BaseHTTPRequestHandler):
    fake: FakeReplicate

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.fake.cdn_authorization.append(self.headers.get("Authorization"))
        data = self.fake.weights
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ReplicateServer:
    """The fake API and its CDN, started on free ports; a context manager."""

    def __init__(self, fake: FakeReplicate | None = None) -> None:
        self.fake = fake or FakeReplicate()
        api = type("Api", (_Api,), {"fake": self.fake})
        cdn = type("Cdn", (_Cdn,), {"fake": self.fake})
        self._servers = [ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (api, cdn)]
        ports = [s.server_address[1] for s in self._servers]
        self.fake.base_url = f"http://127.0.0.1:{ports[0]}"
        self.fake.cdn_url = f"http://127.0.0.1:{ports[1]}"
        self.api_url = f"{self.fake.base_url}/v1"

    def __enter__(self) -> ReplicateServer:
        for server in self._servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
