"""``benchmarks/bench_embeddings.py``'s reusable core runs (tiny model, a few files): the
API ``bench_gpu.py`` imports stays callable. Speed itself is measured by the benchmark."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_embeddings.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_embeddings", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_embeddings", module)
    spec.loader.exec_module(module)
    return module


def test_measure_embedding_throughput_reports_every_recipe(bench, tmp_path):
    from style_pipeline.contracts.models import ModelConfig
    from style_pipeline.models import load_model

    store, refs = bench.jpeg_store(tmp_path / "storage", 5, size=(160, 90))
    loaded = load_model(ModelConfig(profile="tiny", cache_dir=str(tmp_path / "m"), device="cpu"))
    result = bench.measure_embedding_throughput(
        loaded, store, refs, batch_size=2, workers=2, dataloader_workers=0, log=None
    )
    assert set(result["recipes"]) == set(bench.RECIPES)
    assert all(r["images"] == 5 and r["images_per_s"] > 0 for r in result["recipes"].values())
    assert set(result["ratios"]) == {f"ours/{n}" for n in bench.RECIPES if n != "ours"}
    assert set(result["cpu_ratios"]) == {
        "old/ours",
        "ours_nodraft/ours",
        "dataloader/ours",
        "dataloader_t1/ours",
        "decode/ours",
    }
    assert all(r["cpu_ms_per_image"] > 0 for r in result["recipes"].values())
    assert (result["batch_size"], result["workers"], result["precision"]) == (2, 2, "fp32")
    table = bench.render(
        [result],
        dict(
            cpus=2,
            cpu="x",
            torch="t",
            threads=1,
            load_start=0.0,
            load_end=0.0,
            repeats=1,
            seconds=1.0,
            args="",
        ),
    )
    assert table.startswith(bench.SECTION) and "| tiny-vit" in table
    with pytest.raises(ValueError, match="unknown recipes"):
        bench.measure_embedding_throughput(loaded, store, refs, recipes=("nope",))
