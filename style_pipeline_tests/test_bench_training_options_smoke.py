"""``benchmarks/bench_training_options.py --smoke``: the benchmark's code runs end to end.

Tiny models, a few steps, images and captions; the timings are not looked at (speed is
measured in benchmarks/, not in tests), only that every table is filled from real runs and
that the parity checks which cannot depend on chance hold.
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


def test_bench_training_options_smoke_fills_every_table(tmp_path):
    docs = ROOT / "docs" / "benchmarks.md"
    before = docs.read_bytes()
    out = tmp_path / "options.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    script = ROOT / "benchmarks" / "bench_training_options.py"
    run = subprocess.run(
        [sys.executable, str(script), "--smoke", "--json", str(out)],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["smoke"] is True

    rows = {row["key"]: row for row in result["training"]["rows"]}
    assert set(rows) == {"baseline", "val_loss", "val_images", "ema", "tags", "masked", "flux"}
    assert all(r["wall_s_per_step"] > 0 and r["cpu_ratio"] > 0 for r in rows.values())
    assert rows["baseline"]["wall_ratio"] == 1.0
    assert rows["val_loss"]["s_per_validation"] and rows["val_images"]["s_per_validation"]
    assert rows["baseline"]["text_cache"] and not rows["tags"]["text_cache"]
    assert rows["masked"]["runs"][0]["masks"]["images"] > 0
    assert rows["flux"]["runs"][0]["family"] == "flux"

    vlm = {row["family"]: row for row in result["vlm"]["rows"]}
    assert set(vlm) == {"florence2", "qwen2_vl", "blip2"}
    assert all(r["images_per_s_b1"] > 0 and r["images_per_s_b4"] > 0 for r in vlm.values())
    checks = {(r["backend"], r["check"]): r for r in result["checks"]["rows"]}
    assert len(checks) == 6 and all(r["median_s"] > 0 for r in checks.values())
    assert all(r["caption_check"] == "on" for (_, name), r in checks.items() if name != "off")

    buckets = result["kohya"]["buckets"]
    assert [b["lists_equal"] for b in buckets] == [True, False, True]
    assert buckets[0]["agreement"] == 1.0 and buckets[2]["agreement"] == 1.0
    captions = result["kohya"]["captions"]
    for side in ("kohya", "ours"):
        assert captions[side]["kept_in_place"] == captions[side]["kept_total"] > 0
    assert captions["all_off_equal"] == captions["captions"]
    assert captions["normalised_equal"] == captions["captions"] - captions["malformed_inputs"]
    assert captions["ours"]["outputs_with_empty_tag"] == 0
    assert "| SD tiny, baseline (latent + text caches) |" in run.stdout
    assert docs.read_bytes() == before  # smoke never rewrites the docs
