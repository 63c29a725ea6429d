"""The web app (FastAPI): review pages, overrides, promotion history, generation, JSON API.

It reads what the pipeline stored (through ``storage`` and the day's tables), writes only
the overrides document, and asks Dagster for runs (GraphQL or in-process); the assets
stay the only writers of asset outputs.
"""
