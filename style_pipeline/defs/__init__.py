"""Dagster shell: thin assets, resources, sensors, schedules and checks."""
