"""``parallel.map_bounded``: input order, per-item errors, bounded submission, progress,
inline and pooled giving the same answers, a pool inside a process that has threads, and
no worker left behind by a ``kill -9`` of its owner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from style_pipeline import parallel
from style_pipeline.parallel import ItemError, map_bounded, progress_log, resolve_workers
from style_pipeline.processes import descendants


def square_or_fail(x: int) -> int:
    """Module level, so a worker can import it by name."""
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x * x


def slow_identity(x: float) -> float:
    time.sleep(x)
    return x


class Unpicklable(Exception):
    """Its ``__init__`` needs an argument pickling does not give back."""

    def __init__(self, a: int, b: int):
        super().__init__(f"{a}-{b}")


def raise_unpicklable(x: int) -> int:
    raise Unpicklable(x, x)


def worker_env(_: int) -> tuple[str | None, int]:
    return os.environ.get("OMP_NUM_THREADS"), os.getpid()


@pytest.mark.parametrize(("workers", "threads"), [(1, False), (2, False), (2, True)])
def test_results_in_input_order_and_errors_are_values(workers, threads):
    out = list(map_bounded(square_or_fail, range(8), workers, min_items=0, threads=threads))
    assert [r for r in out if not isinstance(r, ItemError)] == [0, 1, 4, 16, 25, 36, 49]
    (error,) = [r for r in out if isinstance(r, ItemError)]
    assert out.index(error) == error.index == 3
    assert (error.type_name, error.message, str(error)) == (
        "ValueError",
        "bad item 3",
        "ValueError: bad item 3",
    )
    assert isinstance(error.exception, ValueError)
    assert "square_or_fail" in error.traceback
    assert error.seconds >= 0


def test_inline_threads_and_processes_give_the_same_values():
    items = list(range(40))

    def strip(results):
        return [(type(r), r if not isinstance(r, ItemError) else str(r)) for r in results]

    inline = strip(map_bounded(square_or_fail, items, 1))
    assert strip(map_bounded(square_or_fail, items, 2, max_pending=3)) == inline
    assert strip(map_bounded(square_or_fail, items, 2, max_pending=3, threads=True)) == inline


def test_reraise_gives_the_same_exception_with_notes():
    error, _ = map_bounded(square_or_fail, [3, 4], 2, min_items=0)
    assert isinstance(error, ItemError)
    with pytest.raises(ValueError, match="bad item 3") as caught:
        error.reraise("frame f3 (a.jpg)")
    notes = caught.value.__notes__
    assert notes[0] == "frame f3 (a.jpg)"
    assert "raised in a worker process" in notes[1] and "square_or_fail" in notes[1]


def test_an_exception_that_cannot_travel_comes_back_as_text():
    error, _ = map_bounded(raise_unpicklable, [5, 6], 2, min_items=0)
    assert isinstance(error, ItemError)
    assert (error.type_name, error.message, error.exception) == ("Unpicklable", "5-5", None)
    with pytest.raises(RuntimeError, match="frame x: Unpicklable: 5-5"):
        error.reraise("frame x")
    (inline,) = map_bounded(raise_unpicklable, [5], 1)
    assert isinstance(inline, ItemError) and isinstance(inline.exception, Unpicklable)


@pytest.mark.parametrize("threads", [False, True])
def test_submission_is_bounded_and_lazy(threads):
    pulled: list[int] = []

    def source():
        for i in range(20):
            pulled.append(i)
            yield i

    seen = 0
    for _ in map_bounded(square_or_fail, source(), 2, max_pending=3, threads=threads):
        seen += 1
        # never more than max_pending items pulled and not yet consumed
        assert len(pulled) - seen <= 3 - 1
    assert seen == 20


def test_stopping_early_shuts_the_pool_down():
    results = map_bounded(slow_identity, [0.01] * 50, 2, min_items=0)
    assert next(results) == 0.01
    results.close()  # no hang, no error; the pending items are cancelled


def test_progress_at_most_every_n_seconds_and_at_the_end():
    calls: list[tuple[int, int | None, float]] = []
    list(
        map_bounded(
            slow_identity,
            [0.05] * 6,
            1,
            progress=lambda *a: calls.append(a),
            every_s=0.12,
        )
    )
    assert calls[-1][0] == 6 and calls[-1][1] == 6
    assert 2 <= len(calls) <= 4  # ~0.3 s of work reported every 0.12 s, plus the end
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert list(map_bounded(slow_identity, [], 1, progress=lambda *a: calls.append(a))) == []
    assert calls[-1][0] == 6  # no items: no report


def test_progress_of_a_generator_without_length():
    calls: list[tuple[int, int | None, float]] = []
    list(map_bounded(square_or_fail, (i for i in range(4)), 1, progress=lambda *a: calls.append(a)))
    assert calls[-1][:2] == (4, None)


def test_progress_log_line():
    lines: list[str] = []
    progress_log(lines.append, "quality_scores", "frames")(50, 200, 5.0)
    progress_log(lines.append, "hashing")(3, None, 0.0)
    assert lines == [
        "quality_scores: 50/200 frames in 5.0 s, 10.0/s",
        "hashing: 3 items in 0.0 s",
    ]


def test_few_items_run_inline():
    out = list(map_bounded(worker_env, range(3), 2, min_items=4))
    assert {pid for _, pid in out} == {os.getpid()}


def test_workers_limit_blas_threads_and_zero_means_every_cpu(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    out = list(map_bounded(worker_env, range(6), 2, min_items=0))
    assert {env for env, _ in out} == {"1"}
    assert os.getpid() not in {pid for _, pid in out}
    assert resolve_workers(0) == len(os.sched_getaffinity(0)) >= 1
    assert resolve_workers(3) == 3


def test_never_plain_fork():
    assert parallel.start_method() in ("forkserver", "spawn")


def test_a_pool_inside_a_process_with_busy_threads(tmp_path):
    """What a Dagster step is: a process with other threads running (here holding a lock
    and logging), itself forked from a forkserver, which starts a pool."""
    code = textwrap.dedent(
        """
        import logging, multiprocessing, sys, threading, time

        def step(queue):
            from style_pipeline.parallel import map_bounded
            from style_pipeline_tests.test_parallel import square_or_fail
            lock, stop = threading.Lock(), threading.Event()
            def busy():
                while not stop.is_set():
                    with lock:
                        logging.getLogger("busy").debug("x")
            threads = [threading.Thread(target=busy, daemon=True) for _ in range(3)]
            for t in threads:
                t.start()
            out = list(map_bounded(square_or_fail, range(30), 2, min_items=0))
            stop.set()
            queue.put([r if isinstance(r, int) else str(r) for r in out])

        if __name__ == "__main__":
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["logging", "threading"])
            queue = ctx.Queue()
            proc = ctx.Process(target=step, args=(queue,))
            proc.start()
            print(queue.get(timeout=120))
            proc.join(30)
            sys.exit(proc.exitcode)
        """
    )
    script = tmp_path / "step.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    expected = [x * x if x != 3 else "ValueError: bad item 3" for x in range(30)]
    assert done.stdout.strip() == str(expected)


def test_workers_do_not_import_the_parents_main_script(tmp_path):
    """In a Dagster step ``__main__`` is the ``dagster`` command: importing it again in
    every worker cost ~2 s. Workers skip it unless ``fn`` itself lives there."""
    marker = tmp_path / "imports.txt"
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        Path({str(marker)!r}).open("a").write(__name__ + "\\n")  # runs on every import

        def local_fn(x):
            return -x

        if __name__ == "__main__":
            from style_pipeline.parallel import map_bounded
            from style_pipeline_tests.test_parallel import square_or_fail
            assert list(map_bounded(square_or_fail, [1, 2, 4, 5], 2, min_items=0)) == [1, 4, 16, 25]
            print(marker_lines := Path({str(marker)!r}).read_text().split())
            assert list(map_bounded(local_fn, [1, 2, 3], 2, min_items=0)) == [-1, -2, -3]
        """
    )
    script = tmp_path / "main_script.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["['__main__']"]  # the first pool's workers never ran it
    assert "__mp_main__" in marker.read_text().split()  # the second's did: local_fn is there


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_kill_9_of_the_owner_leaves_no_worker(tmp_path, method):
    code = textwrap.dedent(
        f"""
        import time
        from style_pipeline import parallel
        from style_pipeline_tests.test_parallel import slow_identity
        parallel.start_method = lambda: {method!r}
        if __name__ == "__main__":
            for _ in parallel.map_bounded(slow_identity, [60.0] * 4, 2, min_items=0):
                pass
        """
    )
    script = tmp_path / "owner.py"
    script.write_text(code)
    owner = subprocess.Popen([sys.executable, str(script)], cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while time.monotonic() < deadline:  # the owner, its workers (and the forkserver)
            workers = descendants(owner.pid)
            if len(workers) >= (3 if method == "forkserver" else 2) + 1:  # + resource tracker
                break
            time.sleep(0.1)
        assert len(workers) >= 3, workers
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        assert not [p for p in workers if _alive(p)]
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_threads_untouched_in_the_caller():
    before = threading.active_count()
    list(map_bounded(square_or_fail, range(10), 2, min_items=0))
    time.sleep(0.2)
    assert threading.active_count() == before  # the pool's manager thread is gone
