"""ENOSPC: a storage root on a 2 MiB tmpfs; a write that does not fit fails and leaves nothing.

Mounting needs root and a kernel that allows it (not in every container); otherwise the
tests are skipped with the reason.
"""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

from style_pipeline.storage.store import Store

KEY = "frames/2026-01-05/too_big.jpg"


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs mounted under tmp_path, unmounted afterwards."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def every_file(root) -> dict[str, bytes]:
    """Every file under ``root``, dot files (temp files) included."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("how", ["put_bytes", "put_file"])
def test_write_that_does_not_fit_fails_cleanly(small_disk, tmp_path, how):
    store = Store(str(small_disk))
    earlier = os.urandom(512 * 1024)
    store.put_bytes(earlier, "frames/2026-01-05/earlier.jpg")
    big = os.urandom(3 * 2**20)
    source = tmp_path / "big.jpg"
    source.write_bytes(big)

    with pytest.raises(OSError) as raised:
        if how == "put_bytes":
            store.put_bytes(big, KEY)
        else:
            store.put_file(source, KEY)

    assert raised.value.errno == errno.ENOSPC, raised.value
    # no partial object, no temp file beside it; the earlier object is untouched
    assert every_file(small_disk) == {"frames/2026-01-05/earlier.jpg": earlier}
    # the space was given back: a write that fits still works
    store.put_bytes(b"fits", "frames/2026-01-05/small.jpg")
    assert store.read_bytes("frames/2026-01-05/small.jpg") == b"fits"
