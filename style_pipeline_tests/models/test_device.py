"""Device choice: auto picks the best available; an unavailable explicit device raises."""

import pytest

from style_pipeline.models.device import available_devices, pick_device


def test_device_choice():
    assert pick_device("auto").type == available_devices()[0]
    assert pick_device("cpu").type == "cpu"
    if "cuda" not in available_devices():
        with pytest.raises(RuntimeError, match="not available"):
            pick_device("cuda")
