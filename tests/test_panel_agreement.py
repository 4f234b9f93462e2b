"""Agreement statistics of the expert panel against a published worked example and the reference libraries
(`krippendorff`, `pingouin`: test dependencies only), the rater severities, the long-table reader and the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pingouin
import pytest
import typer
from typer.testing import CliRunner

from simsa.cli import panel_cmd
from simsa.errors import InputError
from simsa.panel import agreement
from simsa.panel.agreement import (
    LEVELS,
    agreement_report,
    alpha_interval,
    coincidence_matrix,
    deviation_from_panel,
    icc,
    icc_unavailable,
    krippendorff_alpha,
    read_long_table,
    severities,
)

N = math.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers, 12 units, missing data
PAPER = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
])
PAPER_ALPHA = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}


# --------------------------------------------------------------------------- Krippendorff's alpha


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_matches_the_published_worked_example(level):
    assert round(krippendorff_alpha(PAPER, level), 3) == PAPER_ALPHA[level]


def test_coincidence_matrix_of_the_worked_example():
    found = coincidence_matrix(PAPER)
    third = 1 / 3
    published = np.array([
        [7, 4 * third, third, third, 0],
        [4 * third, 10, 4 * third, third, 0],
        [third, 4 * third, 8, third, 0],
        [third, third, third, 4, 0],
        [0, 0, 0, 0, 3],
    ])
    assert found.domain == (1.0, 2.0, 3.0, 4.0, 5.0)
    np.testing.assert_allclose(found.matrix, published, atol=1e-12)
    np.testing.assert_allclose(found.margins, [9, 13, 10, 5, 3], atol=1e-12)  # 40 pairable values; unit 12 left out


def random_panel(seed: int) -> np.ndarray:
    """A panel of 2–9 raters × 4–40 items with 20–40 % of the cells missing; integer 1–5 or continuous ratings."""
    rng = np.random.default_rng(seed)
    raters, items = int(rng.integers(2, 10)), int(rng.integers(4, 41))
    quality = rng.normal(3, 1, items)
    ratings = quality[None, :] + rng.normal(0, rng.uniform(0.3, 1.5), (raters, items))
    # integers on a 1–5 scale, or continuous values ≥ 0 (the ratio level needs a true zero)
    ratings = np.clip(np.rint(ratings), 1, 5) if seed % 2 == 0 else np.abs(ratings)
    ratings[rng.random(ratings.shape) < rng.uniform(0.2, 0.4)] = np.nan
    return ratings


@pytest.mark.parametrize("seed", range(24))
def test_alpha_matches_the_krippendorff_package(seed):
    panel = random_panel(seed)
    assert 0.15 < np.isnan(panel).mean() < 0.5
    for level in LEVELS:
        mine = krippendorff_alpha(panel, level)
        reference = krippendorff.alpha(reliability_data=panel, level_of_measurement=level)
        assert math.isfinite(mine)
        assert mine == pytest.approx(reference, abs=1e-9), level


def _alpha_from_coincidences(values: np.ndarray, level: str) -> float:
    """α straight from the paper's definitions: the coincidence matrix and the δ² of each level."""
    found = coincidence_matrix(values)
    c, k = np.meshgrid(found.domain, found.domain, indexing="ij")
    margins = np.array(found.margins)
    if level == "nominal":
        delta = (c != k).astype(float)
    elif level == "interval":
        delta = (c - k) ** 2
    elif level == "ratio":
        delta = ((c - k) / (c + k)) ** 2
    else:
        rank = np.arange(margins.size)
        lo, hi = np.minimum.outer(rank, rank), np.maximum.outer(rank, rank)
        between = np.array([[margins[a:b + 1].sum() for a, b in zip(r1, r2, strict=True)]
                            for r1, r2 in zip(lo, hi, strict=True)])
        delta = (between - (margins[:, None] + margins[None, :]) / 2) ** 2
    n = margins.sum()
    return 1 - (n - 1) * np.sum(found.matrix * delta) / np.sum(np.outer(margins, margins) * delta)


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_closed_forms_equal_the_coincidence_matrix_definitions(seed):
    panel = random_panel(seed)
    for level in LEVELS:
        assert krippendorff_alpha(panel, level) == pytest.approx(_alpha_from_coincidences(panel, level), abs=1e-12)


