"""Review page, day JSON and thumbnails over a synthetic day; every error is JSON with a code."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from style_pipeline.contracts.curation import (
    CuratedListAudit,
    CuratedListDocument,
    CuratedListItem,
    JudgeSpend,
    JudgmentsDocument,
    ThemeRef,
)
from style_pipeline.serving.app import create_app
from style_pipeline.serving.review import ReviewData
from style_pipeline.serving.thumbnails import ThumbnailCache
from style_pipeline.settings import load_settings
from style_pipeline.storage import layout
from style_pipeline_tests.serving.conftest import DAY
from style_pipeline_tests.serving.synthetic_day import write_day


def test_page_shows_every_frame_with_decision_and_why_card(synthetic_app):
    client = TestClient(synthetic_app)
    html = client.get(f"/review/{DAY}").text
    ids = synthetic_app.state.day_ids
    assert all(f'id="f-{fid}"' in html for fid in ids)
    day = client.get(f"/v1/days/{DAY}").json()
    assert [f["frame_id"] for f in day["frames"]] == ids
    first = day["frames"][0]
    assert first["status"] == "dropped" and first["code"] == "over_budget"  # cluster -1
    kept = next(f for f in day["frames"] if f["status"] == "kept")
    assert kept["caption"].startswith("sty1e") and kept["medoid"] is not None
    assert set(kept["scores"]) >= {"score", "sharpness", "noise_sigma", "outlier_score"}
    assert {lab["category"] for lab in kept["labels"]} == {"subject", "setting", "lighting"}
    dup = next(f for f in day["frames"] if f["duplicate_of"])
    assert dup["near_duplicates"] == [dup["duplicate_of"]]
    assert f'href="#f-{dup["duplicate_of"]}"' in html  # near-duplicate links
    summary = day["summary"]
    assert summary["frames"] == 40 and summary["kept"] + summary["dropped"] == 40
    assert summary["dropped_by_code"] == {
        code: sum(1 for f in day["frames"] if f["status"] == "dropped" and f["code"] == code)
        for code in summary["dropped_by_code"]
    }
    assert summary["clusters"] == 8 and 0 < summary["clusters_covered"] <= 8
    for code in summary["dropped_by_code"]:
        assert f'<option value="{code}">' in html  # reason filter
    assert "sharpness" in html and "medoid" in html and "sty1e, a photo" in html


def test_missing_tables_are_not_materialized_not_errors(roots):
    store, overrides = roots
    write_day(store, DAY, 6, skip=("clusters", "captions", "curated_frames"))
    client = TestClient(create_app(load_settings(), store, overrides_store=overrides))
    response = client.get(f"/review/{DAY}")
    assert response.status_code == 200
    day = client.get(f"/v1/days/{DAY}").json()
    assert day["tables"]["clusters"] == "not materialized"
    assert day["tables"]["curated_frames"] == "not materialized"
    assert {f["status"] for f in day["frames"]} == {"undecided"}
    assert response.text.count("not materialized") >= 3


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/review/2026-11-11", 404, "unknown_date"),
        ("/v1/days/2026-11-11", 404, "unknown_date"),
        ("/review/2026-13-40", 422, "bad_date"),
        ("/v1/days/..%2F..%2Fetc", 404, "not_found"),
        ("/v1/days/yesterday", 422, "bad_date"),
        ("/thumb/2026-11-11/abc.jpg", 404, "unknown_date"),
        (f"/thumb/{DAY}/{'0' * 64}.jpg", 404, "unknown_frame"),
        (f"/thumb/{DAY}/{'a' * 300}.jpg", 422, "bad_frame_id"),
        (f"/thumb/{DAY}/..%2F..%2F..%2Fetc%2Fpasswd.jpg", 404, "not_found"),
        (f"/thumb/{DAY}/%2E%2E.jpg", 422, "bad_frame_id"),
        (f"/thumb/{DAY}/frame.png", 404, "not_found"),
    ],
)
def test_bad_dates_and_ids_get_json_errors(synthetic_app, url, status, code):
    response = TestClient(synthetic_app).get(url)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


def test_thumbnail_is_resized_cached_and_has_an_etag(synthetic_app):
    client = TestClient(synthetic_app)
    synthetic_app.state.thumbs.edge = 48
    fid = synthetic_app.state.day_ids[3]
    response = client.get(f"/thumb/{DAY}/{fid}.jpg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(response.content)).size) == 48
    etag = response.headers["etag"]
    assert "max-age" in response.headers["cache-control"]
    again = client.get(f"/thumb/{DAY}/{fid}.jpg", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert len(synthetic_app.state.thumbs) == 1


def test_thumbnail_cache_keeps_the_newest_entries(roots):
    store, _ = roots
    ids = write_day(store, DAY, 5)
    cache = ThumbnailCache(store, 32, entries=2)
    for fid in ids:
        cache.get(layout.frame_key(DAY, fid))
    assert len(cache) == 2
    assert list(cache._items) == [layout.frame_key(DAY, fid) for fid in ids[-2:]]


def test_day_cache_follows_table_versions(roots):
    store, _ = roots
    ids = write_day(store, DAY, 10)
    review = ReviewData(store)
    first = review.day(DAY)
    assert review.day(DAY) is first  # unchanged tables: no re-read
    curated = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key("curated_frames", DAY))))
    curated = curated.with_columns(pl.lit(True).alias("keep"), pl.lit("locked_in").alias("code"))
    out = io.BytesIO()
    curated.write_parquet(out)
    store.put_bytes(out.getvalue(), layout.table_key("curated_frames", DAY))
    second = review.day(DAY)
    assert second is not first and second.summary["kept"] == len(ids)


def test_review_index_lists_days(synthetic_app):
    client = TestClient(synthetic_app)
    assert client.get("/v1/days").json() == {"days": [DAY]}
    assert f'href="/review/{DAY}"' in client.get("/review").text
    nav = client.get("/review").text
    assert 'href="/generate"' in nav and "LoRAs" in nav


# --- theme-driven curation: scores, ranking, roles, axis tags, curated list, judge spend ---

ROLES = ("opener", "anchor", "body", "closer")
THEME_HASH = "c0ffee" + "0" * 58
SPEND = JudgeSpend(judge="endpoint:gpt-4o-mini", model="gpt-4o-mini", pairs=42, pair_budget=200,
                   cache_hits=5, fallbacks=1, input_tokens=51234, output_tokens=2100,
                   token_budget=500000, cost_usd=0.0123)  # fmt: skip


def _tags(i: int, keep: bool) -> dict[str, str]:
    """Night shots are never kept (a gap); dusk is on no frame at all."""
    time_of_day = "night" if not keep and i % 4 == 1 else ("golden_hour" if i % 2 else "day")
    return {"orientation": "landscape" if i % 5 else "portrait", "time_of_day": time_of_day}


def write_theme_tables(
    store, date: str, *, curated_list: bool = True, judgments: bool = True
) -> dict[str, str]:
    """Add scores, ranking, curated_frames' theme columns and (optionally) the curated list
    and judgments documents to a day written by ``write_day``; frame id -> its role."""
    key = layout.table_key("curated_frames", date)
    curated = pl.read_parquet(io.BytesIO(store.read_bytes(key)))
    ids, keep = curated["frame_id"].to_list(), curated["keep"].to_list()
    cluster = curated["cluster"].to_list()
    n = len(ids)
    rng = np.random.default_rng(7)
    total = rng.uniform(0.2, 0.9, n)
    first_kept: dict[int, int] = {}
    for i, (k, c) in enumerate(zip(keep, cluster, strict=True)):
        if k and c >= 0:
            first_kept.setdefault(c, i)
    heroes = set(first_kept.values())
    members: dict[int, list[int]] = {}
    for i, c in enumerate(cluster):
        members.setdefault(c, []).append(i)
    contender = [c >= 0 and (i in heroes or members[c].index(i) < 3) for i, c in enumerate(cluster)]
    alternates = {}
    for c, rows in members.items():
        if c >= 0:
            others = [i for i in rows if contender[i] and i not in heroes]
            alternates.update({i: r + 1 for r, i in enumerate(others)})
    elo = [1500.0 + (40 if i in heroes else -10 * alternates.get(i, 0)) if contender[i] else None
           for i in range(n)]  # fmt: skip
    kept_rows = [i for i in range(n) if keep[i]]
    role = {i: ROLES[r % len(ROLES)] for r, i in enumerate(kept_rows)}
    tags = [_tags(i, keep[i]) for i in range(n)]
    axes = {"orientation": ("landscape", "portrait"),
            "time_of_day": ("day", "golden_hour", "night", "dusk")}  # fmt: skip
    coverage = {a: {v: sum(tags[i][a] == v for i in kept_rows) for v in values}
                for a, values in axes.items()}  # fmt: skip
    low = {"time_of_day": "time_of_day: need more night shots? ("
           f"{sum(t['time_of_day'] == 'night' for t in tags)} unpicked today); "
           "need more dusk shots? (none today)"}  # fmt: skip
    rationale = [f"sharper subject and room for a headline (frame {i})" if i in heroes else None
                 for i in range(n)]  # fmt: skip
    tables = {
        "scores": pl.DataFrame({
            "frame_id": ids, "q_tech": rng.uniform(0.3, 1, n), "aesthetic": rng.uniform(0, 1, n),
            "aesthetic_source": ["reward_model"] * n, "vibe": rng.uniform(0, 1, n),
            "typography": rng.uniform(0, 1, n), "text_fraction": [0.0] * n,
            "calm_fraction": rng.uniform(0, 1, n), "composition": rng.uniform(0, 1, n),
            "thirds_distance": rng.uniform(0, 0.5, n),
            "horizon_tilt_deg": pl.Series([None] * n, dtype=pl.Float64),
            "border_cut": [False] * n, "total_prelim": total, "passed": [True] * n,
            "reasons": [[] for _ in range(n)], "scorecard_version": ["1"] * n,
            "theme": ["default"] * n, "theme_hash": [THEME_HASH] * n,
        }),
        "ranking": pl.DataFrame({
            "frame_id": ids, "cluster": cluster, "contender": contender,
            "elo": pl.Series(elo, dtype=pl.Float64),
            "wins": [2 if i in heroes else 0 for i in range(n)],
            "losses": [0 if i in heroes else int(contender[i]) for i in range(n)],
            "hero": [i in heroes for i in range(n)],
            "alternate_rank": pl.Series([alternates.get(i) for i in range(n)], dtype=pl.Int64),
            "opener_finalist": [i in heroes for i in range(n)],
            "opener_elo": pl.Series([1510.0 if i in heroes else None for i in range(n)],
                                    dtype=pl.Float64),
            "rationale": pl.Series(rationale, dtype=pl.String),
            "judge": [SPEND.judge] * n, "theme_hash": [THEME_HASH] * n,
            "reason": pl.Series([None if contender[i] else
                                 ("outlier" if cluster[i] < 0 else "not_a_contender")
                                 for i in range(n)], dtype=pl.String),
        }),
    }  # fmt: skip
    tables["curated_frames"] = curated.with_columns(
        pl.Series("role", [role.get(i) for i in range(n)], dtype=pl.String),
        pl.Series("role_probability",
                  [0.4 + 0.1 * (i % 3) if i in role else None for i in range(n)],
                  dtype=pl.Float64),
        pl.Series("role_probs", [[{"role": r, "p": 0.25} for r in ROLES] for _ in range(n)],
                  dtype=pl.List(pl.Struct({"role": pl.String(), "p": pl.Float64()}))),
        pl.Series("diversity_tags", [[f"{a}:{v}" for a, v in sorted(t.items())] for t in tags]),
        pl.Series("total_prelim", total, dtype=pl.Float64),
        pl.Series("hero", [i in heroes for i in range(n)], dtype=pl.Boolean),
        pl.Series("elo", elo, dtype=pl.Float64),
        pl.Series("low_coverage", [list(low.values())] * n, dtype=pl.List(pl.String)),
    )  # fmt: skip
    for name, table in tables.items():
        out = io.BytesIO()
        table.write_parquet(out)
        store.put_bytes(out.getvalue(), layout.table_key(name, date))
    if judgments:
        doc = JudgmentsDocument(date=date, theme_hash=THEME_HASH, spend=SPEND)
        store.put_bytes(doc.model_dump_json().encode(), layout.judgments_key(date))
    if curated_list:
        items = [
            CuratedListItem(rank=r, frame_id=ids[i], cluster_id=cluster[i], role=role[i],
                            scores={"total_prelim": float(total[i])},
                            diversity_tags=[f"{a}:{v}" for a, v in sorted(tags[i].items())],
                            tags=tags[i], reasons=[f"role {role[i]}"],
                            artifacts={"frame": layout.frame_key(date, ids[i])},
                            elo=elo[i], rationale=rationale[i])
            for r, i in enumerate(kept_rows, start=1)
        ]  # fmt: skip
        document = CuratedListDocument(
            date=date, theme=ThemeRef(name="default", version="1.0", hash=THEME_HASH), items=items,
            coverage=coverage, low_coverage=low,
            audit=CuratedListAudit(created_at=dt.datetime(2026, 11, 10, tzinfo=dt.UTC),
                                   optimizer={}, judge=SPEND, seeds={"selection": 0}),
        )  # fmt: skip
        key = layout.document_key(layout.CURATED_LIST, date)
        store.put_bytes(document.model_dump_json().encode(), key)
    return {ids[i]: r for i, r in role.items()}


@pytest.fixture()
def theme_app(roots):
    store, overrides = roots
    ids = write_day(store, DAY, 40)
    roles = write_theme_tables(store, DAY)
    app = create_app(load_settings(), store, overrides_store=overrides)
    app.state.day_ids, app.state.roles = ids, roles
    return app


def test_theme_day_card_shows_scores_role_tags_elo_and_rationale(theme_app):
    client = TestClient(theme_app)
    html = client.get(f"/review/{DAY}").text
    day = client.get(f"/v1/days/{DAY}").json()
    theme_tables = {k: v for k, v in day["tables"].items() if k != "characters"}  # faces apart
    assert all(state == "ok" for state in theme_tables.values()), day["tables"]
    hero = next(f for f in day["frames"] if f["hero"] and f["status"] == "kept")
    assert set(hero["theme_scores"]) == {"q_tech", "aesthetic", "vibe", "typography",
                                         "composition", "total_prelim"}  # fmt: skip
    assert hero["aesthetic_source"] == "reward_model"
    assert hero["role"] == theme_app.state.roles[hero["frame_id"]]
    assert hero["role_probability"] is not None and hero["list_rank"] >= 1
    assert hero["elo"] == 1540.0 and hero["rationale"].startswith("sharper subject")
    assert hero["diversity_tags"] and all(":" in t for t in hero["diversity_tags"])
    assert "theme_bar_rows" not in hero and "tags_attr" not in hero  # page-only
    card = html[html.index(f'id="f-{hero["frame_id"]}"') :]
    card = card[: card.index("</article>")]
    assert f'data-role="{hero["role"]}"' in card and "&#9733; hero" in card
    assert "aesthetic (reward_model)" in card and "total_prelim" in card and "vibe" in card
    assert f"rank {hero['list_rank']} in the list" in card
    assert "Elo 1540" in card and "sharper subject and room for a headline" in card
    for tag in hero["diversity_tags"]:
        assert f'<span class="tag">{tag}</span>' in card
    alternate = next(f for f in day["frames"] if f["alternate_rank"])
    assert alternate["hero"] is False and alternate["elo"] is not None
    assert f"alternate {alternate['alternate_rank']}" in html


def test_theme_day_summary_shows_coverage_roles_theme_and_spend(theme_app):
    client = TestClient(theme_app)
    html = client.get(f"/review/{DAY}").text
    summary = client.get(f"/v1/days/{DAY}").json()["summary"]
    assert summary["theme"]["name"] == "default" and summary["theme"]["short"] == THEME_HASH[:8]
    assert summary["coverage"]["time_of_day"]["night"] == 0
    assert summary["coverage"]["time_of_day"]["dusk"] == 0
    assert sum(summary["coverage"]["orientation"].values()) == summary["kept"]
    assert summary["roles"] == {r: list(theme_app.state.roles.values()).count(r) for r in ROLES}
    assert summary["judge"]["pairs"] == 42 and summary["judge"]["source"] == "curated_list"
    assert "need more night shots?" in summary["low_coverage"]["time_of_day"]
    assert '<span class="cv gap">night <b>0</b></span>' in html
    assert "need more dusk shots? (none today)" in html
    assert f'<code title="{THEME_HASH}">{THEME_HASH[:8]}</code>' in html
    assert "42 / 200" in html and "51,234 in + 2,100 out / 500,000" in html and "$0.0123" in html
    for role in ROLES:
        assert f'<option value="{role}">{role}</option>' in html  # role filter
    assert '<option value="time_of_day:golden_hour">' in html  # tag filter
    assert 'id="f-role" disabled' not in html


def test_theme_day_without_curated_list_uses_curated_frames_and_judgments(roots):
    store, overrides = roots
    write_day(store, DAY, 20)
    write_theme_tables(store, DAY, curated_list=False)
    client = TestClient(create_app(load_settings(), store, overrides_store=overrides))
    day = client.get(f"/v1/days/{DAY}").json()
    assert day["tables"]["curated_list"] == "not materialized"
    summary = day["summary"]
    assert summary["judge"]["source"] == "judgments" and summary["judge"]["cost_usd"] == 0.0123
    assert summary["theme"]["hash"] == THEME_HASH
    assert summary["coverage"]["time_of_day"]["night"] == 0  # seen on frames, never kept
    assert "dusk" not in summary["coverage"]["time_of_day"]  # no frame carries it
    assert "need more dusk shots?" in summary["low_coverage"]["time_of_day"]
    assert "(judgments)" in client.get(f"/review/{DAY}").text


def test_day_without_theme_tables_still_renders(synthetic_app):
    client = TestClient(synthetic_app)
    response = client.get(f"/review/{DAY}")
    assert response.status_code == 200
    day = client.get(f"/v1/days/{DAY}").json()
    for name in ("scores", "ranking", "curated_list", "judgments"):
        assert day["tables"][name] == "not materialized"
    summary = day["summary"]
    assert summary["theme"] is None and summary["judge"] is None
    assert summary["coverage"] == {} and summary["roles"] == {}
    frame = day["frames"][0]
    assert frame["theme_scores"] == {} and frame["role"] is None and frame["elo"] is None
    html = response.text
    assert 'id="f-role" disabled' in html and 'id="f-tag" disabled' in html
    assert "&#9733; hero" not in html and 'class="bars theme"' not in html
    why = html[html.index('<details class="why">') :]
    why = why[: why.index("</details>")]
    assert '<dt>theme, role</dt><dd><span class="muted">not materialized</span>' in why


def test_malformed_curated_list_is_reported_not_fatal(roots):
    store, overrides = roots
    write_day(store, DAY, 10)
    write_theme_tables(store, DAY, curated_list=False)
    store.put_bytes(b'{"version": "1"}', layout.document_key(layout.CURATED_LIST, DAY))
    client = TestClient(create_app(load_settings(), store, overrides_store=overrides))
    assert client.get(f"/review/{DAY}").status_code == 200
    day = client.get(f"/v1/days/{DAY}").json()
    assert day["tables"]["curated_list"].startswith("invalid:")
    assert day["summary"]["judge"]["source"] == "judgments"
