"""Vote-drop robustness and rigging simulation, every reported number checked here by an independent refit."""

from __future__ import annotations

import numpy as np
import pytest

from simsa.arena.bt import fit
from simsa.arena.robustness import influence_on_gap, rigging, vote_drop
from simsa.arena.votes import OUTCOMES, Votes
from simsa.errors import InputError

CLOSE = np.array([1.2, 0.8, 0.31, 0.29, 0.0, -0.5, -1.0, -1.1])  # 3rd and 4th nearly equal: the cut at 3 is close
CLEAR = np.array([2.0, 1.5, 1.0, -0.5, -1.0, -1.5, -2.0, -2.5])  # a wide gap after the 3rd


def _simulate(theta: np.ndarray, n: int, seed: int) -> Votes:
    rng = np.random.default_rng(seed)
    k = len(theta)
    a = rng.integers(k, size=n)
    b = (a + rng.integers(1, k, size=n)) % k
    p = 1.0 / (1.0 + np.exp(theta[b] - theta[a]))
    kind = np.where(rng.random(n) < 0.1, 2, np.where(rng.random(n) < p, 0, 1)).astype(np.int8)
    return Votes(tuple(f"m{i}" for i in range(k)), a, b, kind)


def _top(votes: Votes, cut: int) -> set[str]:
    theta = fit(votes).theta
    return {votes.models[i] for i in np.argsort(-theta, kind="stable")[:cut]}


def _rows(votes: Votes) -> list[tuple[str, str, str]]:
    return [(votes.models[a], votes.models[b], OUTCOMES[k]) for a, b, k in zip(votes.a, votes.b, votes.kind,
                                                                                strict=True)]


@pytest.fixture(scope="module")
def close_votes() -> Votes:
    return _simulate(CLOSE, 4000, seed=1)


@pytest.fixture(scope="module")
def clear_votes() -> Votes:
    return _simulate(CLEAR, 4000, seed=1)


def test_linearised_influence_tracks_the_refit(close_votes):
    base = fit(close_votes).theta
    order = np.argsort(-base)
    inside, outside = int(order[2]), int(order[3])
    delta = influence_on_gap(close_votes, base, inside, outside)
    picks = np.r_[np.argsort(delta)[:5], np.argsort(delta)[-5:]]
    gap = base[inside] - base[outside]
    for i in picks:
        keep = np.ones(len(close_votes), dtype=bool)
        keep[i] = False
        theta = fit(close_votes.subset(keep)).theta
        actual = (theta[inside] - theta[outside]) - gap
        assert actual == pytest.approx(delta[i], rel=0.05, abs=1e-5)


def test_close_race_flips_after_few_dropped_votes_and_refit_confirms(close_votes):
    result = vote_drop(close_votes, 3)
    before = _top(close_votes, 3)
    assert set(result.before) == before
    assert result.votes_needed is not None and result.votes_needed <= 0.01 * len(close_votes)
    assert result.verified and result.warning
    assert len(result.dropped) == result.votes_needed == len(set(result.dropped))
    assert result.fraction == pytest.approx(result.votes_needed / len(close_votes))
    # independent check: refit without exactly the reported votes
    keep = np.setdiff1d(np.arange(len(close_votes)), np.array(result.dropped))
    after = _top(close_votes.subset(keep), 3)
    assert after != before and after == set(result.after)
    # the same number of votes chosen at random changes nothing: the chosen votes matter
    rng = np.random.default_rng(0)
    for _ in range(5):
        random_keep = np.sort(rng.choice(len(close_votes), len(close_votes) - result.votes_needed, replace=False))
        assert _top(close_votes.subset(random_keep), 3) == before
    data = result.to_dict()
    assert data["votes_needed"] == result.votes_needed and data["boundary"] == list(result.boundary)


def test_clear_race_is_robust_to_dropping(clear_votes):
    result = vote_drop(clear_votes, 3, max_fraction=0.05)
    assert result.votes_needed is None and result.dropped == () and not result.warning
    assert set(result.before) == {"m0", "m1", "m2"}


def test_top_rank_target(close_votes):
    result = vote_drop(close_votes, 3, target="top")
    assert result.cut == 1 and result.before == ("m0",)
    assert result.verified
    keep = np.setdiff1d(np.arange(len(close_votes)), np.array(result.dropped))
    assert _top(close_votes.subset(keep), 1) == set(result.after) != {"m0"}


def test_rigging_close_race_and_refit_confirms(close_votes):
    result = rigging(close_votes, 3)
    before = _top(close_votes, 3)
    by = {s.strategy: s for s in result.strategies}
    target, omni = by["target"], by["omnipresent"]
    assert target.verified and omni.verified
    assert result.votes_needed == min(target.votes_needed, omni.votes_needed)
    assert target.votes_needed <= 0.01 * len(close_votes) and result.warning
    assert omni.votes_needed >= target.votes_needed  # it spends votes on battles it cannot use
    for strategy in (target, omni):
        rows = _rows(close_votes) + [tuple(r) for r in strategy.injected]
        assert len(strategy.injected) == strategy.votes_needed
        rigged = Votes.from_rows(rows, models=close_votes.models)
        assert _top(rigged, 3) != before and _top(rigged, 3) == set(strategy.after)
        one_less = Votes.from_rows(rows[:-1], models=close_votes.models)
        assert _top(one_less, 3) == before  # the number is the smallest for this sequence of votes
    assert all(r[0] == target.adversary and r[2] == "model_a" for r in target.injected)
    omni_votes = [r for r in omni.injected if omni.adversary in r[:2]]
    assert all((r[2] == "model_a") == (r[0] == omni.adversary) for r in omni_votes)
    assert result.to_dict()["strategies"][0]["strategy"] == "target"


def test_rigging_clear_race_needs_many_votes(clear_votes):
    result = rigging(clear_votes, 3, strategies=("target",))
    assert result.votes_needed is not None and result.fraction > 0.03 and not result.warning
    capped = rigging(clear_votes, 3, max_votes=40)
    assert capped.votes_needed is None and all(not s.verified for s in capped.strategies)


def test_input_errors(close_votes):
    with pytest.raises(InputError, match="cut"):
        vote_drop(close_votes, 8)
    with pytest.raises(InputError, match="target"):
        vote_drop(close_votes, 3, target="bottom")
    with pytest.raises(InputError, match="max_fraction"):
        vote_drop(close_votes, 3, max_fraction=0)
    with pytest.raises(InputError, match="strategies"):
        rigging(close_votes, 3, strategies=("bribe",))
    with pytest.raises(InputError, match="max_votes"):
        rigging(close_votes, 3, max_votes=0)
