"""Training core: LoRA presets, dataset folder builder, trainer and backends, reward model,
evaluation. Plain Python, no Dagster."""
