"""What a loaded model says about itself: its id, where it was read from, the profile asked
for and the one used, and why ``auto`` fell back to tiny (flat facts for asset metadata).

:class:`ProfileFacts` is the base of the loaded-model dataclasses (``LoadedBlip``,
``LoadedVlm``); :func:`pretrained_source` and :func:`with_fallback_note` are steps their
loaders share.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from style_pipeline.contracts.models import Profile
from style_pipeline.models.profiles import Resolved
from style_pipeline.paths import resolve_local


@dataclass(kw_only=True)
class ProfileFacts:
    """The model id, its source (a directory or a hub id), and what was asked for vs. what ran."""

    model_id: str
    source: str
    profile_requested: Profile
    profile_used: Literal["pretrained", "tiny"]
    fallback_reason: str | None

    def profile_metadata(self, prefix: str, **model: str) -> dict[str, str]:
        """Flat facts for asset metadata: ``{prefix}_model_id``, ``{prefix}_model_<key>`` for
        each of ``model``, the source, the profiles and the fallback reason ('' when none)."""
        return {
            f"{prefix}_model_id": self.model_id,
            **{f"{prefix}_model_{key}": value for key, value in model.items()},
            f"{prefix}_model_source": self.source,
            f"{prefix}_profile_requested": self.profile_requested,
            f"{prefix}_profile_used": self.profile_used,
            f"{prefix}_fallback_reason": self.fallback_reason or "",
        }


L = TypeVar("L", bound=ProfileFacts)


def pretrained_source(pretrained: str) -> tuple[str, bool]:
    """Where ``pretrained`` is read from: the local directory it names (resolved like any
    project path) or else the hub id as given; and whether it is a local directory."""
    local = resolve_local(pretrained)
    return (str(local), True) if local.is_dir() else (pretrained, False)


def with_fallback_note(resolved: Resolved[L], kind: str, pretrained: str) -> L:
    """The resolved model; when ``auto`` fell back to tiny, its ``fallback_reason`` names the
    pretrained ``kind`` model that was not there offline, and why."""
    if resolved.fallback_reason is None:
        return resolved.value
    reason = f"pretrained {kind} {pretrained} unavailable offline: {resolved.fallback_reason}"
    return replace(resolved.value, fallback_reason=reason)
