"""`simsa arena rate VOTES.csv` in-process: table and JSON output, style control, sandwich intervals equal to
arena-rank's, anchors, and bad input as exit code 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import cli_inproc
from cli_inproc import Ran

DATA = Path(__file__).parent / "data" / "arena"
VOTES = str(DATA / "reference_votes.csv")
REF = json.loads((DATA / "reference_ratings.json").read_text())


def run(tmp_path: Path, *args: str) -> Ran:
    """The real `simsa arena rate`."""
    return cli_inproc.run("arena", "rate", *args, db=str(tmp_path / "simsa.db"))


def test_table(tmp_path: Path) -> None:
    ran = run(tmp_path, VOTES, "--bootstrap", "100", "--seed", "1")
    assert ran.code == 0, ran.stderr
    out = ran.stdout
    for header in ("rank", "model", "rating", "95 % interval", "rank interval", "votes"):
        assert header in out
    lines = [line for line in out.splitlines() if "hotel" in line]
    assert lines and "1125.4" in lines[0]  # hotel is first, at arena-rank's rating
    assert "3,000 votes" in out and "bootstrap (100 rounds)" in out


def test_json_sandwich_equals_arena_rank(tmp_path: Path) -> None:
    out = run(tmp_path, VOTES, "--intervals", "sandwich", "--json").json()
    ref = REF["plain"]
    assert out["method"] == "sandwich" and out["rounds"] is None and out["n_votes"] == 3000
    by_model = {r["model"]: r for r in out["ratings"]}
    for i, model in enumerate(ref["models"]):
        for key in ("rating", "lower", "upper"):
            assert by_model[model][key] == pytest.approx(ref[key][i], abs=1e-6)
    ranks = [r["rank"] for r in out["ratings"]]
    assert ranks == sorted(ranks) and ranks[0] == 1


def test_style_json(tmp_path: Path) -> None:
    out = run(tmp_path, VOTES, "--style", "--style-reg", "1.0", "--intervals", "sandwich", "--json").json()
    assert out["style"] is True and out["style_reg"] == 1.0
    assert list(out["coef"]) == ["length", "headers", "lists", "bold"]
    assert [out["coef"][c] for c in out["coef"]] == pytest.approx(REF["style"]["coef"], abs=1e-6)
    by_model = {r["model"]: r for r in out["ratings"]}
    assert by_model["hotel"]["rating"] == pytest.approx(REF["style"]["rating"][7], abs=1e-6)
    table = run(tmp_path, VOTES, "--style", "--bootstrap", "20")
    assert table.code == 0 and "Style-controlled" in table.stdout and "style coefficients" in table.stdout


def test_bootstrap_json_is_seeded_and_anchored(tmp_path: Path) -> None:
    one = run(tmp_path, VOTES, "--bootstrap", "200", "--seed", "9", "--anchor", "alpha=1200", "--json").json()
    two = run(tmp_path, VOTES, "--bootstrap", "200", "--seed", "9", "--anchor", "alpha=1200", "--json").json()
    assert one == two
    assert one["rounds"] == 200 and one["anchor"] == {"model": "alpha", "rating": 1200.0}
    alpha = next(r for r in one["ratings"] if r["model"] == "alpha")
    assert alpha["rating"] == pytest.approx(1200.0)
    for r in one["ratings"]:
        assert r["lower"] < r["rating"] < r["upper"] and r["rank_lower"] <= r["rank"] <= r["rank_upper"]


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "votes.csv"
    bad.write_text("model_a,model_b,winner\nA,B,model_a\nB,A,bogus\n", encoding="utf-8")
    ran = run(tmp_path, str(bad))
    assert ran.code == 2 and "votes.csv:3: unknown winner 'bogus'" in ran.stderr
    assert ran.stderr.count("\n") == 1
    plain = tmp_path / "plain.csv"
    plain.write_text("model_a,model_b,winner\nA,B,model_a\nB,A,model_a\n", encoding="utf-8")
    ran = run(tmp_path, str(plain), "--style")
    assert ran.code == 2 and "style columns" in ran.stderr
    ran = run(tmp_path, str(plain), "--anchor", "A")
    assert ran.code == 2 and "MODEL=RATING" in ran.stderr
    ran = run(tmp_path, str(plain), "--anchor", "Z=1000", "--intervals", "sandwich")
    assert ran.code == 2 and "anchor model 'Z' has no votes" in ran.stderr
    ran = run(tmp_path, str(tmp_path / "missing.csv"))
    assert ran.code == 2 and "missing.csv" in ran.stderr
    perfect = tmp_path / "perfect.csv"
    perfect.write_text("model_a,model_b,winner\nA,B,model_a\nA,B,model_a\n", encoding="utf-8")
    ran = run(tmp_path, str(perfect))
    assert ran.code == 2 and "model 'A' won every vote" in ran.stderr


def test_robustness_beside_the_ranking(tmp_path: Path) -> None:
    """`--cut 3`: how many votes dropped or injected change the top 3 and the top rank, each refit-verified; the
    dropped votes really flip the top rank when the ranking is fitted again without them."""
    from simsa.arena import fit, read_votes_csv

    out = run(tmp_path, VOTES, "--intervals", "sandwich", "--cut", "3", "--json").json()
    rob = out["robustness"]
    assert rob["cut"] == 3 and rob["votes"] == out["n_votes"]
    top = rob["drop_top"]
    assert top["verified"] is True and 0 < top["votes_needed"] == len(top["dropped"])
    votes = read_votes_csv(VOTES)
    keep = np.ones(len(votes), dtype=bool)
    keep[np.asarray(top["dropped"])] = False
    before, after = fit(votes).theta, fit(votes.subset(keep)).theta
    assert np.argmax(before) != np.argmax(after)
    assert rob["rigging"]["votes_needed"] > 0 and "drop_cut" in rob
    assert "robustness" not in run(tmp_path, VOTES, "--intervals", "sandwich", "--cut", "0", "--json").json()
    table = run(tmp_path, VOTES, "--intervals", "sandwich", "--cut", "3")
    assert "changes the top rank" in table.stdout and "verified by refitting: yes" in table.stdout
