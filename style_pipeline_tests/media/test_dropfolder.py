"""The drop-folder scan: what is a file to ingest, what is skipped and why (issue 17, item 9)."""

from __future__ import annotations

import datetime as dt
import errno
import os
from pathlib import Path

import pytest

from style_pipeline.contracts.ingest import IngestSettings
from style_pipeline.contracts.media import MediaStatus, RejectReason
from style_pipeline.media import dropfolder
from style_pipeline.media.dropfolder import scan_drop, scan_drop_all, skip_reason, unreadable_reason
from style_pipeline.media.ingest import ingest_entries
from style_pipeline.storage.store import Store
from style_pipeline_tests.media.factories import make_jpeg

DAY = dt.date(2026, 3, 2)


@pytest.mark.parametrize(
    ("name", "is_dir", "expected"),
    [
        ("photo.jpg", False, None),
        ("holiday", True, None),
        ("2026-03-02", True, None),
        (".DS_Store", False, RejectReason.HIDDEN),
        ("._photo.jpg", False, RejectReason.HIDDEN),
        (".git", True, RejectReason.HIDDEN),
        ("x.mp4", True, RejectReason.NOT_A_FILE),
        ("Shots.JPG", True, RejectReason.NOT_A_FILE),
        ("x.mp4", False, None),  # a file: the ingest checks decide
        ("clip.mp4.part", False, None),  # still arriving: neither ingested nor recorded
    ],
)
def test_skip_reason(name, is_dir, expected):
    why = skip_reason(name, is_dir)
    assert (why[0] if why else None) is expected


def test_unreadable_reason_names_the_error():
    reason, detail = unreadable_reason(PermissionError(errno.EACCES, "Permission denied"))
    assert reason is RejectReason.UNREADABLE
    assert detail.startswith("the folder cannot be listed (Permission denied)")


@pytest.fixture
def drop(tmp_path) -> Path:
    root = tmp_path / "drop"
    day = root / DAY.isoformat()
    make_jpeg(day / "photo.jpg")
    make_jpeg(day / "x.mp4" / "inside.jpg", color=(9, 9, 9))  # a folder named like a video
    (day / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    make_jpeg(day / ".hidden_dir" / "never.jpg")
    (day / "arriving.jpg.part").write_bytes(b"partial")
    return root


def test_scan_records_skipped_entries(drop):
    scan = scan_drop_all(drop)
    day = DAY.isoformat()
    assert [e.rel for e in scan.entries] == [f"{day}/photo.jpg", f"{day}/x.mp4/inside.jpg"]
    assert [(e.rel, e.reason) for e in scan.skipped] == [
        (f"{day}/.DS_Store", RejectReason.HIDDEN),
        (f"{day}/.hidden_dir", RejectReason.HIDDEN),
        (f"{day}/x.mp4", RejectReason.NOT_A_FILE),
    ]
    assert all(e.arrival_date == DAY for e in scan.skipped)
    assert scan_drop(drop) == scan.entries  # the hot-folder sensor's view is unchanged


def test_skipped_entries_become_rejected_records(drop, tmp_path):
    store = Store(str(tmp_path / "storage"))
    scan = scan_drop_all(drop)
    records = ingest_entries(scan.entries, drop, DAY, store, IngestSettings(), scan.skipped)
    by_name = {r.source_name.split("/", 1)[1]: r for r in records}
    assert sorted(by_name) == [".DS_Store", ".hidden_dir", "photo.jpg", "x.mp4", "x.mp4/inside.jpg"]
    assert by_name[".DS_Store"].reject_reason is RejectReason.HIDDEN
    assert "hidden file" in by_name[".DS_Store"].reject_detail
    assert "hidden folder" in by_name[".hidden_dir"].reject_detail
    folder = by_name["x.mp4"]
    assert folder.reject_reason is RejectReason.NOT_A_FILE
    assert folder.reject_detail.startswith("a folder named like a video file (.mp4)")
    assert folder.object_path is None and folder.media_id == "" and folder.extension == ".mp4"
    assert by_name["x.mp4/inside.jpg"].status is MediaStatus.ACCEPTED
    assert by_name["photo.jpg"].status is MediaStatus.ACCEPTED
    assert not store.local_path("raw_media/quarantine").exists()  # nothing skipped is copied


def test_unreadable_folder_is_recorded(drop, monkeypatch):
    """The logic, whoever runs the tests (root reads a chmod 000 folder anyway)."""
    locked = drop / DAY.isoformat() / "x.mp4"
    real_scandir = os.scandir

    def scandir(path):
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(dropfolder.os, "scandir", scandir)
    scan = scan_drop_all(drop)
    rel = f"{DAY.isoformat()}/x.mp4"
    # One record per name: unreadable wins over "a folder named like a video".
    (locked_entry,) = [e for e in scan.skipped if e.rel == rel]
    assert locked_entry.reason is RejectReason.UNREADABLE
    assert "Permission denied" in locked_entry.detail
    assert f"{rel}/inside.jpg" not in [e.rel for e in scan.entries]


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root reads a chmod 000 folder; covered by the test above"
)
def test_chmod_000_folder_is_recorded_unreadable(drop):
    locked = drop / DAY.isoformat() / "x.mp4"
    locked.chmod(0)
    try:
        scan = scan_drop_all(drop)
    finally:
        locked.chmod(0o755)
    reasons = {e.rel: e.reason for e in scan.skipped}
    assert reasons[f"{DAY.isoformat()}/x.mp4"] is RejectReason.UNREADABLE