def test_alpha_is_nan_when_undefined_and_refuses_bad_input():
    assert math.isnan(krippendorff_alpha([[1, N, 3], [N, 2, N]]))  # no item rated twice
    assert math.isnan(krippendorff_alpha([[4, 4, 4], [4, 4, N]]))  # no variation: expected disagreement 0
    assert krippendorff_alpha([[1, 2, 3], [1, 2, 3]]) == 1.0
    assert krippendorff_alpha([[1, 2, 3, 9], [1, 2, 3, N]]) == 1.0  # a lone rating does not count
    with pytest.raises(InputError, match="ratio level"):
        krippendorff_alpha([[-1, 2], [1, 2]], "ratio")
    with pytest.raises(InputError, match="unknown level"):
        krippendorff_alpha(PAPER, "cardinal")
    with pytest.raises(InputError, match="finite"):
        krippendorff_alpha([[1, math.inf], [1, 2]])
    with pytest.raises(InputError, match="matrix"):
        krippendorff_alpha([1, 2, 3])


def test_alpha_falls_as_raters_disagree():
    rng = np.random.default_rng(7)
    quality = rng.normal(0, 1, 50)
    alphas = [krippendorff_alpha(quality + rng.normal(0, noise, (6, 50))) for noise in (0.1, 0.5, 1.0, 3.0)]
    assert alphas == sorted(alphas, reverse=True)
    assert alphas[0] > 0.95 and alphas[-1] < 0.3


# --------------------------------------------------------------------------- bootstrap interval


def test_bootstrap_interval_contains_alpha_and_is_deterministic():
    rng = np.random.default_rng(11)
    panel = rng.normal(0, 1, 80)[None, :] + rng.normal(0, 0.7, (10, 80))
    panel[rng.random(panel.shape) < 0.25] = np.nan
    first = alpha_interval(panel, "interval", rounds=1000, seed=3)
    assert first.low < first.alpha < first.high
    assert first.high - first.low < 0.3
    assert first.alpha == krippendorff_alpha(panel)
    assert (first.n_items, first.n_raters, first.rounds) == (80, 10, 1000)
    assert first.n_pairable == int((~np.isnan(panel)).sum())
    assert alpha_interval(panel, "interval", rounds=1000, seed=3) == first
    other = alpha_interval(panel, "interval", rounds=1000, seed=4)
    assert (other.low, other.high) != (first.low, first.high)
    assert other.alpha == first.alpha


def test_ratio_bootstrap_from_item_weights_equals_resampling_the_matrix(monkeypatch):
    panel = random_panel(3)
    fast = alpha_interval(panel, "ratio", rounds=200, seed=1)
    monkeypatch.setattr(agreement, "MAX_RATIO_CROSS_ITEMS", 0)  # resample and recompute, round by round
    slow = alpha_interval(panel, "ratio", rounds=200, seed=1)
    assert fast.alpha == slow.alpha
    assert fast.low == pytest.approx(slow.low, abs=1e-12) and fast.high == pytest.approx(slow.high, abs=1e-12)
    assert fast.low < fast.high


def test_bootstrap_edge_cases():
    narrow = alpha_interval(PAPER, "ordinal", rounds=200, seed=0, confidence=0.5)
    wide = alpha_interval(PAPER, "ordinal", rounds=200, seed=0, confidence=0.99)
    assert wide.low <= narrow.low <= narrow.high <= wide.high
    none = alpha_interval(PAPER, rounds=0)
    assert math.isnan(none.low) and math.isnan(none.high)
    assert none.to_dict()["low"] is None and none.to_dict()["alpha"] == pytest.approx(0.849, abs=5e-4)
    with pytest.raises(InputError, match="confidence"):
        alpha_interval(PAPER, confidence=1.0)
    with pytest.raises(InputError, match="rounds"):
        alpha_interval(PAPER, rounds=-1)


# --------------------------------------------------------------------------- ICC


