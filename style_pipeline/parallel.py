"""One function applied to many items on every core, results in input order: ``map_bounded``.

The CPU-bound stages (``frames`` stills, ``quality_scores``, ``dedup_set`` hashing) send
their per-file work through it. Properties they rely on:

* **Order**: results come back in input order, whatever order the workers finish in.
* **Bounded**: at most ``max_pending`` items are submitted and not yet consumed, so a day
  of 100,000 frames holds a handful of results in memory, not the whole day, and the
  items are pulled from the iterable lazily (a generator may open a file per item).
* **One bad item is one error value**: an exception raised by ``fn`` comes back as an
  :class:`ItemError` in that item's place and the map goes on; the caller decides whether
  it is a reject (a corrupt photo) or fatal. A worker that dies (OOM kill, segfault)
  breaks the map with ``BrokenProcessPool``.
* **Same answers inline**: ``workers=1`` (or fewer items than ``min_items``) runs ``fn`` in
  the calling process, no pool, same results and same error values (tests, debugging).
  ``threads=True`` keeps the same contract with threads of the calling process, for work
  that releases the GIL and is too small to pay for starting processes.

Start method: ``forkserver`` where the platform has it, else ``spawn``; never plain
``fork``. The stages run inside Dagster step processes that may have threads (polars',
torch's and OpenCV's pools once used, threads libraries start, this pool's own queue
threads): ``fork`` copies only the calling thread, so a lock another thread held at that
moment (logging, malloc, an OpenMP runtime) stays locked in the child forever. The
forkserver is a fresh single-threaded interpreter, started once per process, that forks
each worker; ``spawn`` is as safe and starts a fresh interpreter per worker (measured on
the 2-core machine: a pool of a trivial function starts in 0.07 s with forkserver, 0.09 s
with spawn; a worker importing ``curation/quality.py`` adds ~0.25 s either way).
What a worker runs must be importable by name: ``fn`` a module-level function in a light
module (its imports are the worker's start-up), items and results picklable (local paths
and plain values, never a ``Store`` or an open file). Workers do not import the parent's
``__main__`` (in a Dagster step, the ``dagster`` command: ~2 s per worker) unless ``fn``
is defined there.

Workers limit BLAS/OpenMP threads to one each (``OMP_NUM_THREADS`` and friends, set in
the worker before it imports numpy or torch): N single-threaded workers on N cores beat N
workers each starting N threads. A worker ends as soon as the process that made the pool
is gone (``kill -9`` included). Standard library only, so any layer may use it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import select
import sys
import threading
import time
import traceback
import types
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NoReturn, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[int, int | None, float], None]  # (done, total or None, seconds so far)

_THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


@dataclass(frozen=True)
class ItemError:
    """``fn`` raised on one item: where, what, the exception itself when it survived
    pickling (``None`` when it could not travel back from the worker), and how long ``fn``
    ran before it raised."""

    index: int
    type_name: str
    message: str
    traceback: str
    exception: Exception | None = None
    seconds: float = 0.0

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"

    def reraise(self, note: str = "") -> NoReturn:
        """Raise the item's exception again (the same type and message), noting ``note`` and
        the worker's traceback; a ``RuntimeError`` naming it when it could not travel."""
        exc = self.exception
        if exc is None:
            raise RuntimeError(f"{note + ': ' if note else ''}{self}\n{self.traceback}")
        if note:
            exc.add_note(note)
        if exc.__traceback__ is None:  # came from a worker: keep where it was raised
            exc.add_note(f"raised in a worker process:\n{self.traceback}")
        raise exc


def resolve_workers(workers: int) -> int:
    """``workers``, or the CPUs this process may run on when it is 0 (or negative)."""
    if workers > 0:
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def start_method() -> str:
    """``forkserver`` where the platform has it (Linux, macOS), else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def map_bounded(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int = 0,
    *,
    total: int | None = None,
    max_pending: int | None = None,
    progress: Progress | None = None,
    every_s: float = 10.0,
    min_items: int = 2,
    initializer: Callable[[], None] | None = None,
    threads: bool = False,
) -> Generator[R | ItemError, None, None]:
    """``fn(item)`` for every item, in input order; a raising item yields an ``ItemError``.

    ``workers``: processes (0: one per CPU, :func:`resolve_workers`); 1 runs inline.
    ``total``: the number of items (taken from ``len(items)`` when it has one), used for
    progress and for ``min_items``: fewer items than that run inline, as a pool's start-up
    would cost more than it saves. ``max_pending``: items in flight at most (default
    ``2 * workers``). ``progress(done, total, elapsed_s)`` is called at most every
    ``every_s`` seconds and once at the end (not when there were no items).
    ``initializer`` runs once in each worker process (module-level, e.g. to limit a
    library's own threads); never inline. ``threads=True`` runs ``workers`` threads of this
    process instead (same order, bound and errors; no start-up, nothing pickled): for work
    that releases the GIL, such as Pillow's decoding, on inputs too small to pay for
    processes.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    workers = resolve_workers(workers)
    if workers > 1 and total is not None and total < max(min_items, 2):
        workers = 1
    pending = max(1, max_pending if max_pending is not None else 2 * workers)
    if workers == 1:
        results = _inline(fn, items)
    elif threads:
        results = _threaded(fn, items, workers, pending)
    else:
        results = _pooled(fn, items, workers, pending, initializer)
    yield from _reporting(results, total, progress, every_s)


def _reporting(
    results: Generator[R | ItemError, None, None],
    total: int | None,
    progress: Progress | None,
    every_s: float,
) -> Generator[R | ItemError, None, None]:
    started = last = time.monotonic()
    done = 0
    try:
        for result in results:
            done += 1
            yield result
            now = time.monotonic()
            if progress is not None and now - last >= every_s:
                last = now
                progress(done, total, now - started)
    finally:
        results.close()  # shuts the pool down when the caller stops early
    if progress is not None and done:
        progress(done, total, time.monotonic() - started)


def _inline(fn: Callable[[T], R], items: Iterable[T]) -> Generator[R | ItemError, None, None]:
    for index, item in enumerate(items):
        yield _call(fn, index, item, in_worker=False)


def _pooled(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    max_pending: int,
    initializer: Callable[[], None] | None,
) -> Generator[R | ItemError, None, None]:
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context(start_method()),
        initializer=_init_worker,
        initargs=(os.getpid(), initializer),
    )
    hide_main = _defined_in(fn) != "__main__"

    def submit(index: int, item: T) -> Future[R | ItemError]:
        with _main_hidden(hide_main):  # a submit may start a worker
            return pool.submit(_call, fn, index, item)

    return _bounded(pool, submit, items, max_pending)


