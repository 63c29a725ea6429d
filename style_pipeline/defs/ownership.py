"""Who owns each asset group and how it is tagged: the one place, applied to every asset.

``group_options(group)`` gives the ``@dg.asset`` keyword arguments every asset of a group
shares (daily partitions, group, code version, owners, ``group``/``domain`` tags), so the
UI's owner and tag filters cover the whole graph and a new asset cannot forget them.
"""

from dataclasses import dataclass

from style_pipeline.defs.partitions import DAILY_PARTITIONS, AssetGroupOptions


@dataclass(frozen=True)
class Ownership:
    owners: tuple[str, ...]
    domain: str


OWNERSHIP: dict[str, Ownership] = {
    "ingest": Ownership(owners=("team:media-ingest",), domain="media"),
    "curation": Ownership(owners=("team:curation",), domain="curation"),
    "captioning": Ownership(owners=("team:ml-training",), domain="ml"),
    "training": Ownership(owners=("team:ml-training",), domain="ml"),
    "speech": Ownership(owners=("team:speech",), domain="speech"),
    "llm": Ownership(owners=("team:ml-training",), domain="ml"),
}


def group_tags(group: str) -> dict[str, str]:
    """The tags every asset of ``group`` carries (also on the group's job)."""
    return {"group": group, "domain": OWNERSHIP[group].domain}


def group_options(group: str, code_version: str = "1") -> AssetGroupOptions:
    """The shared ``@dg.asset`` options of ``group`` (raises KeyError for an unknown group)."""
    return AssetGroupOptions(
        partitions_def=DAILY_PARTITIONS,
        group_name=group,
        code_version=code_version,
        owners=list(OWNERSHIP[group].owners),
        tags=group_tags(group),
    )
