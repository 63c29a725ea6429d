"""Overrides through the API: validation, the written document, and re-runs launched through
a real HTTP server on 127.0.0.1 that validates every GraphQL document against Dagster's own
schema and answers like Dagster (an asset backfill needs Dagster's daemon, which a unit
test cannot run; the in-process path runs for real in test_rerun_end_to_end.py)."""

from __future__ import annotations

import pytest
import yaml
from fastapi.testclient import TestClient

from style_pipeline.contracts.curation import Overrides
from style_pipeline.curation.overrides import overrides_for_partition
from style_pipeline.serving.override_writer import OverridesWriter
from style_pipeline.storage.store import Store
from style_pipeline_tests.serving.conftest import DAY, TOKEN

URL = f"/v1/days/{DAY}/overrides"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _post(client, frame_id, action="exclude", headers=None, **extra):
    return client.post(URL, json={"frame_id": frame_id, "action": action, **extra},
                       headers=headers)  # fmt: skip


def test_override_writes_the_document_and_launches_a_backfill(graphql_app, dagster_graphql):
    client = TestClient(graphql_app)
    fid = graphql_app.state.day_ids[0]
    response = _post(client, fid, "lock_in", by="ana")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["overrides"]["lock_in"] == [fid] and body["overrides"]["key"] == f"{DAY}.yml"
    assert body["overrides"]["updated_by"] == "ana"
    store: Store = graphql_app.state.overrides.store
    # what curated_frames reads: the same key, the same lists
    assert overrides_for_partition(store, DAY, prefix="").lock_in == [fid]
    saved = yaml.safe_load(store.read_bytes(f"{DAY}.yml"))
    assert saved["history"][0]["action"] == "lock_in" and saved["history"][0]["by"] == "ana"

    launch = dagster_graphql.launches[-1]
    assert launch["partitionNames"] == [DAY]
    assert {"path": ["curated_frames"]} in launch["assetSelection"]
    assert {"path": ["captions"]} in launch["assetSelection"]  # everything downstream
    assert {"path": ["frames"]} not in launch["assetSelection"]
    run = body["run"]
    assert run["backend"] == "dagster" and run["status"] == "STARTED"
    dagster_graphql.statuses[run["dagster_run_id"]] = "COMPLETED_SUCCESS"
    done = client.get(f"/v1/runs/{run['id']}").json()
    assert done["status"] == "SUCCESS" and done["dagster_status"] == "COMPLETED_SUCCESS"


def test_actions_move_a_frame_between_lists_and_clear_it(graphql_app):
    client = TestClient(graphql_app)
    fid, other = graphql_app.state.day_ids[:2]
    _post(client, other, "lock_in")
    _post(client, fid, "lock_in")
    doc = _post(client, fid, "exclude").json()["overrides"]
    assert doc["lock_in"] == [other] and doc["exclude"] == [fid]
    doc = _post(client, fid, "clear").json()["overrides"]
    assert doc["lock_in"] == [other] and doc["exclude"] == []
    assert [h["action"] for h in doc["history"]] == ["lock_in", "lock_in", "exclude", "clear"]
    assert client.get(URL).json()["lock_in"] == [other]


def test_existing_hand_written_json_file_keeps_its_key_and_format(graphql_app):
    store: Store = graphql_app.state.overrides.store
    fid, kept = graphql_app.state.day_ids[:2]
    store.put_bytes(b'{"exclude": ["%s"], "note": "by hand"}' % kept.encode(), f"{DAY}.json")
    doc = _post(TestClient(graphql_app), fid).json()["overrides"]
    assert doc["key"] == f"{DAY}.json" and doc["note"] == "by hand"
    assert overrides_for_partition(store, DAY, prefix="").exclude == [kept, fid]
    assert not store.exists(f"{DAY}.yml")


def test_old_yaml_without_who_and_when_still_reads():
    old = Overrides.model_validate(yaml.safe_load("lock_in: [a]\nexclude: [b]\nnote: x\n"))
    assert old.history == [] and old.updated_at is None


def test_writer_works_on_an_s3_overrides_root(s3_root):
    writer = OverridesWriter(Store(s3_root))
    key, doc = writer.apply(DAY, "f" * 64, "exclude", "tester")
    assert key == f"{DAY}.yml" and doc.exclude == ["f" * 64]
    assert overrides_for_partition(Store(s3_root), DAY, prefix="").exclude == ["f" * 64]


def test_token_is_required_when_configured(graphql_app, monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_API_TOKEN", TOKEN)
    client = TestClient(graphql_app)
    fid = graphql_app.state.day_ids[0]
    refused = _post(client, fid)
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
    assert TOKEN not in refused.text
    assert _post(client, fid, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert _post(client, fid, headers=AUTH).status_code == 200
    page = client.get(f"/review/{DAY}").text
    assert TOKEN not in page and 'id="token"' in page  # typed by the user, never served


def test_bad_requests_are_refused_and_change_nothing(graphql_app, dagster_graphql):
    client = TestClient(graphql_app)
    fid = graphql_app.state.day_ids[0]
    cases = [
        (_post(client, "0" * 64), 404, "unknown_frame"),
        (_post(client, "../../etc/passwd"), 422, "bad_frame_id"),
        (_post(client, "a" * 129), 422, "invalid_request"),
        (_post(client, fid, "delete"), 422, "invalid_request"),
        (_post(client, fid, by="<script>"), 422, "invalid_request"),
        (_post(client, fid, path="/etc/passwd"), 422, "invalid_request"),
        (client.post("/v1/days/2026-11-11/overrides", json={"frame_id": fid, "action": "exclude"}),
         404, "unknown_date"),
        (client.post("/v1/days/2026-02-30/overrides", json={"frame_id": fid, "action": "exclude"}),
         422, "bad_date"),
        (client.post(URL, content=b"{" + b" " * 70_000 + b"}"), 413, None),
        (client.post(URL, content=b"not json", headers={"Content-Type": "application/json"}),
         422, "invalid_request"),
    ]  # fmt: skip
    for response, status, code in cases:
        assert response.status_code == status, response.text
        if code:
            assert response.json()["code"] == code
    assert not graphql_app.state.overrides.store.exists(f"{DAY}.yml")
    assert dagster_graphql.launches == []


def test_failed_launch_keeps_the_override_and_says_so(graphql_app, dagster_graphql):
    dagster_graphql.fail_launch = "no daemon"
    fid = graphql_app.state.day_ids[0]
    response = _post(TestClient(graphql_app), fid)
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "run_not_launched" and "no daemon" in body["detail"]
    assert body["overrides"]["exclude"] == [fid]


def test_unknown_or_malformed_run_ids(graphql_app):
    client = TestClient(graphql_app)
    assert client.get(f"/v1/runs/{'0' * 32}").json()["code"] == "unknown_run"
    bad = client.get("/v1/runs/..%2F..%2Fx")
    assert bad.status_code in (404, 422)
    assert client.get("/v1/runs/ZZ").json()["code"] == "bad_run_id"


def test_graphql_errors_are_reported(dagster_graphql):
    from style_pipeline.serving.graphql_client import DagsterGraphQL, DagsterGraphQLError

    with pytest.raises(DagsterGraphQLError, match="no backfill missing"):
        DagsterGraphQL(dagster_graphql.url).backfill_status("missing")
    unreachable = DagsterGraphQL("http://127.0.0.1:9/graphql", timeout_s=2)
    with pytest.raises(DagsterGraphQLError, match="127.0.0.1:9"):
        unreachable.launch_backfill(DAY, [["curated_frames"]], {})
