"""A fake ComfyUI server on 127.0.0.1: real HTTP and websocket (aiohttp, as ComfyUI itself).

It implements the routes ``ComfyUIBackend`` uses with ComfyUI's answer shapes, runs a queued
prompt of the Lora-Training-in-Comfy node as a loop of steps (``progress`` events on the
websocket, the interrupt flag checked every step), and on success writes a kohya-format LoRA
for the tiny pipeline (:func:`kohya_lora`: random ``lora_down``/``lora_up`` of the tiny
UNet's and text encoder's real layer names and shapes, with ``.alpha``) where ``/view``
serves it. Knobs for the failure tests: ``fail_at_step``, ``upload_delay_s``, ``bursts``
(status codes answered before a route works), ``malformed`` (answers that are not JSON),
``token`` (Bearer required), ``write_weights`` (the node "succeeds" without a file),
``send_progress``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from style_pipeline.training.remote.comfy_workflow import NODE_CLASS

NODE_INPUTS = (
    "ckpt_name v2 networkmodule mixed_precision save_precision networkdimension conv_dim "
    "networkalpha trainingresolution data_path batch_size max_train_epoches "
    "save_every_n_epochs keeptokens minSNRgamma learningrateText learningrateUnet "
    "learningRateScheduler lrRestartCycles optimizerType output_name algorithm "
    "networkDropout clip_skip output_dir tensorboard"
).split()
CHECKPOINTS = ["v1-5-pruned-emaonly.safetensors", "tiny.safetensors"]


def kohya_lora(pipeline_dir: str | Path, rank: int = 4, alpha: float = 2.0, seed: int = 0) -> bytes:
    """A kohya-keyed LoRA (``lora_unet_*``, ``lora_te_text_model_*``) for a tiny pipeline."""
    import torch
    from safetensors.torch import save

    from style_pipeline.models.diffusion import load_pipeline

    pipe = load_pipeline(pipeline_dir)
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    modules = [
        ("lora_unet_", name, module)
        for name, module in pipe.unet.named_modules()
        if isinstance(module, torch.nn.Linear) and ".attentions." in name
    ] + [
        ("lora_te_text_model_", name.removeprefix("text_model."), module)
        for name, module in pipe.text_encoder.named_modules()
        if isinstance(module, torch.nn.Linear) and "encoder.layers" in name
    ]
    for prefix, name, module in modules:
        key = prefix + name.replace(".", "_")
        down = torch.randn(rank, module.in_features, generator=generator) * 0.1
        tensors[f"{key}.lora_down.weight"] = down
        tensors[f"{key}.lora_up.weight"] = (
            torch.randn(module.out_features, rank, generator=generator) * 0.1
        )
        tensors[f"{key}.alpha"] = torch.tensor(alpha)
    return save(tensors, metadata={"ss_network_module": "networks.lora"})


class ComfyFake:
    """``with ComfyFake(...) as fake:`` serves on ``fake.url`` until the block ends."""

    def __init__(
        self,
        *,
        weights: Callable[[str], bytes] | None = None,
        steps: int = 4,
        step_s: float = 0.05,
        fail_at_step: int | None = None,
        upload_delay_s: float = 0.0,
        bursts: dict[str, list[int]] | None = None,
        malformed: dict[str, int] | None = None,
        token: str | None = None,
        write_weights: bool = True,
        send_progress: bool = True,
        hold: threading.Event | None = None,
    ) -> None:
        self.weights = weights or (lambda name: b"")
        self.steps, self.step_s, self.fail_at_step = steps, step_s, fail_at_step
        self.upload_delay_s, self.token = upload_delay_s, token
        self.bursts = defaultdict(list, {k: list(v) for k, v in (bursts or {}).items()})
        self.malformed = defaultdict(int, malformed or {})
        self.write_weights, self.send_progress = write_weights, send_progress
        self.hold = hold  # a prompt waits for it before its first step (tests of 'running')
        self.uploads: dict[str, bytes] = {}  # input/<subfolder>/<name> -> bytes
        self.outputs: dict[str, bytes] = {}  # output/<subfolder>/<name> -> bytes
        self.history: dict[str, dict[str, Any]] = {}
        self.pending: list[list[Any]] = []
        self.running: list[Any] | None = None
        self.prompts: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.interrupts = 0
        self._interrupt = False
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._number = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._wake: asyncio.Event | None = None
        self.url = ""

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> ComfyFake:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake ComfyUI did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 30)
        app.add_routes(
            [
                web.get("/system_stats", self._system_stats),
                web.get("/object_info/{node_class}", self._object_info),
                web.post("/upload/image", self._upload),
                web.post("/prompt", self._prompt),
                web.get("/history/{prompt_id}", self._history),
                web.get("/queue", self._queue),
                web.post("/queue", self._queue_post),
                web.post("/interrupt", self._interrupt_post),
                web.get("/view", self._view),
                web.get("/ws", self._ws),
            ]
        )
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._wake = asyncio.Event()
        self._worker = asyncio.ensure_future(self._work())

    async def _shutdown(self) -> None:
        self._worker.cancel()
        for ws in list(self._sockets.values()):
            await ws.close()
        assert self._runner is not None
        await self._runner.cleanup()

    # -- middleware: auth, bursts, malformed answers ----------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        route = "/" + request.path.strip("/").split("/")[0]
        if route == "/upload":
            route = "/upload/image"
        self.requests.append((request.method, request.path))
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        if self.bursts[route]:
            status = self.bursts[route].pop(0)
            headers = {"Retry-After": "0"} if status == 429 else {}
            return web.Response(status=status, text=f"burst {status}", headers=headers)
        if self.malformed[route] > 0:
            self.malformed[route] -= 1
            return web.Response(text="<html>proxy error", content_type="application/json")
        return await handler(request)

    # -- routes -----------------------------------------------------------------------------

    async def _system_stats(self, request: web.Request) -> web.Response:
        device = {"name": "cuda:0 FAKE GPU", "type": "cuda", "index": 0}
        device |= {"vram_total": 24 * 1024**3, "vram_free": 20 * 1024**3}
        system = {"os": "posix", "comfyui_version": "0.3.fake", "argv": ["main.py"]}
        return web.json_response({"system": system, "devices": [device]})

    async def _object_info(self, request: web.Request) -> web.Response:
        if request.match_info["node_class"] != NODE_CLASS:
            return web.json_response({})
        required: dict[str, Any] = {name: ["STRING", {}] for name in NODE_INPUTS}
        required["ckpt_name"] = [CHECKPOINTS]
        info = {"input": {"required": required}, "output": [], "name": NODE_CLASS}
        return web.json_response({NODE_CLASS: info})

    async def _upload(self, request: web.Request) -> web.Response:
        if self.upload_delay_s:
            await asyncio.sleep(self.upload_delay_s)
        post = await request.post()
        image = post.get("image")
        if not isinstance(image, web.FileField) or not image.filename:
            return web.Response(status=400)
        subfolder = str(post.get("subfolder", ""))
        if ".." in subfolder.split("/") or subfolder.startswith("/"):
            return web.Response(status=400)
        key = f"input/{subfolder}/{image.filename}"
        name = image.filename
        if key in self.uploads and post.get("overwrite") not in ("true", "1"):
            name = f"{Path(name).stem} (1){Path(name).suffix}"
            key = f"input/{subfolder}/{name}"
        self.uploads[key] = image.file.read()
        return web.json_response({"name": name, "subfolder": subfolder, "type": "input"})

    async def _prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        prompt = body.get("prompt")
        if not isinstance(prompt, dict):
            return web.json_response({"error": "no prompt", "node_errors": []}, status=400)
        errors = self._validate(prompt)
        if errors:
            error = {"type": "prompt_outputs_failed_validation", "message": "invalid"}
            return web.json_response({"error": error, "node_errors": errors}, status=400)
        prompt_id, number = str(uuid.uuid4()), self._number
        self._number += 1
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        self.prompts.append(body)
        self.pending.append([number, prompt_id, prompt, extra, ["1"]])
        assert self._wake is not None
        self._wake.set()
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": {}})

    def _validate(self, prompt: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, Any] = {}
        for node_id, node in prompt.items():
            inputs = node.get("inputs") or {}
            problems = []
            if node.get("class_type") != NODE_CLASS:
                problems.append(f"unknown class_type {node.get('class_type')}")
            if set(inputs) != set(NODE_INPUTS):
                problems.append(f"inputs differ: {sorted(set(inputs) ^ set(NODE_INPUTS))}")
            if inputs.get("ckpt_name") not in CHECKPOINTS:
                problems.append(f"value not in list: ckpt_name {inputs.get('ckpt_name')}")
            data = f"{inputs.get('data_path')}/"
            if not any(key.startswith(data) for key in self.uploads):
                problems.append(f"data_path {inputs.get('data_path')} holds no upload")
            if problems:
                errors[node_id] = {"errors": problems, "class_type": node.get("class_type")}
        return errors

    async def _history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry else {})

    async def _queue(self, request: web.Request) -> web.Response:
        running = [self.running] if self.running else []
        return web.json_response({"queue_running": running, "queue_pending": self.pending})

    async def _queue_post(self, request: web.Request) -> web.Response:
        body = await request.json()
        doomed = set(body.get("delete") or [])
        self.pending = [item for item in self.pending if item[1] not in doomed]
        return web.Response(status=200)

    async def _interrupt_post(self, request: web.Request) -> web.Response:
        self.interrupts += 1
        self._interrupt = self.running is not None
        return web.Response(status=200)

    async def _view(self, request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        if query.get("type", "output") != "output" or ".." in query.get("filename", ".."):
            return web.Response(status=400)
        data = self.outputs.get(f"output/{query.get('subfolder', '')}/{query['filename']}")
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId") or uuid.uuid4().hex
        self._sockets[sid] = ws
        queue = {"exec_info": {"queue_remaining": len(self.pending)}}
        await ws.send_str(json.dumps({"type": "status", "data": {"status": queue, "sid": sid}}))
        try:
            async for _ in ws:
                pass
        finally:
            self._sockets.pop(sid, None)
        return ws

    # -- the executor -----------------------------------------------------------------------

    async def _send(self, sid: str | None, kind: str, data: dict[str, Any]) -> None:
        ws = self._sockets.get(sid or "")
        if ws is not None and not ws.closed:
            await ws.send_str(json.dumps({"type": kind, "data": data}))

    async def _work(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.pending:
                item = self.pending.pop(0)
                self.running, self._interrupt = item, False
                await self._execute(item)
                self.running = None

    async def _execute(self, item: list[Any]) -> None:
        _, prompt_id, prompt, extra, _ = item
        sid = extra.get("client_id")
        messages: list[list[Any]] = []

        async def event(kind: str, data: dict[str, Any], keep: bool = True) -> None:
            data = {"prompt_id": prompt_id, **data}
            if keep:
                messages.append([kind, {**data, "timestamp": int(time.time() * 1000)}])
            await self._send(sid, kind, data)

        await event("execution_start", {})
        await event("executing", {"node": "1"}, keep=False)
        if self.hold is not None:
            while not self.hold.is_set() and not self._interrupt:
                await asyncio.sleep(0.01)
        status = "success"
        for step in range(1, self.steps + 1):
            if self._interrupt:
                await event("execution_interrupted", {"node_id": "1", "node_type": NODE_CLASS})
                status = "error"
                break
            if self.fail_at_step == step:
                error = {"node_id": "1", "node_type": NODE_CLASS, "exception_type": "RuntimeError"}
                error["exception_message"] = "CUDA out of memory (fake)"
                await event("execution_error", error)
                status = "error"
                break
            await asyncio.sleep(self.step_s)
            if self.send_progress:
                await event("progress", {"value": step, "max": self.steps, "node": "1"}, False)
        if status == "success":
            inputs = prompt["1"]["inputs"]
            if self.write_weights:
                name = inputs["output_name"]
                key = f"{inputs['output_dir'].split('/', 1)[1]}/{name}.safetensors"
                self.outputs[f"output/{key}"] = self.weights(name)
            await event("executed", {"node": "1", "output": None}, keep=False)
            await event("execution_success", {})
        await event("executing", {"node": None}, keep=False)
        self.history[prompt_id] = {
            "prompt": item,
            "outputs": {},
            "status": {
                "status_str": status,
                "completed": status == "success",
                "messages": messages,
            },
            "meta": {},
        }
