"""Launch a re-run through a running Dagster webserver's GraphQL API, and ask its status.

A re-run is an asset backfill of one partition (``launchPartitionBackfill`` with an asset
selection): the daemon turns it into runs, so it needs ``dagster dev`` or a webserver with
a daemon. Both documents validate against Dagster 1.13's schema (a test checks them with
``dagster_graphql``'s own schema). Plain ``urllib``: one POST, no client library.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from style_pipeline.redaction import redact

LAUNCH_BACKFILL = """
mutation LaunchRerun($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId launchedRunIds }
    ... on Error { message }
  }
}
"""

BACKFILL_STATUS = """
query RerunStatus($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status }
    ... on Error { message }
  }
}
"""

# BulkActionStatus -> the run statuses the review page knows.
STATUS = {
    "REQUESTED": "STARTED",
    "COMPLETED": "SUCCESS",
    "COMPLETED_SUCCESS": "SUCCESS",
    "COMPLETED_FAILED": "FAILURE",
    "FAILED": "FAILURE",
    "FAILING": "STARTED",
    "CANCELING": "STARTED",
    "CANCELED": "CANCELED",
}


class DagsterGraphQLError(RuntimeError):
    """The webserver could not be reached or refused the request (message says which)."""


class DagsterGraphQL:
    """A minimal client of one Dagster GraphQL endpoint."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def _post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode("utf-8")
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as err:
            raise DagsterGraphQLError(
                f"Dagster GraphQL at {redact(self.url)} failed: {redact(str(err))}"
            ) from err
        if payload.get("errors"):
            messages = "; ".join(str(e.get("message")) for e in payload["errors"])
            raise DagsterGraphQLError(f"Dagster GraphQL refused the request: {messages}")
        data: dict[str, Any] = payload.get("data") or {}
        return data

    def launch_backfill(
        self, partition: str, asset_keys: list[list[str]], tags: dict[str, str]
    ) -> str:
        """Backfill ``asset_keys`` for ``partition``; returns the backfill id."""
        params = {
            "partitionNames": [partition],
            "assetSelection": [{"path": key} for key in asset_keys],
            "title": f"review override {partition}",
            "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
        }
        result = self._post(LAUNCH_BACKFILL, {"params": params}).get("launchPartitionBackfill")
        if not result or result.get("__typename") != "LaunchBackfillSuccess":
            kind = (result or {}).get("__typename", "no answer")
            raise DagsterGraphQLError(
                f"Dagster did not launch the backfill ({kind}): {(result or {}).get('message')}"
            )
        return str(result["backfillId"])

    def backfill_status(self, backfill_id: str) -> tuple[str, str]:
        """(review status, Dagster's BulkActionStatus) of a backfill."""
        result = self._post(BACKFILL_STATUS, {"id": backfill_id}).get("partitionBackfillOrError")
        if not result or result.get("__typename") != "PartitionBackfill":
            raise DagsterGraphQLError(
                f"backfill {backfill_id}: {(result or {}).get('message', 'not found')}"
            )
        raw = str(result["status"])
        return STATUS.get(raw, "STARTED"), raw
