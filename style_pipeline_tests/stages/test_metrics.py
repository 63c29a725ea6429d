"""Stage ``metrics``: the previous run is found by partition, not by key position."""

import json

import pytest

from style_pipeline.stages.metrics import previous_metrics
from style_pipeline.storage.store import Store


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "storage")
    for day, score in (("2026-01-01", 1.0), ("2026-01-03", 3.0), ("2026-01-05", 5.0)):
        store.put_bytes(json.dumps({"metrics": {"clip_score": score}}).encode(),
                        f"metrics/{day}.json")  # fmt: skip
    store.put_bytes(b"png", "metrics/2026-01-04/samples/a-0.png")  # a day folder, no document
    return store


@pytest.mark.parametrize(
    ("partition", "expected"),
    [("2026-01-01", None), ("2026-01-02", "2026-01-01"), ("2026-01-05", "2026-01-03"),
     ("2026-02-01", "2026-01-05")],
)  # fmt: skip
def test_previous_metrics_is_the_newest_earlier_document(store, partition, expected):
    previous = previous_metrics(store, partition)
    if expected is None:
        assert previous is None
    else:
        assert previous["partition"] == expected
        assert previous["metrics"]["clip_score"] == float(expected[-1])


def test_no_metrics_yet(tmp_path):
    assert previous_metrics(Store(tmp_path / "empty"), "2026-01-01") is None
