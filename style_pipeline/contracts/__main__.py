"""``python -m style_pipeline.contracts``: export the JSON Schemas of every contract."""

from style_pipeline.contracts.schemas import ALL_MODELS, SCHEMA_DIR, export_json_schemas

if __name__ == "__main__":
    for path in export_json_schemas(ALL_MODELS, SCHEMA_DIR):
        print(path)
