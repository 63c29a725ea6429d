"""An S3 link that drops mid-upload (a cutting TCP proxy in front of moto on 127.0.0.1).

The ``Store`` talks to moto through ``CuttingProxy``; the test checks the bucket through
boto3 directly on moto. The upload is one byte over twice s3fs's smallest block (5 MiB,
set as the Store's block size), so it goes out as a multipart upload, and the proxy cuts
every connection that has sent 1 MiB: each attempt at the part dies mid-body while small
requests (create, abort, list) still pass.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlparse

import boto3
import pytest

from style_pipeline.storage.store import Store
from style_pipeline_tests.faults.tcp_proxy import CuttingProxy

pytestmark = pytest.mark.s3

BLOCK = 5 * 2**20  # s3fs refuses smaller blocks (S3's minimum part size)
KEY = "frames/2026-01-05/big.bin"


@pytest.fixture
def link(moto_server, monkeypatch, tmp_path):
    """(Store through the proxy, proxy, boto3 client on moto, bucket, 6 MiB source file)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    direct = urlparse(moto_server)
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    bucket = f"outage-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    proxy = CuttingProxy((direct.hostname or "127.0.0.1", direct.port or 80))
    store = Store(
        f"s3://{bucket}/root",
        client_kwargs={"endpoint_url": proxy.url},
        # botocore's own retries stacked on s3fs's would take ~10 s to give up
        config_kwargs={"retries": {"max_attempts": 1}},
        default_block_size=BLOCK,
        skip_instance_cache=True,
    )
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(BLOCK + 2**20))
    yield store, proxy, s3, bucket, source
    proxy.close()


def test_upload_cut_mid_part_raises_and_leaves_no_partial_object(link):
    store, proxy, s3, bucket, source = link
    store.put_bytes(b"earlier object", "keep/earlier.txt")

    proxy.cut_connections_after(2**20)
    with pytest.raises(OSError) as raised:
        store.put_file(source, KEY)
    assert proxy.cuts >= 1  # the part really was cut, not refused up front
    chain = f"{raised.value} {raised.value.__cause__} {raised.value.__context__}"
    assert str(proxy.port) in chain or bucket in chain, chain  # says where it failed

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["root/keep/earlier.txt"]  # nothing under the key, the earlier object kept
    assert store.read_bytes("keep/earlier.txt") == b"earlier object"

    proxy.cut_connections_after(None)  # the link comes back: the same Store uploads fine
    store.put_file(source, KEY)
    assert store.read_bytes(KEY) == source.read_bytes()


def test_upload_cut_mid_part_leaves_no_open_multipart_upload(link):
    store, proxy, s3, bucket, source = link
    proxy.cut_connections_after(2**20)
    with pytest.raises(OSError):
        store.put_file(source, KEY)
    assert proxy.cuts >= 1
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
