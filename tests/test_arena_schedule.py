"""The balanced battle schedule: quotas first, left/right and categories within ±1, deterministic per seed."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from simsa.arena.schedule import Pick, ScheduleCounts, next_battle, pair_key
from simsa.errors import InputError

CATS = ("coding", "writing", "reasoning")


def _run(entrants, quota, categories, steps, seed, abandon=0.0):
    """Simulate a server: each pick is voted (and counted) unless the rater abandons the battle."""
    rng = np.random.default_rng(seed)
    chaos = np.random.default_rng(seed + 1000)
    counts = ScheduleCounts()
    picks = []
    for _ in range(steps):
        pick = next_battle(entrants, quota, categories, counts, rng)
        if chaos.random() < abandon:
            continue
        counts.add(pick)
        picks.append(pick)
        totals = [counts.pair_total(a, b) for a, b in combinations(entrants, 2)]
        # no pair gets quota+1 (or any vote past the lowest pair's next) while another pair lags
        assert max(totals) - min(totals) <= 1
        for a, b in combinations(entrants, 2):
            key = pair_key(a, b)
            assert abs(counts.left_count(key, a) - counts.left_count(key, b)) <= 1
            per_cat = [counts.category_count(key, c) for c in categories]
            assert max(per_cat) - min(per_cat) <= 1
    return counts, picks


@pytest.mark.parametrize("seed", range(12))
def test_random_sequences_stay_balanced(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    entrants = [f"team-{i}" for i in rng.permutation(k)]
    quota = int(rng.integers(1, 9))
    cats = CATS[: int(rng.integers(1, 4))]
    pairs = k * (k - 1) // 2
    steps = pairs * quota + int(rng.integers(0, pairs * 3))
    counts, picks = _run(entrants, quota, cats, steps, seed, abandon=float(rng.uniform(0, 0.4)))
    report = counts.balance_report(entrants, quota, cats)
    assert report.max_left_right_difference <= 1
    assert report.max_category_spread <= 1
    assert report.max_vote_spread <= 1
    assert report.all_quotas_met == (len(picks) >= pairs * quota)
    assert all(p.left != p.right for p in picks)


def test_every_pair_reaches_quota_before_any_gets_more():
    entrants = ["a", "b", "c", "d", "e"]
    counts, _ = _run(entrants, 4, CATS, 10 * 4, seed=3, abandon=0.0)
    report = counts.balance_report(entrants, 4, CATS)
    assert report.all_quotas_met
    assert {p.votes for p in report.pairs} == {4}
    # the 41st vote is the first past quota
    extra = next_battle(entrants, 4, CATS, counts, np.random.default_rng(0))
    counts.add(extra)
    assert sorted(p.votes for p in counts.balance_report(entrants, 4, CATS).pairs) == [4] * 9 + [5]


def test_deterministic_given_seed_and_varies_with_it():
    entrants = ["a", "b", "c", "d"]
    _, p1 = _run(entrants, 3, CATS, 30, seed=7)
    _, p2 = _run(entrants, 3, CATS, 30, seed=7)
    _, p3 = _run(entrants, 3, CATS, 30, seed=8)
    assert p1 == p2
    assert p1 != p3


def test_left_goes_to_side_that_was_left_less_and_category_least_served():
    counts = ScheduleCounts.from_battles([("a", "b", "coding"), ("a", "b", "writing")])
    pick = next_battle(["a", "b"], 5, ["coding", "writing", "math"], counts, np.random.default_rng(1))
    assert (pick.left, pick.right, pick.category) == ("b", "a", "math")


def test_exclude_pairs_and_bad_configuration():
    counts = ScheduleCounts()
    rng = np.random.default_rng(0)
    for _ in range(20):
        pick = next_battle(["a", "b", "c"], 2, ["x"], counts, rng, exclude_pairs=[("b", "a")])
        assert pair_key(pick.left, pick.right) != ("a", "b")
        counts.add(pick)
    with pytest.raises(InputError, match="excluded"):
        next_battle(["a", "b"], 2, ["x"], counts, rng, exclude_pairs=[("a", "b")])
    with pytest.raises(InputError, match="at least two"):
        next_battle(["a"], 2, ["x"], counts, rng)
    with pytest.raises(InputError, match="at least 1"):
        next_battle(["a", "b"], 0, ["x"], counts, rng)
    with pytest.raises(InputError, match="categories"):
        next_battle(["a", "b"], 1, [], counts, rng)
    with pytest.raises(InputError, match="distinct"):
        next_battle(["a", "a"], 1, ["x"], counts, rng)
    with pytest.raises(InputError, match="two different"):
        counts.add(Pick("a", "a", "x"))


def test_report_to_dict_shows_missing_votes():
    counts = ScheduleCounts.from_battles([Pick("a", "b", "x"), Pick("b", "a", "y"), Pick("a", "c", "x")])
    data = counts.balance_report(["a", "b", "c"], 2, ["x", "y"]).to_dict()
    assert data["all_quotas_met"] is False
    by_pair = {(p["a"], p["b"]): p for p in data["pairs"]}
    assert by_pair[("a", "b")]["missing"] == 0 and by_pair[("a", "b")]["left_right_difference"] == 0
    assert by_pair[("a", "c")]["missing"] == 1 and by_pair[("b", "c")]["missing"] == 2
    assert by_pair[("a", "b")]["by_category"] == {"x": 1, "y": 1}
