"""Asset selections that sensors and schedules target."""

import dagster as dg

INGEST_SELECTION = dg.AssetSelection.groups("ingest")
