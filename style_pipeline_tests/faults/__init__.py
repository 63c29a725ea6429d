"""Fault suite: kill -9, concurrent runs, S3 outage, full disk and hostile sensor input."""
