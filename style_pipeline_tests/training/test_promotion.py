"""Promotion: the live-LoRA document, its history, the gates, and pruning that spares it."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections import Counter

import pytest
import torch
from safetensors.torch import save_file

from style_pipeline.contracts.training import LiveLora, PromotionEvent
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.presets import PRESETS
from style_pipeline.training.promotion import (
    PromotionError,
    live_before,
    live_stack,
    previous_live,
    promote,
    promotion_blockers,
    read_live,
    real_weights_verdict,
    rollback,
)
from style_pipeline.training.train_loop import TrainingOutcome
from style_pipeline.training.trainer import list_versions, prune_versions, train_and_publish
from style_pipeline_tests.training.published import publish_version, store_with_three_days


@pytest.fixture
def store(tmp_path):
    return store_with_three_days(tmp_path)


def test_empty_before_any_promotion(store):
    live = read_live(store)
    assert (live.version, live.sha256, live.history) == (None, None, [])
    assert not store.exists(layout.live_lora_key())


def test_promote_records_version_sha_and_event(store):
    sha = json.loads(store.read_bytes("lora_weights/2026-01-02.001/metadata.json"))["sha256"]
    at = dt.datetime(2026, 1, 3, 4, 5, tzinfo=dt.UTC)
    live = promote(store, "2026-01-02.001", by="ana", reason="looks right", at=at)
    assert (live.version, live.sha256) == ("2026-01-02.001", sha)
    assert live.history == [
        PromotionEvent(
            version="2026-01-02.001", action="promote", at=at, by="ana", reason="looks right"
        )
    ]
    stored = LiveLora.model_validate_json(store.read_bytes(layout.live_lora_key()))
    assert stored == live == read_live(store)


def test_rollback_walks_back_through_the_history(store):
    for version in ("2026-01-01.001", "2026-01-02.001", "2026-01-03.001"):
        promote(store, version, by="nightly")
    assert rollback(store, by="ana", reason="faces melt").version == "2026-01-02.001"
    assert rollback(store, by="ana").version == "2026-01-01.001"
    with pytest.raises(PromotionError) as caught:
        rollback(store, by="ana")
    assert caught.value.code == "no_previous_live"
    live = rollback(store, by="bo", version="2026-01-03.001")
    assert live.version == "2026-01-03.001"
    assert [(e.action, e.by) for e in live.history] == [
        ("promote", "nightly"), ("promote", "nightly"), ("promote", "nightly"),
        ("rollback", "ana"), ("rollback", "ana"), ("rollback", "bo"),
    ]  # fmt: skip
    assert live.history[3].reason == "faces melt"


@pytest.mark.parametrize(
    ("events", "stack"),
    [
        ([("a", "promote"), ("b", "promote"), ("c", "promote")], ["a", "b", "c"]),
        ([("a", "promote"), ("b", "promote"), ("a", "rollback")], ["a"]),
        ([("a", "promote"), ("b", "promote"), ("c", "rollback")], ["a", "b", "c"]),
        ([("a", "promote"), ("b", "promote"), ("a", "promote")], ["a", "b", "a"]),
    ],
)
def test_live_stack(events, stack):
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    history = [PromotionEvent(version=v, action=a, at=at, by="t") for v, a in events]
    assert live_stack(history) == stack
    live = LiveLora(version=stack[-1], history=history)
    assert live_before(live, history[-1].version) == (events[-2][0])
    if len(stack) > 1:
        assert previous_live(live) == stack[-2]


@pytest.mark.parametrize(
    ("version", "by", "code"),
    [
        ("../../etc", "ana", "bad_version"),
        ("2026-01-09.001", "ana", "unknown_version"),
        ("2026-01-01.001", "  ", "no_author"),
    ],
)
def test_refusals_have_reason_codes_and_change_nothing(store, version, by, code):
    promote(store, "2026-01-02.001", by="ana")
    before = store.read_bytes(layout.live_lora_key())
    with pytest.raises(PromotionError) as caught:
        promote(store, version, by=by)
    assert caught.value.code == code and code in str(caught.value)
    assert store.read_bytes(layout.live_lora_key()) == before


def test_already_live_and_tampered_weights_are_refused(store):
    promote(store, "2026-01-01.001", by="ana")
    with pytest.raises(PromotionError, match="already_live"):
        promote(store, "2026-01-01.001", by="ana")
    store.put_bytes(b"swapped", "lora_weights/2026-01-02.001/pytorch_lora_weights.safetensors")
    with pytest.raises(PromotionError, match="sha256_mismatch"):
        promote(store, "2026-01-02.001", by="ana")
    store.delete("lora_weights/2026-01-03.001/pytorch_lora_weights.safetensors")
    with pytest.raises(PromotionError, match="weights_missing"):
        promote(store, "2026-01-03.001", by="ana")
    assert read_live(store).version == "2026-01-01.001"


def test_unreadable_live_document_is_a_clear_error(store):
    store.put_bytes(b'{"version": 3', layout.live_lora_key())
    with pytest.raises(PromotionError) as caught:
        read_live(store)
    assert caught.value.code == "live_unreadable" and "promoted_lora/live.json" in str(caught.value)


CHILD = """
import sys
from style_pipeline.storage.store import Store
from style_pipeline.training.promotion import promote
root, by, *versions = sys.argv[1:]
for version in versions * 3:
    promote(Store(root), version, by=by)
