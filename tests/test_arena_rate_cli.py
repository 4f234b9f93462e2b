"""`simsa arena rate VOTES.csv` in-process: table and JSON output, style control, sandwich intervals equal to
arena-rank's, anchors, and bad input as exit code 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import cli_inproc
from cli_inproc import Ran
from simsa.cli import arena_rate_cmd
from simsa.cli import main as cli_main
from simsa.errors import SimsaError

DATA = Path(__file__).parent / "data" / "arena"
VOTES = str(DATA / "reference_votes.csv")
REF = json.loads((DATA / "reference_ratings.json").read_text())


def _registered() -> bool:
    return any(group.name == "arena" for group in cli_main.app.registered_groups)


def run(tmp_path: Path, *args: str) -> Ran:
    """The real `simsa arena rate`; until main.py mounts `simsa arena`, the same command in a one-command app."""
    if _registered():
        return cli_inproc.run("arena", "rate", *args, db=str(tmp_path / "simsa.db"))
    app = typer.Typer()
    app.command("rate")(arena_rate_cmd.rate)
    app.command("other")(lambda: None)  # two commands, so the group keeps its command name as the real one does
    result = CliRunner().invoke(app, ["rate", *args], env={"NO_COLOR": "1"})
    if isinstance(result.exception, SimsaError):
        return Ran(result.exception.exit_code, result.stdout, f"error: {result.exception}\n")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


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
