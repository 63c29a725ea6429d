"""training_dataset on the first day after the partitions' start: a one-day window.

Dagster hands a one-partition window to the asset as a bare table, not a dict; with the
start date taken from the data (ADR 0005) that is every new deployment's first night.
The partitions are built at import, so the run happens in a child process whose
``STYLE_PIPELINE_START_DATE`` is the day itself.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

from PIL import Image

from style_pipeline.contracts.captioning import CaptionRecord
from style_pipeline.contracts.training import TrainingDatasetDocument
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import records_to_frame

DAY = "2026-03-02"


def _jpeg(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (shade, 90, 200 - shade)).save(buffer, "JPEG")
    return buffer.getvalue()


def _store_captions(store: Store) -> None:
    records = []
    for i in range(2):
        key = layout.frame_key(DAY, f"{i:064x}")
        store.put_bytes(_jpeg(40 + 80 * i), key)
        records.append(
            CaptionRecord(
                frame_id=f"{i:064x}",
                path=key,
                caption=f"sps_style, a picture {i}",
                raw="",
                source="template",
                model="template",
                cached=False,
                valid=True,
                violations=[],
                repairs=[],
            )  # fmt: skip
        )
    buffer = io.BytesIO()
    records_to_frame(records, CaptionRecord).write_parquet(buffer)
    store.put_bytes(buffer.getvalue(), layout.table_key("captions", DAY))


def test_training_dataset_when_the_window_holds_one_day(tmp_path):
    store = Store(tmp_path / "storage")
    _store_captions(store)
    (tmp_path / "home").mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "STYLE_PIPELINE_START_DATE": DAY,
        "STYLE_PIPELINE_STORAGE": str(tmp_path / "storage"),
        "STYLE_PIPELINE_DROP": str(tmp_path / "drop"),
        "STYLE_PIPELINE_TRAINING__PRESET": "tiny",
    }
    code = (
        "from style_pipeline.defs.run import materialize_partition;"
        f"r = materialize_partition({DAY!r}, 'key:training_dataset', log_level='ERROR');"
        "assert r.success, r"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    document = TrainingDatasetDocument.model_validate_json(
        store.read_bytes(layout.document_key("training_dataset", DAY))
    )
    assert document.images == 2 and document.partitions == [DAY]


def test_days_of_the_window_never_materialized_are_left_out_with_a_clear_line(tmp_path):
    """The suite's partitions start in 2025: DAY's 7-day window has six days without captions."""
    from style_pipeline.settings import load_settings
    from style_pipeline_tests.conftest import materialize_day

    store = Store(load_settings().storage_root())
    _store_captions(store)
    import dagster as dg

    instance = dg.DagsterInstance.ephemeral()
    result = materialize_day(DAY, "key:training_dataset", instance=instance)
    assert result.success
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    lines = [m for m in messages if "for this window input" in m]
    assert len(lines) == 6 and all("left out" in line for line in lines)
    assert not any("Couldn't load partition" in m for m in messages)
    document = TrainingDatasetDocument.model_validate_json(
        store.read_bytes(layout.document_key("training_dataset", DAY))
    )
    assert document.partitions == [DAY]
