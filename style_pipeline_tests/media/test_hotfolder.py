"""Pure tests of the hot-folder planning logic (fake entries, fake hasher, fake clock)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest

from style_pipeline.media.dropfolder import DropEntry
from style_pipeline.media.hotfolder import (
    DateWindow,
    FileState,
    HotFolderState,
    plan_tick,
    run_key_for,
    set_digest,
)

NOW = 1_780_000_000.0  # 2026-05-28T20:26:40Z
DAY = "2026-01-05"
OLD = NOW - 86_400  # a day before NOW: stable by age for any settle below a day


def ns(seconds: float) -> int:
    return int(seconds * 1e9)


def entry(rel: str, size: int = 10, mtime: float = OLD, ctime: float | None = None) -> DropEntry:
    return DropEntry(
        rel=rel,
        path=Path("/drop") / rel,
        size=size,
        mtime_ns=ns(mtime),
        ctime_ns=ns(mtime if ctime is None else ctime),
        is_symlink=False,
        is_regular=True,
    )


def sha(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


class FakeHasher:
    """Hashes ``/drop/<rel>`` as the sha256 of a content label; records every call."""

    def __init__(self, contents: dict[str, str], clock: FakeClock | None = None):
        self.contents = contents
        self.calls: list[str] = []
        self.clock = clock

    def __call__(self, path: os.PathLike) -> str:
        rel = Path(path).relative_to("/drop").as_posix()
        self.calls.append(rel)
        if self.clock is not None:
            self.clock.t += 1.0
        label = self.contents[rel]
        if label == "EACCES":
            raise PermissionError(13, "Permission denied", str(path))
        return sha(label)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def tick(entries, state=None, hasher=None, now=NOW, settle=10.0, budget=30.0, **kw):
    hasher = hasher or FakeHasher({e.rel: e.rel for e in entries})
    return plan_tick(entries, state or HotFolderState(), now, settle, budget, hasher, **kw)


@pytest.mark.parametrize(
    ("mtime", "first_seen", "settle", "stable"),
    [
        (NOW, None, 10.0, False),  # brand new and just written
        (NOW - 11, None, 10.0, True),  # mtime older than the settle time: ready at once
        (NOW - 5, NOW - 10, 10.0, True),  # unchanged for the whole settle time
        (NOW - 5, NOW - 9, 10.0, False),  # unchanged, but not long enough
        (NOW + 3600, NOW - 10, 10.0, True),  # future mtime (clock skew): observation decides
        (NOW + 3600, None, 10.0, False),
        (NOW, None, 0.0, True),  # no settle time
    ],
)
def test_stability_rule(mtime, first_seen, settle, stable):
    e = entry(f"{DAY}/a.jpg", mtime=mtime)
    previous = HotFolderState()
    if first_seen is not None:
        state = FileState(
            size=e.size, mtime_ns=e.mtime_ns, ctime_ns=e.ctime_ns, first_seen=first_seen
        )
        previous = HotFolderState(files={e.rel: state})
    plan = tick([e], previous, settle=settle)
    assert (len(plan.requests) == 1) is stable
    assert plan.counts.settling == (0 if stable else 1)


def test_recent_ctime_keeps_an_old_mtime_file_settling():
    e = entry(f"{DAY}/a.jpg", mtime=OLD, ctime=NOW - 2)  # e.g. moved in with `cp -p` just now
    assert tick([e]).counts.settling == 1
    assert len(tick([e], now=NOW + 7).requests) == 0  # no state: only the ctime age counts
    assert len(tick([e], now=NOW + 8.1).requests) == 1  # ctime now older than settle


def test_changing_file_waits_until_it_settles():
    plan = tick([entry(f"{DAY}/v.mp4", size=100, mtime=NOW)])
    assert plan.requests == [] and plan.counts.settling == 1
    grown = entry(f"{DAY}/v.mp4", size=200, mtime=NOW + 6)
    plan = tick([grown], plan.state, now=NOW + 6)
    assert plan.requests == [] and plan.counts.settling == 1  # changed: settle clock restarts
    plan = tick([grown], plan.state, now=NOW + 15)
    assert plan.requests == []  # 9 s unchanged, settle is 10 s
    plan = tick([grown], plan.state, now=NOW + 16)
    assert [r.n_files for r in plan.requests] == [1]


def test_a_half_settled_date_is_not_requested():
    done, copying = entry(f"{DAY}/a.jpg"), entry(f"{DAY}/b.jpg", mtime=NOW)
    plan = tick([done, copying])
    assert plan.requests == [] and plan.state.files[done.rel].sha256 == sha(done.rel)
    plan = tick([done, copying], plan.state, now=NOW + 10)
    assert [(r.partition_key, r.n_files) for r in plan.requests] == [(DAY, 2)]


def test_duplicate_content_under_two_names_is_one_set():
    hasher = FakeHasher({f"{DAY}/a.jpg": "same", f"{DAY}/b.jpg": "same"})
    first = tick([entry(f"{DAY}/a.jpg")], hasher=hasher)
    both = tick([entry(f"{DAY}/a.jpg"), entry(f"{DAY}/b.jpg")], first.state, hasher=hasher)
    assert first.requests[0].run_key == run_key_for(DAY, set_digest([sha("same")]))
    assert both.requests == []  # same content set: nothing new to ingest


def test_new_content_under_an_old_name_is_a_new_set():
    hasher = FakeHasher({f"{DAY}/a.jpg": "v1"})
    first = tick([entry(f"{DAY}/a.jpg")], hasher=hasher)
    hasher.contents[f"{DAY}/a.jpg"] = "v2"  # same size and mtime, rewritten: ctime moves
    rewritten = entry(f"{DAY}/a.jpg", mtime=OLD, ctime=OLD + 60)
    second = tick([rewritten], first.state, hasher=hasher)
    assert second.requests[0].run_key != first.requests[0].run_key
    assert second.state.requested[DAY] == second.requests[0].digest


def test_unchanged_files_are_never_rehashed():
    entries = [entry(f"{DAY}/{i}.jpg") for i in range(5)]
    hasher = FakeHasher({e.rel: e.rel for e in entries})
    first = tick(entries, hasher=hasher)
    hasher.calls.clear()
    second = tick(entries, first.state, hasher=hasher)
    assert hasher.calls == [] and second.requests == [] and second.counts.hashed == 0


def test_an_old_mtime_file_added_later_is_not_lost():
    a = entry(f"{DAY}/a.jpg", mtime=NOW - 60)
    first = tick([a])
    older = entry(f"{DAY}/b.jpg", mtime=NOW - 30 * 86_400, ctime=NOW - 40)
    second = tick([a, older], first.state, now=NOW + 30)
    assert [r.n_files for r in second.requests] == [2]


def test_lost_state_gives_the_same_run_key():
    entries = [entry(f"{DAY}/a.jpg"), entry("2026-01-06/b.jpg")]
    first = tick(entries)
    again = tick(entries, HotFolderState(), now=NOW + 3600)
    assert [r.run_key for r in again.requests] == [r.run_key for r in first.requests]
    assert [r.partition_key for r in first.requests] == [DAY, "2026-01-06"]


def test_removed_files_drop_out_of_the_state():
    a, b = entry(f"{DAY}/a.jpg"), entry("2026-01-06/b.jpg")
    first = tick([a, b])
    second = tick([a], first.state)
    assert set(second.state.files) == {a.rel}
    assert set(second.state.requested) == {DAY}
    assert second.requests == []


def test_hash_budget_continues_next_tick():
    entries = [entry(f"{DAY}/{i}.jpg") for i in range(5)]
    clock = FakeClock()
    hasher = FakeHasher({e.rel: e.rel for e in entries}, clock)
    state, seen = HotFolderState(), []
    for _ in range(3):
        plan = tick(entries, state, hasher=hasher, budget=2.0, clock=clock)
        state = plan.state
        seen.append((plan.counts.hashed, plan.counts.deferred, len(plan.requests)))
    assert seen == [(2, 3, 0), (2, 1, 0), (1, 0, 1)]
    assert sorted(hasher.calls) == sorted(e.rel for e in entries)  # each file hashed once


@pytest.mark.parametrize(
    ("day", "reason"),
    [("2024-12-31", "before the first partition 2025-01-01"), ("2026-06-01", "after the last")],
)
def test_dates_outside_the_partitions_are_skipped(day, reason):
    window = DateWindow(dt.date(2025, 1, 1), dt.date(2026, 5, 28))
    hasher = FakeHasher({f"{day}/a.jpg": "x", f"{DAY}/b.jpg": "y"})
    plan = tick([entry(f"{day}/a.jpg"), entry(f"{DAY}/b.jpg")], hasher=hasher, valid_dates=window)
    assert [r.partition_key for r in plan.requests] == [DAY]
    assert plan.counts.out_of_range == 1 and hasher.calls == [f"{DAY}/b.jpg"]
    assert len(plan.skipped) == 1 and plan.skipped[0].startswith(day) and reason in plan.skipped[0]


def test_unreadable_file_does_not_block_its_date_and_is_retried():
    hasher = FakeHasher({f"{DAY}/a.jpg": "a", f"{DAY}/locked.jpg": "EACCES"})
    entries = [entry(f"{DAY}/a.jpg"), entry(f"{DAY}/locked.jpg")]
    first = tick(entries, hasher=hasher)
    assert [r.n_files for r in first.requests] == [1] and first.counts.unreadable == 1
    assert "locked.jpg" in first.skipped[0]
    hasher.contents[f"{DAY}/locked.jpg"] = "b"
    second = tick(entries, first.state, hasher=hasher)
    assert [r.n_files for r in second.requests] == [2]


def test_symlinks_are_identified_by_target_and_never_followed(tmp_path):
    link = tmp_path / "drop" / DAY / "link.jpg"
    link.parent.mkdir(parents=True)
    link.symlink_to("/dev/zero")  # following it would never end
    st = link.lstat()
    e = DropEntry(f"{DAY}/link.jpg", link, st.st_size, ns(OLD), ns(OLD), True, False)
    hasher = FakeHasher({})
    plan = tick([e], hasher=hasher)
    assert hasher.calls == [] and plan.requests[0].n_files == 1
    expected = hashlib.sha256(b"symlink\0/dev/zero").hexdigest()
    assert plan.state.files[e.rel].sha256 == expected


def test_two_thousand_files_in_one_tick():
    entries = [entry(f"{DAY}/img_{i:04d}.jpg", size=i + 1) for i in range(2000)]
    plan = tick(entries)
    assert [(r.partition_key, r.n_files) for r in plan.requests] == [(DAY, 2000)]
    assert plan.counts.hashed == 2000 and plan.counts.deferred == 0
    assert plan.requests[0].digest == set_digest(sha(e.rel) for e in entries)


@pytest.mark.parametrize(("settle", "budget"), [(-1.0, 30.0), (10.0, 0.0)])
def test_invalid_settings_raise(settle, budget):
    with pytest.raises(ValueError, match="settle_seconds"):
        tick([], settle=settle, budget=budget)


def test_a_hasher_returning_garbage_is_an_error():
    with pytest.raises(ValueError, match="not a hex sha256"):
        tick([entry(f"{DAY}/a.jpg")], hasher=lambda path: "ABC")


def test_oversized_files_are_identified_without_reading(tmp_path):
    from style_pipeline.media.dropfolder import scan_drop
    from style_pipeline.media.hotfolder import HotFolderState, plan_tick

    drop = tmp_path / "d"
    (drop / "2026-01-05").mkdir(parents=True)
    (drop / "2026-01-05" / "huge.mp4").write_bytes(b"x" * 2048)

    def refuse(path):
        raise AssertionError(f"{path} must not be read")

    plan = plan_tick(
        scan_drop(drop),
        HotFolderState(),
        now_epoch=10**10,
        settle_seconds=0,
        hash_budget_seconds=5,
        hasher=refuse,
        max_hash_bytes=1024,
    )
    assert [r.partition_key for r in plan.requests] == ["2026-01-05"]
