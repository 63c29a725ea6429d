"""Re-runs requested by the review page: ``curated_frames`` and everything downstream.

Two launchers behind one ``RunBook``: through a running Dagster webserver's GraphQL API
(``serving.dagster_graphql_url``: an asset backfill of the date), or in this process in a
background thread (``defs.run.materialize_partition``) when no webserver is configured.
In-process runs of one date go one at a time; a request while one is still queued joins
it (the queued run reads the overrides when it starts, so it includes the new change).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import dagster as dg

from style_pipeline.redaction import redact
from style_pipeline.serving.graphql_client import DagsterGraphQL, DagsterGraphQLError

RERUN_SELECTION = "key:curated_frames+"
TERMINAL = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
TRIGGER_TAGS = {"style_pipeline/trigger": "review"}
KEEP_RECORDS = 200
log = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class RunRecord:
    """One requested re-run as the page sees it."""

    id: str
    date: str
    selection: str
    backend: str  # "in_process" | "dagster"
    status: str = "QUEUED"  # QUEUED, STARTED, SUCCESS, FAILURE, CANCELED
    requested_at: str = ""
    started_at: str | None = None
    ended_at: str | None = None
    dagster_run_id: str | None = None  # in-process: the run; dagster: the backfill id
    dagster_status: str | None = None
    materialized: list[str] | None = None
    detail: str | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


class RunBook:
    """Requests and tracks re-runs; ``request`` never blocks on a run."""

    def __init__(
        self,
        graphql_url: str | None = None,
        instance: dg.DagsterInstance | None = None,
        selection: str = RERUN_SELECTION,
    ) -> None:
        self.selection = selection
        self.instance = instance
        self.client = DagsterGraphQL(graphql_url) if graphql_url else None
        self._records: OrderedDict[str, RunRecord] = OrderedDict()
        self._lock = threading.Lock()
        self._date_locks: dict[str, threading.Lock] = {}
        self._threads: dict[str, threading.Thread] = {}

    def request(self, date: str) -> dict[str, Any]:
        """Ask for a re-run of ``date``; returns its record (``DagsterGraphQLError``)."""
        if self.client is not None:
            return self._launch_backfill(date)
        with self._lock:
            for record in self._records.values():
                if record.date == date and record.status == "QUEUED":
                    return asdict(record)
            record = self._new(date, "in_process")
            thread = threading.Thread(
                target=self._run_in_process, args=(record,), name=f"rerun-{date}", daemon=True
            )
            self._threads[record.id] = thread
        thread.start()
        return asdict(record)

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The record of ``run_id`` (its status refreshed from Dagster), None if unknown."""
        with self._lock:
            record = self._records.get(run_id)
        if record is None:
            return None
        if record.backend == "dagster" and not record.done and self.client is not None:
            try:
                status, raw = self.client.backfill_status(record.dagster_run_id or "")
            except DagsterGraphQLError as err:
                record.detail = str(err)  # keep the last known status; say why it is stale
            else:
                record.status, record.dagster_status = status, raw
                if record.done and record.ended_at is None:
                    record.ended_at = _now()
        return asdict(record)

    def active(self, date: str) -> dict[str, Any] | None:
        """The newest unfinished re-run of ``date``, if any."""
        with self._lock:
            found = [r for r in self._records.values() if r.date == date and not r.done]
        return asdict(found[-1]) if found else None

    def wait(self, run_id: str, timeout: float | None = None) -> None:
        """Block until an in-process run's thread ends (tests and shutdown)."""
        thread = self._threads.get(run_id)
        if thread is not None:
            thread.join(timeout)

    def _new(self, date: str, backend: str) -> RunRecord:
        record = RunRecord(uuid.uuid4().hex, date, self.selection, backend, requested_at=_now())
        self._records[record.id] = record
        while len(self._records) > KEEP_RECORDS:
            oldest = next(iter(self._records))
            self._records.pop(oldest)
            self._threads.pop(oldest, None)
        return record

    def _launch_backfill(self, date: str) -> dict[str, Any]:
        assert self.client is not None
        backfill_id = self.client.launch_backfill(date, self.asset_keys(), TRIGGER_TAGS)
        with self._lock:
            record = self._new(date, "dagster")
            record.status, record.started_at = "STARTED", _now()
            record.dagster_run_id, record.dagster_status = backfill_id, "REQUESTED"
        return asdict(record)

    def asset_keys(self) -> list[list[str]]:
        """The asset keys ``selection`` names in this code location, as GraphQL paths."""
        from style_pipeline.defs.run import load_defs

        graph = load_defs().resolve_asset_graph()
        keys = dg.AssetSelection.from_string(self.selection).resolve(graph)
        return sorted(list(key.path) for key in keys)

    def _run_in_process(self, record: RunRecord) -> None:
        from style_pipeline.defs.run import materialize_partition

        with self._lock:
            date_lock = self._date_locks.setdefault(record.date, threading.Lock())
        with date_lock:
            record.status, record.started_at = "STARTED", _now()
            try:
                summary = materialize_partition(record.date, self.selection, self.instance)
            # Why broad: this thread is the only place that can record the failure; without
            # it the page would poll a run that died silently.
            except Exception as err:  # noqa: BLE001
                log.exception("re-run of %s failed", record.date)
                record.status, record.detail = "FAILURE", redact(f"{type(err).__name__}: {err}")
            else:
                record.dagster_run_id = summary.run_id
                record.materialized = summary.materialized
                record.status = "SUCCESS" if summary.success else "FAILURE"
                if summary.failed_steps:
                    record.detail = f"failed steps: {', '.join(summary.failed_steps)}"
            record.ended_at = _now()
