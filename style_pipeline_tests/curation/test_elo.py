"""Elo math, round-robin schedules and the day's pair budget (pure functions)."""

from __future__ import annotations

import itertools

import pytest

from style_pipeline.curation.elo import (
    Ratings,
    elo_update,
    expected_score,
    interleave,
    round_robin,
    top_by,
)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [(1500, 1500, 0.5), (1900, 1500, 10 / 11), (1500, 1900, 1 / 11), (1600, 1200, 10 / 11)],
)
def test_expected_score(a, b, expected):
    assert expected_score(a, b) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("a", "b", "a_won", "k", "new_a"),
    [
        (1500, 1500, True, 32, 1516),
        (1500, 1500, False, 32, 1484),
        (1900, 1500, True, 32, 1900 + 32 / 11),
    ],
)
def test_elo_update_moves_ratings_and_keeps_their_sum(a, b, a_won, k, new_a):
    ra, rb = elo_update(a, b, a_won, k)
    assert ra == pytest.approx(new_a)
    assert ra + rb == pytest.approx(a + b)


def test_an_upset_moves_more_than_an_expected_win():
    favourite_wins = elo_update(1700, 1500, True, 32)[0] - 1700
    upset = elo_update(1500, 1700, True, 32)[0] - 1500
    assert upset > favourite_wins > 0


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8])
def test_round_robin_meets_every_pair_once(n):
    ids = [f"f{i}" for i in range(n)]
    pairs = round_robin(ids)
    assert len(pairs) == n * (n - 1) // 2
    assert {frozenset(p) for p in pairs} == {frozenset(p) for p in itertools.combinations(ids, 2)}


def test_round_robin_plays_everyone_before_anyone_twice():
    first_round = round_robin(["a", "b", "c", "d"])[:2]
    assert sorted(x for p in first_round for x in p) == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("n", "cap", "expected"), [(4, 6, 6), (4, 3, 3), (4, 0, 0), (1, 5, 0), (0, 5, 0)]
)
def test_round_robin_respects_the_pair_cap(n, cap, expected):
    assert len(round_robin([f"f{i}" for i in range(n)], cap)) == expected


def test_top_by_breaks_ties_by_id():
    assert top_by({"b": 0.5, "a": 0.5, "c": 0.9, "d": 0.1}, 3) == ["c", "a", "b"]
    assert top_by({"a": 1.0}, 0) == []


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        (10, ["a1", "b1", "c1", "a2", "c2", "a3"]),
        (4, ["a1", "b1", "c1", "a2"]),
        (2, ["a1", "b1"]),
        (0, []),
    ],
)
def test_interleave_serves_every_schedule_round_by_round(budget, expected):
    assert interleave([["a1", "a2", "a3"], ["b1"], ["c1", "c2"]], budget) == expected


def test_ratings_record_and_standings():
    ratings = Ratings(start=1500, k=32)
    ratings.add(["a", "b", "c"])
    ratings.record("a", "b", "a")
    ratings.record("a", "c", "a")
    ratings.record("b", "c", "c")
    assert ratings.wins == {"a": 2, "b": 0, "c": 1}
    assert ratings.losses == {"a": 0, "b": 2, "c": 1}
    assert ratings.standings({}) == ["a", "c", "b"]
    assert sum(ratings.elo.values()) == pytest.approx(4500)


def test_standings_tie_break_by_prelim_then_id():
    ratings = Ratings(start=1500, k=32)
    ratings.add(["x", "y", "z"])
    assert ratings.standings({"z": 0.9, "x": 0.1, "y": 0.1}) == ["z", "x", "y"]


def test_ratings_refuse_a_winner_outside_the_pair():
    with pytest.raises(ValueError, match="neither"):
        Ratings(start=1500, k=32).record("a", "b", "c")