def _pingouin_icc(values: np.ndarray) -> pd.DataFrame:
    long = pd.DataFrame([(f"item{i}", f"rater{r}", values[r, i]) for r in range(values.shape[0])
                         for i in range(values.shape[1])], columns=["item", "rater", "value"])
    saved = dict(pingouin.options)
    for key in [k for k in pingouin.options if k.startswith("round.")]:
        del pingouin.options[key]  # pingouin rounds the intervals to 2 decimals by default
    try:
        with warnings.catch_warnings():  # pandas deprecations inside pingouin
            warnings.simplefilter("ignore")
            table = pingouin.intraclass_corr(data=long, targets="item", raters="rater", ratings="value")
    finally:
        pingouin.options.clear()
        pingouin.options.update(saved)
    table = table.set_index("Type")
    table.index = table.index.map(lambda t: {"ICC2": "ICC(A,1)", "ICC3": "ICC(C,1)"}.get(t, t))  # older names
    return table.rename(columns={"CI95%": "CI95"})


@pytest.mark.parametrize("seed", range(24))
def test_icc_matches_pingouin(seed):
    rng = np.random.default_rng(1000 + seed)
    raters, items = int(rng.integers(2, 9)), int(rng.integers(3, 30))
    values = (rng.normal(0, 1, items)[None, :] + rng.normal(0, rng.uniform(0, 1), (raters, 1))
              + rng.normal(0, rng.uniform(0.2, 1.5), (raters, items)))
    if seed % 3 == 0:
        values = np.clip(np.rint(values + 3), 1, 5)
    mine = icc(values)
    reference = _pingouin_icc(values)
    assert mine is not None and (mine.n_raters, mine.n_items) == (raters, items)
    assert mine.icc_a1 == pytest.approx(reference.loc["ICC(A,1)", "ICC"], abs=1e-9)
    assert mine.icc_c1 == pytest.approx(reference.loc["ICC(C,1)", "ICC"], abs=1e-9)
    np.testing.assert_allclose([mine.a1_low, mine.a1_high], reference.loc["ICC(A,1)", "CI95"], atol=1e-9)
    np.testing.assert_allclose([mine.c1_low, mine.c1_high], reference.loc["ICC(C,1)", "CI95"], atol=1e-9)


def test_icc_needs_complete_data():
    assert icc(PAPER) is None
    assert "cells are missing" in icc_unavailable(PAPER)
    assert icc([[1, 2, 3]]) is None and "at least 2 raters" in icc_unavailable([[1, 2, 3]])
    assert icc([[1], [2]]) is None
    assert icc_unavailable([[1, 2], [2, 3]]) is None
    perfect = icc([[1, 2, 3, 4], [1, 2, 3, 4]])
    assert perfect.icc_a1 == 1.0 and perfect.icc_c1 == 1.0
    shifted = icc([[1, 2, 3, 4], [2, 3, 4, 5]])  # consistent but not in absolute agreement
    assert shifted.icc_c1 == 1.0 and shifted.icc_a1 < 1.0


# --------------------------------------------------------------------------- severity and deviation


def test_severity_is_the_mean_deviation_from_the_other_raters():
    values = np.array([[1.0, 2.0, 4.0], [3.0, N, 2.0], [5.0, 6.0, N]])
    found = severities(values, rater_ids=["a", "b", "c"])
    # a: (1 − 4) + (2 − 6) + (4 − 2) over 3 items; b: (3 − 3) + (2 − 4) over 2; c: (5 − 2) + (6 − 2) over 2
    assert [s.rater for s in found] == ["a", "b", "c"]
    assert [s.severity for s in found] == pytest.approx([-5 / 3, -1.0, 3.5])
    assert [s.n_items for s in found] == [3, 2, 2]
    lone = severities([[1.0, N], [N, 2.0]])
    assert all(math.isnan(s.severity) and s.n_items == 0 and not s.outlier for s in lone)


def test_planted_harsh_rater_is_flagged():
    rng = np.random.default_rng(5)
    quality = rng.uniform(2, 4, 30)
    values = quality[None, :] + rng.normal(0, 0.2, (8, 30))
    values[3] -= 1.5
    values[rng.random(values.shape) < 0.2] = np.nan
    found = severities(values, z=2.0)
    assert found[3].severity == pytest.approx(-1.5, abs=0.15)
    assert found[3].outlier and found[3].robust_z < -2
    assert [s.outlier for i, s in enumerate(found) if i != 3] == [False] * 7
    homogeneous = quality[None, :] + rng.normal(0, 0.2, (8, 30))
    assert not any(s.outlier for s in severities(homogeneous))


