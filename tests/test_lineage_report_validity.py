"""The validity card in the lineage HTML report: the null, the assumptions checked, the measured error rate.

Results come from real comparisons of two independently initialised llama-shaped numpy checkpoints that share a
zero-padded residual layout (``lineage_nulls``). Cards in the documented shape are set on those results where a test
needs a particular card (a calibration, hostile text, no calibration); a result without a card must still render.
"""

from __future__ import annotations

import copy
import html
import re

import pytest

from lineage_nulls import null_pair
from simsa.lineage.compare.result import compare_paths
from simsa.lineage.stats.correspondence import SamplingSettings
from simsa.report.lineage_report import render_lineage_body, render_lineage_html, validity_section

CARD = {
    "null": "The two models were initialised independently: residual coordinates are exchangeable between them.",
    "method": "A randomisation test permutes the candidate's exchangeable residual coordinates; layer p-values are "
              "combined per component and components by their minimum, corrected.",
    "assumptions": [
        {"check": "exchangeable residual coordinates", "stack": "text", "outcome": "corrected",
         "detail": "32 coordinates are constant in both models and were left out of the permutation.",
         "width": 128, "kept": 96, "excluded": {"constant": 32, "duplicated": 0, "spiked": 0}},
        {"check": "enough units", "outcome": "passed", "detail": "every tested group has at least 16 units"},
        {"check": "residual basis", "outcome": "not checked", "detail": "no basis map was needed"},
    ],
    "calibration": {"family": "dense decoder", "threshold_log10": -6.0, "hard_negatives": 216, "models": 54,
                    "derived": 0, "false_positive_rate": 0.0, "upper_95": 0.0169, "inconclusive_rate": 0.01,
                    "source": "benchmarks/lineage_calibration.py, 2026-12-01"},
}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    a, b, _ = null_pair(tmp_path_factory.mktemp("validity"), "zero_pad", 32, 0)
    return compare_paths(a, b, settings=SamplingSettings(draws=8))


def _with(result: dict, card: object) -> dict:
    out = copy.deepcopy(result)
    out["validity"] = card
    return out


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_the_card_stands_next_to_the_verdict(result: dict) -> None:
    page = render_lineage_html(_with(result, CARD))
    start, comps = page.index('id="validity">Validity</h2>'), page.index(">Components</h2>")
    assert page.index("Verdict:") < start < comps
    section = _text(page[start:comps])
    assert "Null hypothesis: The two models were initialised independently" in section
    assert "Method: A randomisation test permutes" in section
    assert "exchangeable residual coordinates text corrected 32 coordinates are constant" in section
    assert "32 constant, 0 duplicated, 0 spiked (96 of 128 kept)" in section
    assert "enough units — passed every tested group" in section
    assert "residual basis — not checked no basis map was needed —" in section
    assert ("Calibration: 0 of 216 hard negatives of this family were called derived at this threshold (95 % upper "
            "bound 1.7 %); dense decoder, 54 models, threshold log10 p ≤ -6, 1.0 % inconclusive.") in section
    assert "Source: benchmarks/lineage_calibration.py, 2026-12-01." in section
    # The rule note no longer repeats a null of its own when the card states it.
    assert "Null hypothesis: the models were initialised independently" not in _text(page)


def test_no_calibration_for_the_family(result: dict) -> None:
    section = _text(validity_section(_with(result, {**CARD, "calibration": None})))
    assert "Calibration: No calibration data for this family." in section
    assert "hard negatives" not in section


def test_every_string_of_the_card_is_escaped(result: dict) -> None:
    hostile = copy.deepcopy(CARD)
    hostile["null"] = "<b>bold</b> null"
    hostile["assumptions"][0]["detail"] = "<script>alert('detail')</script>"
    hostile["assumptions"][0]["stack"] = "<i>text</i>"
    hostile["assumptions"][1]["outcome"] = "<img src=x onerror=alert(1)>"
    hostile["assumptions"][0]["excluded"] = {"<u>constant</u>": 3}
    hostile["calibration"]["family"] = "<em>dense</em>"
    hostile["calibration"]["source"] = "</p><script>alert('source')</script>"
    body = render_lineage_body(_with(result, hostile))
    for raw in ("<b>bold", "<script>", "<i>text", "<img", "<u>constant", "<em>dense"):
        assert raw not in body, raw
    assert "&lt;script&gt;alert(&#x27;detail&#x27;)&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body and "&lt;u&gt;constant&lt;/u&gt;" in body
    assert "&lt;/p&gt;&lt;script&gt;alert(&#x27;source&#x27;)" in body


def test_results_without_a_card_still_render(result: dict) -> None:
    old = {k: v for k, v in result.items() if k != "validity"}
    page = render_lineage_html(old)
    assert "Validity card: not recorded" in _text(page)
    assert "Null hypothesis: the models were initialised independently." in _text(page)
    assert "Components" in page


def test_an_unreadable_card_is_reported_not_fatal(result: dict) -> None:
    assert "unreadable: lineage result: validity: expected an object" in _text(
        render_lineage_body(_with(result, "fine")))
    bad = copy.deepcopy(CARD)
    bad["calibration"]["derived"] = 300
    assert "more derived pairs than hard negatives" in _text(render_lineage_body(_with(result, bad)))
    bad["calibration"] = {"hard_negatives": 10, "derived": 0, "upper_95": 1.5}
    assert "upper_95: expected a share from 0 to 1" in _text(render_lineage_body(_with(result, bad)))


def test_the_real_card_of_a_zero_padded_pair(result: dict) -> None:
    """The card compare records: the padding is reported as excluded, and the report shows it."""
    card = result["validity"]
    section = _text(validity_section(result))
    assert card["null"] and card["null"][:40] in section
    coords = [a for a in card["assumptions"] if a["check"] == "exchangeable residual coordinates"]
    assert coords and coords[0]["outcome"] == "corrected" and coords[0]["excluded"]["constant"] >= 32
    assert f"{coords[0]['excluded']['constant']} constant" in section
    assert (f"No calibration data for this family ({card['family']})." in section if card["calibration"] is None
            else "hard negatives of this family were called derived" in section)
