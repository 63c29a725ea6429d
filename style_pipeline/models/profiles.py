"""One ``pretrained | tiny | auto`` resolver shared by every model kind (CLIP, BLIP, diffusion).

A kind hands :func:`resolve_profile` two callables: ``pretrained()`` loads from local files
only (it never downloads) and raises :class:`PretrainedUnavailable` saying why when it
cannot; ``tiny()`` builds the random-init model once and reuses it after. The rules:

- ``tiny`` builds or reuses the tiny model and never calls ``pretrained``;
- ``pretrained`` calls ``pretrained`` and never falls back: its error reaches the caller;
- ``auto`` is pretrained when that loads, else tiny, with the reason logged and warned;
  the reason ends with the command that fetches the weights
  (``style-pipeline models pull <name>``).

Downloads: when ``models.allow_download`` is on (:func:`set_download_policy`, or the
``STYLE_PIPELINE_MODELS__ALLOW_DOWNLOAD`` variable a process inherits) and the kind hands a
``download`` callable, ``auto`` and ``pretrained`` download the missing weights and load
them instead of falling back or failing, unless ``HF_HUB_OFFLINE`` is set.

The answer, :class:`Resolved`, carries the value, which profile produced it and the
fallback reason, for each kind to record in its own metadata.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from style_pipeline.contracts.models import Profile

log = logging.getLogger(__name__)

T = TypeVar("T")
DOWNLOAD_ENV = "STYLE_PIPELINE_MODELS__ALLOW_DOWNLOAD"
_OFFLINE_KEYS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE = {"1", "true", "yes", "on"}
_download_policy: bool | None = None
ProfileUsed = Literal["pretrained", "tiny"]


class PretrainedUnavailable(RuntimeError):
    """The requested pretrained weights are not on this machine (and nothing downloads)."""


def pull_hint(name: str) -> str:
    """The sentence every fallback message ends with."""
    return f"run `style-pipeline models pull {name}` to fetch it"


def set_download_policy(allow: bool | None) -> None:
    """Set ``models.allow_download`` for this process (None: read the environment again).

    Also exported to the environment so that subprocesses (Dagster steps, trainers) inherit it.
    """
    global _download_policy
    _download_policy = allow
    if allow is None:
        return
    os.environ[DOWNLOAD_ENV] = "true" if allow else "false"


def downloads_allowed() -> bool:
    """``models.allow_download``: the process setting, else the environment, else off."""
    if _download_policy is not None:
        return _download_policy
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in _TRUE


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` set now (or when huggingface_hub loaded)."""
    if any(os.environ.get(k, "").strip().lower() in _TRUE for k in _OFFLINE_KEYS):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - a hard dependency
        return False
    return bool(constants.HF_HUB_OFFLINE) and not any(k in os.environ for k in _OFFLINE_KEYS)


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Set ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` for the duration of a load."""
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class Resolved(Generic[T]):
    """What a profile resolved to: the model (or its folder), and how it was obtained."""

    value: T
    requested: Profile
    used: ProfileUsed
    fallback_reason: str | None = None  # set only when ``auto`` fell back to tiny


def resolve_profile(
    kind: str,
    profile: Profile,
    pretrained: Callable[[], T],
    tiny: Callable[[], T],
    *,
    fallback_on: tuple[type[Exception], ...] = (PretrainedUnavailable,),
    download: Callable[[], object] | None = None,
    pull_name: str | None = None,
) -> Resolved[T]:
    """Obtain a ``kind`` model (e.g. ``"CLIP"``) for ``profile``; see the module docstring.

    ``fallback_on`` names the errors of ``pretrained()`` that mean "not loadable here" and
    so send ``auto`` to tiny; any other error propagates, as do all errors under the
    ``pretrained`` profile. An unknown ``profile`` raises ``ValueError``. ``download``
    fetches the pretrained weights (used only when downloads are allowed); ``pull_name``
    is the ``models pull`` name the fallback message names (default ``kind`` lowercased).
    """
    name = pull_name or kind.lower()
    if profile == "tiny":
        return Resolved(tiny(), profile, "tiny")
    if profile not in ("pretrained", "auto"):
        raise ValueError(f"unknown {kind} profile {profile!r}: pretrained, tiny or auto")
    try:
        return Resolved(pretrained(), profile, "pretrained")
    except fallback_on as err:
        if profile == "pretrained" and not _may_download(download):
            raise
        reason = str(err)
    if _may_download(download):
        assert download is not None
        log.warning("%s pretrained weights missing (%s): downloading (models.allow_download)",
                    kind, reason)  # fmt: skip
        try:
            download()
            return Resolved(pretrained(), profile, "pretrained")
        except Exception as err:  # noqa: BLE001 - any download failure means: fall back
            if profile == "pretrained":
                raise
            reason = f"{reason}; the download failed: {err}"
    elif download is not None and downloads_allowed():
        reason = f"{reason}; downloads are allowed but HF_HUB_OFFLINE is set"
    reason = f"{reason}; {pull_hint(name)}"
    message = f"{kind} profile auto FELL BACK TO TINY random-init model: {reason}"
    log.warning(message)
    # stacklevel 3: point at whoever called the kind's loader (load_model, load_blip ...)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return Resolved(tiny(), profile, "tiny", reason)


def _may_download(download: Callable[[], object] | None) -> bool:
    return download is not None and downloads_allowed() and not hub_offline()