"""


def test_concurrent_promotions_from_processes_keep_every_event(tmp_path):
    """Six processes promote at once, 6 times each: the flock keeps all 36 events."""
    store = Store(tmp_path / "storage")
    versions = [f"2026-02-{day:02d}.001" for day in range(1, 13)]
    for version in versions:
        publish_version(store, version)
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(store.root), f"p{i}", *pair])
        for i, pair in enumerate(zip(versions[::2], versions[1::2], strict=True))
    ]
    assert [child.wait(120) for child in children] == [0] * len(children)
    live = read_live(store)
    assert len(live.history) == 36
    assert Counter(e.by for e in live.history) == {f"p{i}": 6 for i in range(6)}
    assert live.version == live.history[-1].version


LORA = {"version": "2026-01-02.001", "model_profile": "pretrained", "model_path": "/m/sd15"}
TINY = {**LORA, "model_profile": "tiny", "model_profile_reason": "no weights on disk"}
METRICS = {"lora_version": "2026-01-02.001", "regressions": [], "previous_partition": None}
REGRESSED = {
    **METRICS,
    "previous_partition": "2026-01-01",
    "regressions": [{"metric": "clip_score", "current": 0.1, "previous": 0.3}],
}


@pytest.mark.parametrize(
    ("lora", "metrics", "allow_tiny", "codes"),
    [
        (LORA, METRICS, False, []),
        (TINY, METRICS, False, ["tiny_weights"]),
        (TINY, METRICS, True, []),
        (LORA, REGRESSED, True, ["regression"]),
        (TINY, {**REGRESSED, "lora_version": "x"}, False,
         ["version_mismatch", "regression", "tiny_weights"]),
    ],
)  # fmt: skip
def test_promotion_blockers(lora, metrics, allow_tiny, codes):
    assert [code for code, _ in promotion_blockers(lora, metrics, allow_tiny)] == codes
    assert real_weights_verdict(lora, allow_tiny)[0] is ("tiny_weights" not in codes)


class _FileBackend:
    """Writes a small safetensors file per run instead of training (pruning is under test)."""

    name = "test-double"

    def __init__(self) -> None:
        self.runs = 0

    def train(self, request, progress=None):
        self.runs += 1
        path = request.output_dir / "pytorch_lora_weights.safetensors"
        save_file({"unet.x.lora.down.weight": torch.full((2, 2), float(self.runs))}, str(path))
        return TrainingOutcome(path, 1, 1, 0.5, (0.5,), 0.0, "cpu", "no", "sd", 1, 4)


def test_pruning_never_deletes_the_live_version(tiny_model, tiny_dataset, tmp_path):
    store = Store(tmp_path / "storage")
    config = PRESETS["tiny"].model_copy(update={"keep_versions": 1})
    backend = _FileBackend()

    def publish(day: str):
        return train_and_publish(store, day, config, tiny_dataset, tiny_model, backend=backend)

    first = publish("2026-01-01")
    promote(store, first.version, by="ana")
    for day in ("2026-01-02", "2026-01-03", "2026-01-04"):
        publish(day)
        assert list_versions(store) == [first.version, f"{day}.001"]
    # the live one still promotes back and forth with its weights intact
    promote(store, "2026-01-04.001", by="ana")
    assert rollback(store, by="ana").version == first.version
    # keep=1 keeps the newest; the live one is spared on top of it
    assert prune_versions(store, keep=1) == []
    assert list_versions(store) == [first.version, "2026-01-04.001"]


def test_unreadable_live_document_prunes_nothing(store):
    store.put_bytes(b"not json", layout.live_lora_key())
    assert prune_versions(store, keep=1) == []
    assert len(list_versions(store)) == 3
