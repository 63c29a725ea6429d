"""End to end: generated media in the drop folder -> every asset through the Dagster instance."""

import datetime as dt
import hashlib
import io
import json

import polars as pl
import pytest

from style_pipeline.contracts.curation import CuratedListDocument
from style_pipeline.defs.run import materialize_partition, materialized_partitions
from style_pipeline.demo.samples import populate_drop
from style_pipeline.demo.speech import split_salt
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store

pytestmark = pytest.mark.slow


def _table(store: Store, key: str) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(store.read_bytes(key)))


def test_whole_graph_on_generated_media(instance, tiny_models, monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__MIN_CURATED_PER_DAY", "2")
    # the tiny model would fail the blocking trained_on_real_weights check (as in the demo)
    monkeypatch.setenv("STYLE_PIPELINE_TRAINING__ALLOW_TINY_PROMOTION", "true")
    # real transcripts offline (pocketsphinx, its model inside its wheel), so pairs align
    # and the LLM adapter trains; one short extra speaking clip (the pairs of a video stay in
    # one split) and a split salt that puts the two videos in train and val, as in the demo
    monkeypatch.setenv("STYLE_PIPELINE_SPEECH__TRANSCRIPTION__BACKEND", "pocketsphinx")
    settings = load_settings()
    samples = populate_drop(settings.drop_path(), seed=3, video_seconds=7, width=640, height=360,
                            extra_talks=1)  # fmt: skip
    ids = [hashlib.sha256(v.read_bytes()).hexdigest() for v in samples.speaking_videos()]
    salt = split_salt(ids, settings.sft.split)
    assert salt is not None
    monkeypatch.setenv("STYLE_PIPELINE_SFT__SPLIT__SALT", salt)
    today = dt.datetime.now(dt.UTC).date().isoformat()

    summary = materialize_partition(today, "*", instance=instance)
    assert summary.success, summary.failed_steps
    assert set(summary.materialized) >= {
        "raw_media", "frames", "quality_scores", "dedup_set", "embeddings", "clusters",
        "curated_frames", "curated_list", "ontology", "caption_model", "captions",
        "training_dataset", "reward_model", "lora_weights", "metrics", "promoted_lora",
        "audio", "transcripts", "chat_events", "aligned_pairs", "sft_dataset",
        "llm_adapter", "llm_eval", "promoted_llm_adapter",
    }  # fmt: skip

    store = Store(settings.storage_root())
    raw = _table(store, f"raw_media/{today}.parquet")
    status = dict(zip(raw["source_name"], raw["status"], strict=True))
    assert status[samples.video.name] == "accepted"
    assert all(status[p.name] == "accepted" for p in samples.photos)
    assert all(status[v.name] == "accepted" for v in samples.speaking_videos())
    bad = raw.filter(pl.col("source_name") == samples.bad.name).row(0, named=True)
    assert bad["status"] == "rejected" and bad["reject_reason"] == "extension_mismatch"

    frames = _table(store, f"frames/{today}.parquet")
    video_frames = frames.filter(
        (pl.col("mode") != "still") & (pl.col("source_name") == samples.video.name)
    )
    # one frame per shot: the first frame plus one per known cut
    assert len(video_frames) == len(samples.cut_times) + 1
    assert len(frames.filter(pl.col("mode") == "still")) == len(samples.photos)
    assert all(store.exists(p) for p in frames["path"])

    # a re-run on the same inputs gives the same outputs
    again = materialize_partition(today, "*", instance=instance)
    assert again.success
    assert (
        _table(store, f"frames/{today}.parquet")["frame_id"].to_list()
        == frames["frame_id"].to_list()
    )
    assert today in materialized_partitions(instance)["frames"]
    curated = _table(store, f"curated_frames/{today}.parquet")
    captions = _table(store, f"captions/{today}.parquet")
    assert curated["keep"].sum() >= 2
    assert sorted(captions["frame_id"]) == sorted(curated.filter(pl.col("keep"))["frame_id"])
    # today's curated list: valid, every kept frame once, with roles and axis tags
    listed = CuratedListDocument.model_validate_json(store.read_bytes(f"curated_list/{today}.json"))
    assert listed.date == today and len(listed.items) == curated["keep"].sum()
    assert sorted(i.frame_id for i in listed.items) == sorted(
        curated.filter(pl.col("keep"))["frame_id"]
    )
    assert listed.items[0].role == "opener" and all(i.role for i in listed.items)
    assert all(
        {"time_of_day", "orientation", "palette", "scene"} <= set(i.tags) for i in listed.items
    )
    assert all(f"{a}:{v}" in i.diversity_tags for i in listed.items for a, v in i.tags.items())
    assert set(listed.coverage) >= {"scene", "palette", "time_of_day", "orientation"}
    assert all(store.exists(i.artifacts["export"]) for i in listed.items)
    lora = json.loads(store.read_bytes(f"lora_weights/{today}.json"))
    assert store.exists(f"{lora['prefix']}/pytorch_lora_weights.safetensors")
    assert lora["model_profile"] == "tiny"
    report = json.loads(store.read_bytes(f"metrics/{today}.json"))
    assert report["lora_version"] == lora["version"]
    assert report["metrics"]["clip_score"] is not None
    # the re-run trained and promoted a second version of the day
    promoted = json.loads(store.read_bytes(f"promoted_lora/{today}.json"))
    live = json.loads(store.read_bytes("promoted_lora/live.json"))
    assert promoted["version"] == live["version"] == lora["version"]
    assert promoted["sha256"] == live["sha256"] == lora["sha256"]
    assert [e["action"] for e in live["history"]] == ["promote", "promote"]

    _check_speech_and_llm(store, today, samples)


def _check_speech_and_llm(store: Store, today: str, samples) -> None:
    """The speech side of the same day: the video's audio, its transcript, the chat log's
    events on the video's clock, pairs, the SFT dataset and the LLM adapter's documents;
    DuckDB views over all of it."""
    from style_pipeline.sql import connect, query

    assert samples.talk is not None, samples.speech_note  # espeak-ng (.ci/run installs it)
    audios = _table(store, f"audio/{today}.parquet")
    assert audios.height == 2 and (audios["status"] == "ok").all()
    audio = audios.filter(pl.col("source_name") == samples.video.name).row(0, named=True)
    assert audio["sample_rate"] == 16000
    assert abs(audio["duration_ms"] - 7000) < 300 and store.exists(audio["audio_key"])
    transcripts = _table(store, f"transcripts/{today}.parquet")
    assert set(transcripts["media_id"]) == set(audios["media_id"])  # both heard
    assert (transcripts["backend"] == "pocketsphinx").all()
    assert (transcripts["model"] == "pocketsphinx-en-us").all()
    chat = _table(store, f"chat_events/{today}.parquet").filter(pl.col("status") == "accepted")
    main = chat.filter(pl.col("media_id") == audio["media_id"]).sort("line_no")
    assert main["ts_ms"].to_list() == [m.at_s * 1000 for m in samples.talk.chat]
    assert set(chat["media_id"]) == set(audios["media_id"])
    pairs = _table(store, f"aligned_pairs/{today}.parquet")
    accepted = pairs.filter(pl.col("status") == "accepted")
    assert set(accepted["media_id"]) == set(audios["media_id"])  # a pair from each video
    for document in ("sft_dataset", "llm_adapter", "llm_eval", "promoted_llm_adapter"):
        assert store.exists(f"{document}/{today}.json"), document
    sft = json.loads(store.read_bytes(f"sft_dataset/{today}.json"))
    assert sft["counts"]["train"] >= 1 and sft["counts"]["val"] >= 1
    adapter = json.loads(store.read_bytes(f"llm_adapter/{today}.json"))
    assert adapter["trained"] is True, adapter.get("reason")
    evaluation = json.loads(store.read_bytes(f"llm_eval/{today}.json"))
    assert evaluation["evaluated"] and evaluation["metrics"]["val_perplexity"] > 0
    con, views = connect(store.root)
    names = {v.name for v in views}
    assert {"raw_media", "frames", "captions", "audio", "transcripts", "chat_events"} <= names
    joined = query(
        con,
        "select count(*) from chat_events c join audio a using (media_id, partition) "
        f"where c.status = 'accepted' and partition = '{today}'",
    )
    assert joined.rows == [(len(chat),)]
    con.close()
