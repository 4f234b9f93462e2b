"""The arena under load on PostgreSQL (benchmarks/arena_load.py's functions, run small enough for the suite): raters
battling at once through the API of a real server lose and duplicate no vote, the schedule stays balanced, and the
audit log still verifies. The full 100 raters × 20 votes is `benchmarks/arena_load.py --db URL`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "arena_load.py"
RATERS = 50
VOTES = 8  # every rater's battles 1–8: no attention check (every 10th), all 400 votes are on entrants


def _bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("arena_load", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("arena_load", module)
    spec.loader.exec_module(module)
    return module


arena_load = _bench()


@pytest.mark.postgres
def test_raters_at_once_lose_and_duplicate_no_vote(pg_database_url: str) -> None:
    result = arena_load.run_arena_load(pg_database_url, raters=RATERS, votes_each=VOTES)
    load, check = result["load"], result["check"]
    print(f"\narena load: {RATERS} raters × {VOTES} votes in {load['seconds']} s = {load['votes_per_s']} votes/s, "
          f"{load['requests_per_s']} requests/s; latency {load['latency_ms']}")
    assert load["errors"] == 0, load["error_samples"]
    assert load["acknowledged"] == RATERS * VOTES
    assert check["stored"] == RATERS * VOTES and check["battles"] == RATERS * VOTES
    assert check["unvoted_battles"] == 0 and check["gold"] == 0
    assert check["per_rater"] == {VOTES: RATERS}
    assert check["lost"] == [] and check["duplicated"] == [] and check["unacknowledged_stored"] == []
    assert sum(check["pair_votes"].values()) == RATERS * VOTES
    assert check["max_vote_spread"] <= 1, check["pair_votes"]
    assert check["max_left_right_difference"] <= 1, check["left_right"]
    assert check["audit_ok"], check["audit_problems"]
    state = result["state"]  # the secretariat's view over the API agrees with the tables
    assert state["pairs"] == check["pair_votes"] and state["pending"] == 0
    assert state["votes"]["counted"] == RATERS * VOTES and state["votes"]["total"] == RATERS * VOTES
    assert arena_load.ok(result, RATERS, VOTES)
