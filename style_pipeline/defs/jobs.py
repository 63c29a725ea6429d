"""Asset selections that sensors and schedules target."""

import dagster as dg

# What a new arrival refreshes for its day: ingest, then curation.
ARRIVAL_SELECTION = dg.AssetSelection.groups("ingest", "curation")
