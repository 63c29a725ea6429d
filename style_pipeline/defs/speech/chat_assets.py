"""Speech group: ``chat_events`` (the day's chat logs, one row per message on the video
clock, refused lines kept with their reason).

Wiring and reporting only: the work is in ``stages/chat_events.py``.
"""

import time

import dagster as dg
import polars as pl

from style_pipeline.defs.metadata import counts_by, sample_table, table_metadata
from style_pipeline.defs.ownership import group_options
from style_pipeline.defs.partitions import DAILY_PARTITIONS
from style_pipeline.defs.resources import SettingsResource, StorageResource

SPEECH = group_options("speech")
EVENT_COLUMNS = ["chat_source_name", "line_no", "ts_ms", "user_hash", "status", "reason", "text"]


def files_markdown(files) -> str:
    """One row per chat log: format, video, clock origin, offset, counts or reason."""
    if not files:
        return "_no chat logs arrived on this date_"
    lines = [
        "| chat log | video | format | clock | offset ms | accepted | rejected | reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in files:
        lines.append(
            f"| `{f.source_name}` | {f.video or '_missing_'} | {f.format} | {f.clock} | "
            f"{f.offset_ms} | {f.accepted} | {f.rejected} | {f.reason or ''} |"
        )
    return "\n".join(lines)


@dg.asset(
    **SPEECH,
    kinds={"python", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            "rejects_have_reasons",
            asset="chat_events",
            partitions_def=DAILY_PARTITIONS,
            description="every rejected row names a known reason code; every accepted row has "
            "a video, a time on its clock, a user hash and text",
        )
    ],
)
def chat_events(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    raw_media: pl.DataFrame,
):
    """Chat messages of the day's logs on their video's clock (Twitch, YouTube, JSONL/CSV)."""
    from style_pipeline.contracts.chat import ChatRejectReason
    from style_pipeline.stages.chat_events import chat_events_partition, empty_chat_events_table

    started = time.perf_counter()
    cfg = settings.load().chat
    if not cfg.enabled:
        table = empty_chat_events_table()
        context.log.info("chat.enabled is false: no chat logs are read")
        yield dg.Output(
            table, metadata={**table_metadata(table), "reason": "chat.enabled is false"}
        )
    else:
        table, facts = chat_events_partition(raw_media, storage.store(), cfg)
        if facts.files and not facts.salted:
            context.log.warning(
                "chat.user_salt is empty: user hashes can be reversed by hashing known names; "
                "set STYLE_PIPELINE_CHAT__USER_SALT"
            )
        for f in facts.files:
            if f.reason is not None:
                context.log.warning(f"chat log {f.source_name!r}: {f.reason}")
        yield dg.Output(
            table,
            metadata={
                **table_metadata(table),
                "chat_logs": len(facts.files),
                "chat_logs_rejected": facts.files_rejected,
                "accepted": facts.accepted,
                "rejected": facts.rejected,
                "rejects_by_reason": facts.by_reason,
                "accepted_by_source": facts.by_source,
                "videos": table.filter(pl.col("status") == "accepted")["media_id"].n_unique(),
                "salted": facts.salted,
                "files": dg.MetadataValue.md(files_markdown(facts.files)),
                "seconds": round(time.perf_counter() - started, 3),
                "sample": sample_table(table.filter(pl.col("status") == "accepted"), EVENT_COLUMNS),
            },
        )
    rejected = table.filter(pl.col("status") == "rejected")
    known = {r.value for r in ChatRejectReason}
    unknown = sorted({r for r in rejected["reason"].to_list() if r not in known})
    accepted = table.filter(pl.col("status") == "accepted")
    incomplete = accepted.filter(
        (pl.col("media_id") == "")
        | pl.col("ts_ms").is_null()
        | pl.col("user_hash").is_null()
        | pl.col("text").is_null()
    )
    yield dg.AssetCheckResult(
        check_name="rejects_have_reasons",
        passed=not unknown and incomplete.is_empty(),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "unknown_reasons": ", ".join(str(u) for u in unknown),
            "incomplete_accepted": incomplete.height,
            "rejects_by_reason": counts_by(rejected, "reason"),
        },
    )
