"""One ``pretrained | tiny | auto`` resolver shared by every model kind (CLIP, BLIP, diffusion).

A kind hands :func:`resolve_profile` two callables: ``pretrained()`` loads from local files
only (it never downloads) and raises :class:`PretrainedUnavailable` saying why when it
cannot; ``tiny()`` builds the random-init model once and reuses it after. The rules:

- ``tiny`` builds or reuses the tiny model and never calls ``pretrained``;
- ``pretrained`` calls ``pretrained`` and never falls back: its error reaches the caller;
- ``auto`` is pretrained when that loads, else tiny, with the reason logged and warned.

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
ProfileUsed = Literal["pretrained", "tiny"]


class PretrainedUnavailable(RuntimeError):
    """The requested pretrained weights are not on this machine (and nothing downloads)."""


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
) -> Resolved[T]:
    """Obtain a ``kind`` model (e.g. ``"CLIP"``) for ``profile``; see the module docstring.

    ``fallback_on`` names the errors of ``pretrained()`` that mean "not loadable here" and
    so send ``auto`` to tiny; any other error propagates, as do all errors under the
    ``pretrained`` profile. An unknown ``profile`` raises ``ValueError``.
    """
    if profile == "tiny":
        return Resolved(tiny(), profile, "tiny")
    if profile == "pretrained":
        return Resolved(pretrained(), profile, "pretrained")
    if profile != "auto":
        raise ValueError(f"unknown {kind} profile {profile!r}: pretrained, tiny or auto")
    try:
        return Resolved(pretrained(), profile, "pretrained")
    except fallback_on as err:
        reason = str(err)
    message = f"{kind} profile auto FELL BACK TO TINY random-init model: {reason}"
    log.warning(message)
    # stacklevel 3: point at whoever called the kind's loader (load_model, load_blip ...)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return Resolved(tiny(), profile, "tiny", reason)
