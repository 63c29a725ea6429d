"""One module per asset: (upstream tables, Store, config) -> (table or document, facts).

No Dagster here; ``defs/<group>/assets.py`` wires these and turns facts into metadata.
"""

# A fact is a plain value Dagster accepts as metadata (bool is an int; buckets: counts by name).
FactValue = str | int | float | dict[str, int]
