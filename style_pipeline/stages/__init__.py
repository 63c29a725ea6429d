"""One module per asset: (upstream tables, Store, config) -> (table or document, facts).

No Dagster here; ``defs/<group>/assets.py`` wires these and turns facts into metadata.
"""