def test_harsh_rater_among_identical_raters_is_flagged():
    values = np.tile([3.0, 4.0, 2.0, 5.0], (5, 1))
    values[0] -= 1.5
    found = severities(values)  # the others' severities are all equal: the MAD is 0
    assert found[0].outlier and [s.outlier for s in found[1:]] == [False] * 4
    assert not any(s.outlier for s in severities(np.tile([3.0, 4.0], (5, 1))))
    assert not any(s.outlier for s in severities([[1.0, 2.0], [3.0, 5.0]]))  # two raters: mirror images


def test_deviation_from_panel_names_the_rater_who_disagrees():
    rng = np.random.default_rng(9)
    quality = rng.uniform(1, 5, 40)
    values = quality[None, :] + rng.normal(0, 0.3, (6, 40))
    values[2] = rng.uniform(1, 5, 40)  # rates at random
    found = deviation_from_panel(values, "interval", rater_ids=list("abcdef"))
    assert max(found, key=lambda d: d.alpha_without).rater == "c"
    assert max(found, key=lambda d: d.mean_abs_deviation).rater == "c"
    for r, d in enumerate(found):
        assert d.alpha_without == krippendorff_alpha(np.delete(values, r, axis=0))
        others = (values.sum(axis=0) - values[r]) / 5
        assert d.mean_abs_deviation == pytest.approx(np.mean(np.abs(values[r] - others)))
        assert d.n_items == 40


def test_agreement_report_to_dict():
    report = agreement_report(PAPER, list("ABCD"), [f"u{i}" for i in range(1, 13)], "interval", rounds=100)
    out = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert out["alpha"] == krippendorff_alpha(PAPER)
    assert out["level"] == "interval" and out["n_items"] == 12 and out["n_raters"] == 4
    assert out["icc"] is None and "missing" in out["icc_unavailable"] and out["n_missing"] == 7
    assert len(out["alpha_interval"]) == 2 and out["alpha_interval"][0] < out["alpha_interval"][1]
    assert [r["id"] for r in out["raters"]] == list("ABCD")
    assert set(out["raters"][0]) >= {"id", "severity", "n_items", "outlier", "mean_abs_deviation", "alpha_without"}
    complete = agreement_report([[1, 2, 3], [2, 2, 4]], ["x", "y"], ["p", "q", "r"], rounds=10).to_dict()
    assert set(complete["icc"]) >= {"icc_a1", "icc_c1", "icc_a1_interval", "icc_c1_interval"}
    with pytest.raises(InputError, match="item ids"):
        agreement_report(PAPER, list("ABCD"), ["u1"])


# --------------------------------------------------------------------------- long table


