"""Storage roots (local, memory://, s3://), atomic writes and IO managers."""

from style_pipeline.storage.store import Store

__all__ = ["Store"]
