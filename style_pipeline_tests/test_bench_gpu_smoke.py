"""``benchmarks/bench_gpu.py --smoke``: the GPU benchmark's code runs end to end on the CPU.

Tiny models, a few images and steps; the numbers are not looked at (speed is measured in
benchmarks/, not in tests), only that every table is filled from real runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_bench_gpu_smoke_fills_every_table(tmp_path):
    docs = ROOT / "docs" / "benchmarks.md"
    before = docs.read_bytes()
    out = tmp_path / "gpu.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--smoke", "--json", str(out)],
        capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["smoke"] is True and result["meta"]["device"] in ("cpu", "cuda")

    precisions = {row["requested_precision"] for row in result["embeddings"]}
    assert precisions == {"fp32", "bf16"}
    for row in result["embeddings"]:
        assert set(row["recipes"]) == {"ours", "dataloader", "forward"}
        assert all(r["images_per_s"] > 0 and r["images"] == 24 for r in row["recipes"].values())
        assert row["ratios"]["ours/dataloader"] > 0

    rows = {(r["size"], r["impl"]): r for r in result["training"]}
    for size in ("tiny", "tiny-sdxl"):
        cached, uncached = rows[(size, "ours, caches")], rows[(size, "ours, no caches")]
        assert cached["latents_encoded"] > 0 and cached["median_s"] > 0
        assert not uncached["latents_encoded"] and uncached["median_s"] > 0
    assert rows[("tiny", "diffusers train_text_to_image_lora.py")]["median_s"] > 0
    assert {r["ours"] for r in result["training_ratios"]} == {"ours, caches", "ours, no caches"}
    assert "| tiny | 2 | ours, caches |" in run.stdout
    assert docs.read_bytes() == before  # smoke never rewrites the docs