def _threaded(
    fn: Callable[[T], R], items: Iterable[T], workers: int, max_pending: int
) -> Generator[R | ItemError, None, None]:
    pool = ThreadPoolExecutor(workers, thread_name_prefix="map_bounded")

    def submit(index: int, item: T) -> Future[R | ItemError]:
        return pool.submit(_call, fn, index, item, False)

    return _bounded(pool, submit, items, max_pending)


def _bounded(
    pool: Executor,
    submit: Callable[[int, T], Future[R | ItemError]],
    items: Iterable[T],
    max_pending: int,
) -> Generator[R | ItemError, None, None]:
    """Results in input order, never more than ``max_pending`` submitted and unconsumed."""
    source = enumerate(items)
    queue: deque[Future[R | ItemError]] = deque()
    try:
        exhausted = False
        while True:
            while not exhausted and len(queue) < max_pending:
                try:
                    index, item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                queue.append(submit(index, item))
            if not queue:
                return
            yield queue.popleft().result()
    finally:
        for future in queue:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _defined_in(fn: Callable[..., object]) -> str | None:
    """The module of ``fn`` (of the function a ``functools.partial`` wraps)."""
    return getattr(getattr(fn, "func", fn), "__module__", None)


@contextlib.contextmanager
def _main_hidden(hide: bool) -> Iterator[None]:
    """While a worker starts, ``__main__`` is an empty module, so the worker does not
    import the parent's main script before its first task: in a Dagster step that is the
    ``dagster`` command, ~1,000 modules and ~2 s per worker. Only when ``fn`` comes from
    elsewhere (a worker finds it by its module's name); items must not be ``__main__``
    objects either (they are pickled by a queue thread, possibly inside this window)."""
    main = sys.modules.get("__main__")
    if not hide or main is None:
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _init_worker(owner: int, initializer: Callable[[], None] | None) -> None:
    _die_with_owner(owner)
    for name in _THREAD_ENV:
        os.environ.setdefault(name, "1")
    if initializer is not None:
        initializer()


def _die_with_owner(owner: int) -> None:
    """End this worker as soon as the process that made the pool (``owner``) is gone, so a
    ``kill -9`` of the step leaves no worker behind: an orphaned worker would wait on its
    task queue forever, and, under forkserver, keep the server and the resource tracker
    alive too (the server's parent-death pipe stays open in every worker, so a kernel
    parent-death signal on the server never comes). A daemon thread waits on the owner's
    pidfd (Linux), else polls it every second."""
    try:
        handle: int | None = os.pidfd_open(owner)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # not Linux >= 5.3
        handle = None

    def watch() -> None:
        if handle is not None:
            select.select([handle], [], [])  # readable once the owner has exited
        else:
            while _alive(owner):
                time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parallel-owner-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's (the pid was reused)
        return True
    return True


def _call(fn: Callable[[T], R], index: int, item: T, in_worker: bool = True) -> R | ItemError:
    started = time.perf_counter()
    try:
        return fn(item)
    except Exception as exc:  # noqa: BLE001 - one item's failure is a value; the caller decides
        seconds = time.perf_counter() - started
        text = "".join(traceback.format_exception(exc))
        travels = exc if not in_worker or _round_trips(exc) else None
        return ItemError(index, type(exc).__name__, str(exc), text, travels, seconds)


def _round_trips(exc: Exception) -> bool:
    """Whether ``exc`` survives pickling (some exception classes need arguments they
    do not pass to ``Exception.__init__``, and fail on unpickling)."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure means: send its text only
        return False
    return True


def progress_log(log: Callable[[str], None], what: str, unit: str = "items") -> Progress:
    """A ``progress`` callback writing one line to ``log``: ``what: done/total unit, s, rate``."""

    def report(done: int, total: int | None, elapsed: float) -> None:
        of = "" if total is None else f"/{total}"
        rate = f", {done / elapsed:.1f}/s" if elapsed > 0 else ""
        log(f"{what}: {done}{of} {unit} in {elapsed:.1f} s{rate}")

    return report
