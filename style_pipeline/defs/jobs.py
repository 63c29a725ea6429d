"""Asset selections that sensors and schedules target."""

import dagster as dg

# What a new arrival refreshes for its day: ingest, then curation.
ARRIVAL_SELECTION = dg.AssetSelection.groups("ingest", "curation")

# What the nightly schedule runs for yesterday: captions, then training, evaluation and
# promotion (promoted_lora is in the training group; metrics' blocking checks gate it).
NIGHTLY_SELECTION = dg.AssetSelection.groups("captioning", "training")
