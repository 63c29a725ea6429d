"""Selection under per-character share limits: max_share caps, min_share preference, counts.

Synthetic days (blobs of unit embeddings) with characters assigned by hand: no faces needed.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from style_pipeline.contracts.characters import CharacterSpec
from style_pipeline.contracts.curation import Overrides, SelectionConfig
from style_pipeline.curation.character_shares import most_frames, wanted_frames
from style_pipeline.curation.selection import select_frames
from style_pipeline_tests.curation.test_selection import _day

OBJECTIVES = ["facility_location", "mmr"]


def _spec(name: str, lo: float = 0.0, hi: float = 1.0) -> CharacterSpec:
    return CharacterSpec(name=name, min_share=lo, max_share=hi)


def _kept_of(result, characters, name: str) -> int:
    return sum(d.keep and name in c for d, c in zip(result.decisions, characters, strict=True))


def _alice_everywhere(n: int) -> list[list[str]]:
    """alice in every other frame, bob (with an unknown face) in every third odd one."""
    return [
        ["alice"] if i % 2 == 0 else (["bob", "unknown_0"] if i % 3 == 0 else []) for i in range(n)
    ]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_characters_without_limits_leave_the_selection_unchanged(objective):
    ids, q, x, labels, glosh = _day(1)
    cfg = SelectionConfig(budget=10, objective=objective)
    chars = _alice_everywhere(len(ids))
    plain = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh)
    counted = select_frames(
        ids, q, x, labels, cfg, outlier_scores=glosh, characters=chars,
        character_specs={"alice": _spec("alice"), "carol": _spec("carol")},
    )  # fmt: skip
    assert counted.decisions == plain.decisions and counted.notes == plain.notes
    assert plain.characters == {} and plain.unknown_groups == {}
    alice = counted.characters["alice"]
    assert (alice.frames, alice.kept) == (25, _kept_of(plain, chars, "alice"))
    assert alice.share == pytest.approx(alice.kept / 10)
    assert counted.characters["carol"].frames == 0  # listed: a reference, not seen today
    assert set(counted.unknown_groups) == {"unknown_0"}
    assert counted.character_notes == []


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_max_share_caps_a_character_and_says_why(objective):
    ids, q, x, labels, glosh = _day(1)
    chars = _alice_everywhere(len(ids))
    q = np.where([bool(c) and c[0] == "alice" for c in chars], q + 5, q)  # alice is the best
    cfg = SelectionConfig(budget=10, objective=objective)
    plain = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh, characters=chars)
    assert _kept_of(plain, chars, "alice") > 2  # the cap below binds
    specs = {"alice": _spec("alice", hi=0.2)}
    result = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh, characters=chars,
                           character_specs=specs)  # fmt: skip
    assert len(result.kept_ids) == 10
    assert _kept_of(result, chars, "alice") == 2
    refused = [d for d in result.decisions if d.code == "character_share"]
    assert refused and all(not d.keep for d in refused)
    assert all("alice at its cap, 2 of 10 frames (max_share 0.2)" in d.reason for d in refused)
    alice = result.characters["alice"]
    assert (alice.kept, alice.allowed, alice.met) == (2, 2, True)
    assert alice.dropped_for_share == len(refused)
    assert "character shares:" in result.notes[-1]
    kept_picks = sorted(d.pick for d in result.decisions if d.keep and d.pick is not None)
    assert kept_picks == list(range(1, 11))


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_min_share_prefers_frames_of_an_under_represented_character(objective):
    ids, q, x, labels, glosh = _day(2)
    n = len(ids)
    worst = [int(i) for i in np.argsort(q) if labels[i] >= 0][:4]  # low quality, not outliers
    chars = [["dora"] if i in worst else [] for i in range(n)]
    cfg = SelectionConfig(budget=10, objective=objective, per_cluster_k=None)
    plain = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh, characters=chars)
    assert _kept_of(plain, chars, "dora") < 3
    specs = {"dora": _spec("dora", lo=0.3)}
    result = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh, characters=chars,
                           character_specs=specs)  # fmt: skip
    assert _kept_of(result, chars, "dora") == 3 == result.characters["dora"].wanted
    assert len(result.kept_ids) == 10 and result.character_notes == []
    first = sorted((d for d in result.decisions if d.keep), key=lambda d: d.pick or 0)[:3]
    assert all("dora" in chars[ids.index(d.frame_id)] for d in first)  # picked first
    assert all(d.reason.endswith("; picked first for the min_share of dora") for d in first)


def test_a_minimum_the_candidates_cannot_meet_is_reported_not_raised():
    ids, q, x, labels, glosh = _day(3)
    chars = [["eve"] if i in (0, 1) else [] for i in range(len(ids))]
    ineligible = {ids[1]: "failed gate (blurry)"}
    specs = {"eve": _spec("eve", lo=0.5), "frank": _spec("frank", lo=0.1)}
    cfg = SelectionConfig(budget=8, outlier_policy="keep")
    result = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh, characters=chars,
                           character_specs=specs, ineligible=ineligible)  # fmt: skip
    assert len(result.kept_ids) == 8 and _kept_of(result, chars, "eve") == 1
    eve, frank = result.characters["eve"], result.characters["frank"]
    assert not eve.met and not frank.met and eve.wanted == 4
    assert result.character_notes == [
        "eve: 1 kept frames, min_share 0.5 wants 4: only 1 eligible frames show eve today",
        "frank: 0 kept frames, min_share 0.1 wants 1: no eligible frames show frank today",
    ]


def test_a_frame_counts_for_every_character_in_it():
    ids, q, x, labels, glosh = _day(4)
    n = len(ids)
    chars = [["alice", "bob"] if i % 2 == 0 else [] for i in range(n)]
    q = np.where(np.arange(n) % 2 == 0, q + 5, q)
    cfg = SelectionConfig(budget=10, per_cluster_k=None)
    specs = {"bob": _spec("bob", hi=0.3)}  # alice has no cap, but shares bob's frames
    result = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh, characters=chars,
                           character_specs=specs)  # fmt: skip
    assert _kept_of(result, chars, "bob") == 3 == _kept_of(result, chars, "alice")
    assert result.characters["alice"].kept == 3 and result.characters["alice"].allowed is None


def test_max_share_holds_when_fewer_frames_than_the_budget_are_kept():
    ids, q, x, labels, glosh = _day(5)
    n = len(ids)
    chars = [["gus"] if i % 4 else [] for i in range(n)]  # three quarters of the day
    cfg = SelectionConfig(budget=500, per_cluster_k=None, outlier_policy="keep")
    specs = {"gus": _spec("gus", hi=0.4)}
    result = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh, characters=chars,
                           character_specs=specs)  # fmt: skip
    kept = len(result.kept_ids)
    gus = _kept_of(result, chars, "gus")
    assert kept < n and gus == most_frames(0.4, kept) and gus <= 0.4 * kept
    trimmed = [d for d in result.decisions if "fewer frames than the budget" in d.reason]
    assert trimmed and all(d.code == "character_share" for d in trimmed)
    others = sum(1 for c in chars if not c)
    assert kept - gus == others  # every frame without gus is kept: the pool ran out


def test_lock_ins_are_kept_even_over_a_cap_and_reported():
    ids, q, x, labels, glosh = _day(6)
    chars = [["hal"] if i < 5 else [] for i in range(len(ids))]
    overrides = Overrides(lock_in=ids[:4])
    specs = {"hal": _spec("hal", hi=0.2)}
    cfg = SelectionConfig(budget=10)
    result = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh, characters=chars,
                           character_specs=specs, overrides=overrides)  # fmt: skip
    by_id = {d.frame_id: d for d in result.decisions}
    assert all(by_id[f].code == "locked_in" for f in ids[:4])
    assert by_id[ids[4]].code == "character_share"
    assert any("hal: 4 lock-ins exceed max_share 0.2 (2 of 10 frames)" in n for n in result.notes)
    assert any(n.startswith("hal: 4 kept frames, over max_share 0.2") for n in
               result.character_notes)  # fmt: skip


def test_characters_must_align_with_the_frames():
    ids, q, x, labels, _ = _day(7)
    with pytest.raises(ValueError, match="characters has 2 rows"):
        select_frames(ids, q, x, labels, characters=[[], []])


@pytest.mark.parametrize(
    ("seed", "objective"), list(itertools.product(range(8), ["facility_location", "mmr"]))
)
def test_share_limits_hold_on_random_days(seed, objective):
    """max_share always holds (no lock-ins); a missed min_share is always explained."""
    rng = np.random.default_rng(seed)
    ids, q, x, labels, glosh = _day(seed % 4, n_per=int(rng.integers(6, 16)))
    n = len(ids)
    names = ["ann", "ben", "cat"]
    chars = [[c for c in names if rng.random() < p] for p in rng.uniform(0.05, 0.6, n)]
    specs = {}
    for c in names:
        lo = float(rng.choice([0.0, 0.1, 0.3]))
        specs[c] = _spec(c, lo, float(rng.choice([lo, 0.3, 0.5, 1.0])) if lo < 0.3 else 1.0)
    budget = int(rng.integers(1, n + 10))
    cfg = SelectionConfig(budget=budget, objective=objective,
                          per_cluster_k=int(rng.integers(2, 8)))  # fmt: skip
    result = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh, characters=chars,
                           character_specs=specs)  # fmt: skip
    kept = len(result.kept_ids)
    assert kept <= budget
    for c, spec in specs.items():
        count = _kept_of(result, chars, c)
        assert count == result.characters[c].kept
        assert count <= most_frames(spec.max_share, kept), (c, spec, count, kept)
        if count < wanted_frames(spec, kept):
            assert any(note.startswith(f"{c}: ") for note in result.character_notes)
    again = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh, characters=chars,
                          character_specs=specs)  # fmt: skip
    assert again.decisions == result.decisions  # deterministic
