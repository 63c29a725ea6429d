"""Server time of the review page of a 1,000-frame day (goal: well under 500 ms).

Writes a synthetic day into a temporary local Store: the six tables of ``synthetic_day``
(one small JPEG per frame), plus the theme-driven curation's ``scores`` and ``ranking``
tables, ``curated_frames``' theme columns, ``curated_list/<date>.json`` and the judgments
document (``--without-theme`` leaves those out, as on an older day). Then times
``GET /review/<date>`` through FastAPI's TestClient: the first request (tables read,
joined and rendered), the following ones (nothing changed: the rendered page comes from
the cache), one after each override (the joined day is cached, the page renders again),
and the day's JSON. Server time is the app's ``Server-Timing`` header; the round trip
through TestClient is shown beside it.
Run: ``.venv/bin/python benchmarks/bench_review.py [--frames 1000] [--without-theme]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from style_pipeline.serving.app import create_app
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store
from style_pipeline_tests.serving.synthetic_day import write_day
from style_pipeline_tests.serving.test_review import write_theme_tables

DATE = "2026-11-10"


def _ms(client: TestClient, url: str) -> tuple[float, float, int]:
    """(server time from the Server-Timing header, round trip through TestClient, bytes)."""
    started = time.perf_counter()
    response = client.get(url)
    response.raise_for_status()
    server = float(response.headers["server-timing"].split("dur=")[1])
    return server, (time.perf_counter() - started) * 1000, len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--without-theme", action="store_true", help="no scores / ranking / roles / list"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "storage"
        settings = load_settings(storage=str(root))
        store = Store(str(root))
        ids = write_day(store, DATE, args.frames)
        if not args.without_theme:
            write_theme_tables(store, DATE)
        client = TestClient(create_app(settings, store, overrides_store=Store(tmp)))
        cold, cold_trip, size = _ms(client, f"/review/{DATE}")
        warm = [_ms(client, f"/review/{DATE}") for _ in range(args.repeat)]
        # an override changes the page but not the tables: joined day cached, page re-rendered
        rerender = []
        for i in range(args.repeat):
            client.app.state.overrides.apply(DATE, ids[i], "exclude", "bench")
            rerender.append(_ms(client, f"/review/{DATE}"))
        json_ms = [_ms(client, f"/v1/days/{DATE}") for _ in range(args.repeat)]
        theme = "without" if args.without_theme else "with"
        print(
            f"review page, {args.frames} frames ({theme} theme tables), "
            f"{size / 1e6:.2f} MB of HTML "
            "(server time from Server-Timing; round trip through TestClient)"
        )
        print(f"  first request (read + join + render): {cold:.0f} ms ({cold_trip:.0f} ms)")
        print(
            f"  unchanged day (page cache), median of {args.repeat}: "
            f"{statistics.median(w[0] for w in warm):.0f} ms "
            f"({statistics.median(w[1] for w in warm):.0f} ms)"
        )
        print(
            f"  after an override (render only), median: "
            f"{statistics.median(r[0] for r in rerender):.0f} ms "
            f"({statistics.median(r[1] for r in rerender):.0f} ms)"
        )
        print(
            f"  GET /v1/days/{DATE}, median: {statistics.median(j[0] for j in json_ms):.0f} ms "
            f"({statistics.median(j[1] for j in json_ms):.0f} ms)"
        )


if __name__ == "__main__":
    main()
