"""resolve_profile as a pure function: which callable runs, what is used, and why."""

from __future__ import annotations

import logging
import os

import pytest

from style_pipeline.models.profiles import PretrainedUnavailable, Resolved, offline, resolve_profile


class Calls:
    """Stand-in loaders that record which ran; ``pretrained`` fails when not ``available``."""

    def __init__(self, available: bool, error: Exception | None = None):
        self.available = available
        self.error = error or PretrainedUnavailable("weights not cached locally")
        self.log: list[str] = []

    def pretrained(self) -> str:
        self.log.append("pretrained")
        if not self.available:
            raise self.error
        return "pretrained-model"

    def tiny(self) -> str:
        self.log.append("tiny")
        return "tiny-model"


@pytest.mark.parametrize(
    ("profile", "available", "used", "reason", "calls"),
    [
        ("tiny", True, "tiny", None, ["tiny"]),
        ("tiny", False, "tiny", None, ["tiny"]),
        ("pretrained", True, "pretrained", None, ["pretrained"]),
        ("auto", True, "pretrained", None, ["pretrained"]),
        (
            "auto",
            False,
            "tiny",
            "weights not cached locally; run `style-pipeline models pull clip` to fetch it",
            ["pretrained", "tiny"],
        ),  # fmt: skip
    ],
)
def test_profile_x_availability(profile, available, used, reason, calls, recwarn):
    loaders = Calls(available)
    resolved = resolve_profile("CLIP", profile, loaders.pretrained, loaders.tiny)
    assert resolved == Resolved(f"{used}-model", profile, used, reason)
    assert loaders.log == calls
    fell_back = [w for w in recwarn if "FELL BACK TO TINY" in str(w.message)]
    assert len(fell_back) == (reason is not None)


def test_pretrained_unavailable_is_a_clear_error_never_a_fallback():
    loaders = Calls(available=False)
    with pytest.raises(PretrainedUnavailable, match="not cached locally"):
        resolve_profile("BLIP", "pretrained", loaders.pretrained, loaders.tiny)
    assert loaders.log == ["pretrained"]


def test_tiny_never_touches_pretrained():
    def pretrained() -> str:
        raise AssertionError("tiny profile tried the pretrained source")

    assert resolve_profile("CLIP", "tiny", pretrained, lambda: "tiny-model").used == "tiny"


def test_auto_fallback_is_loud(caplog):
    loaders = Calls(available=False)
    with (
        caplog.at_level(logging.WARNING, logger="style_pipeline.models.profiles"),
        pytest.warns(RuntimeWarning, match="BLIP profile auto FELL BACK TO TINY.*not cached"),
    ):
        resolve_profile("BLIP", "auto", loaders.pretrained, loaders.tiny)
    assert "FELL BACK TO TINY" in caplog.text and "not cached locally" in caplog.text


@pytest.mark.parametrize("error", [FileNotFoundError("no model_index.json"), OSError("corrupt")])
def test_fallback_on_names_the_errors_that_mean_unavailable(error):
    loaders = Calls(available=False, error=error)
    with pytest.warns(RuntimeWarning, match=str(error)):
        resolved = resolve_profile(
            "diffusion", "auto", loaders.pretrained, loaders.tiny, fallback_on=(OSError,)
        )
    hint = "run `style-pipeline models pull diffusion` to fetch it"
    assert (resolved.used, resolved.fallback_reason) == ("tiny", f"{error}; {hint}")


def test_other_errors_propagate_under_auto():
    loaders = Calls(available=False, error=KeyError("bug in the loader"))
    with pytest.raises(KeyError, match="bug in the loader"):
        resolve_profile("CLIP", "auto", loaders.pretrained, loaders.tiny)
    assert loaders.log == ["pretrained"]


def test_unknown_profile_is_rejected():
    loaders = Calls(available=True)
    with pytest.raises(ValueError, match="unknown diffusion profile 'huge'"):
        resolve_profile("diffusion", "huge", loaders.pretrained, loaders.tiny)  # type: ignore[arg-type]
    assert loaders.log == []


def test_offline_sets_and_restores_the_hub_flags(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with offline():
        assert os.environ["HF_HUB_OFFLINE"] == os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert os.environ["HF_HUB_OFFLINE"] == "0" and "TRANSFORMERS_OFFLINE" not in os.environ


@pytest.fixture
def _downloads(monkeypatch):
    from style_pipeline.models import profiles

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    profiles.set_download_policy(True)
    yield
    profiles.set_download_policy(None)


@pytest.mark.parametrize("profile", ["auto", "pretrained"])
def test_allowed_download_then_loads_pretrained(profile, _downloads):
    loaders = Calls(available=False)

    def download() -> None:
        loaders.log.append("download")
        loaders.available = True

    resolved = resolve_profile("BLIP", profile, loaders.pretrained, loaders.tiny, download=download)
    assert (resolved.used, loaders.log) == ("pretrained", ["pretrained", "download", "pretrained"])


def test_a_failed_download_falls_back_with_both_reasons(_downloads):
    loaders = Calls(available=False)

    def download() -> None:
        raise RuntimeError("hub unreachable")

    with pytest.warns(RuntimeWarning, match="download failed: hub unreachable"):
        resolved = resolve_profile(
            "BLIP", "auto", loaders.pretrained, loaders.tiny, download=download
        )
    assert resolved.used == "tiny"
    assert (resolved.fallback_reason or "").endswith("models pull blip` to fetch it")


def test_downloads_are_off_by_default(monkeypatch):
    from style_pipeline.models import profiles

    monkeypatch.delenv(profiles.DOWNLOAD_ENV, raising=False)
    profiles.set_download_policy(None)
    loaders = Calls(available=False)
    with pytest.warns(RuntimeWarning, match="FELL BACK"):
        resolve_profile("BLIP", "auto", loaders.pretrained, loaders.tiny, download=lambda: 1 / 0)
    assert not profiles.downloads_allowed()