def write(tmp_path: Path, text: str | bytes, name: str = "ratings.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_read_long_table(tmp_path):
    path = write(tmp_path, "\ufeffRater, item ,value\nkim,t1,3\nlee,t1,4\n\nkim,t2,\nlee,t2,2.5\npark,t1,5\n")
    values, raters, items = read_long_table(path)
    assert raters == ["kim", "lee", "park"] and items == ["t1", "t2"]
    np.testing.assert_array_equal(values, [[3, N], [4, 2.5], [5, N]])
    reordered, _, _ = read_long_table(write(tmp_path, "value,item,rater\n1,a,x\n2,a,y\n", "other.csv"))
    np.testing.assert_array_equal(reordered, [[1], [2]])


@pytest.mark.parametrize(("text", "message"), [
    ("rater,item,value\nkim,t1,3\nlee,t1,4\nkim,t1,5\n", "rater 'kim' rated item 't1' already on line 2"),
    ("rater,item,value\nkim,t1,3\nlee,t1,high\n", "line 3: value 'high' is not a number"),
    ("rater,item,value\nkim,t1,nan\n", "line 2: value 'nan' is not a finite number"),
    ("rater,item,value,comment\nkim,t1,3,ok\n", "unexpected column 'comment'"),
    ("kim,t1,3\nlee,t1,4\n", "the first line must be the header rater,item,value"),
    ("rater,value\nkim,3\n", "the header lacks the column 'item'"),
    ("rater,item,value\nkim,t1\n", "line 2: 2 fields, expected 3"),
    ("rater,item,value\n,t1,3\n", "line 2: the rater is blank"),
    ("", "empty file"),
    ("rater,item,value\n", "no ratings"),
    ("rater,item,value\nkim,t1,x\nlee,t1,y\n", "2 invalid rows: line 2: .*; line 3:"),
])
def test_read_long_table_refuses_bad_tables(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        read_long_table(write(tmp_path, text))


def test_read_long_table_refuses_directories_and_other_encodings(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        read_long_table(tmp_path)
    with pytest.raises(InputError, match="file not found"):
        read_long_table(tmp_path / "absent.csv")
    with pytest.raises(InputError, match="not UTF-8"):
        read_long_table(write(tmp_path, "rater,item,value\n김,t1,3\n".encode("cp949")))


# --------------------------------------------------------------------------- CLI


def cli() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        pass

    root.add_typer(panel_cmd.app, name="panel")
    return root


PANEL_CSV = "rater,item,value\n" + "".join(
    f"{rater},u{unit},{'' if math.isnan(v) else int(v)}\n"
    for rater, row in zip("ABCD", PAPER, strict=True) for unit, v in enumerate(row, start=1))


def test_cli_json_has_the_functions_alpha(tmp_path):
    path = write(tmp_path, PANEL_CSV)
    result = CliRunner().invoke(cli(), ["panel", "agreement", str(path), "--level", "ordinal", "--rounds", "50",
                                        "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    values, raters, items = read_long_table(path)
    assert out["alpha"] == krippendorff_alpha(values, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert out["level"] == "ordinal" and out["rounds"] == 50
    assert out == agreement_report(values, raters, items, "ordinal", rounds=50).to_dict()
    assert out["n_missing"] == 7  # the blank cells of the table and the pairs never given
    assert out["icc"] is None


def test_cli_counts_a_blank_cell_as_missing(tmp_path):
    path = write(tmp_path, "rater,item,value\na,1,2\nb,1,3\na,2,4\nb,2,\na,3,1\nb,3,1\n")
    result = CliRunner().invoke(cli(), ["panel", "agreement", str(path), "--rounds", "20", "--json"])
    out = json.loads(result.stdout)
    assert out["n_missing"] == 1 and out["n_items"] == 3 and out["n_pairable"] == 4
    assert out["icc"] is None and "1 of 6 cells are missing" in out["icc_unavailable"]
    assert out["alpha"] == krippendorff_alpha([[2, 4, 1], [3, N, 1]])
    result = CliRunner().invoke(cli(), ["panel", "agreement", str(path), "--rounds", "20"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Krippendorff's α (interval)" in text and "4 pairable ratings, 1 missing cell " in text
    assert "ICC not computed: 1 of 6 cells are missing" in text
    assert "severity" in text and "α without" in text


def test_cli_prints_iccs_of_complete_data(tmp_path):
    path = write(tmp_path, "rater,item,value\na,1,2\nb,1,3\na,2,4\nb,2,5\na,3,1\nb,3,1\n")
    result = CliRunner().invoke(cli(), ["panel", "agreement", str(path), "--rounds", "20"])
    text = " ".join(result.stdout.split())
    expected = icc([[2, 4, 1], [3, 5, 1]])
    assert f"ICC(A,1) absolute agreement = {expected.icc_a1:.3f}" in text
    assert f"ICC(C,1) consistency = {expected.icc_c1:.3f}" in text
    assert "ICC not computed" not in text


def test_cli_bad_file_exits_2_with_one_line(tmp_path):
    """Through the real entry point, which turns the InputError into one line on stderr and exit code 2."""
    path = write(tmp_path, "rater,item,value\nkim,t1,3\nkim,t1,4\n")
    script = ("import sys\nfrom simsa.cli import main, panel_cmd\n"
              "if not any(g.name == 'panel' for g in main.app.registered_groups):\n"
              "    main.app.add_typer(panel_cmd.app, name='panel')\n"
              "sys.argv = ['simsa', 'panel', 'agreement', sys.argv[1]]\nmain.main()\n")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "60"})
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "already on line 2" in lines[0]
