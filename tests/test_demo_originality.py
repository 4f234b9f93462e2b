"""The demo's originality gate is decided from computed evidence, not example data.

One demo run (sharing the session's demo cache with every other demo test): halla's submission carries a frozen copy
of the foreign vision encoder and fails the gate on that evidence; the other teams' towers and language models are
their own, and every team's training-evidence package verifies.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from simsa.demo import DemoResult, run_demo
from simsa.demo_lineage import FOREIGN, FOREIGN_TEXT, save_points
from simsa.lineage.fingerprints.registry import Registry, safe_name
from simsa.store.db import Store, sqlite_url
from simsa.store.models import GateResult, Score

TEAMS = ("baekdu", "halla", "jiri", "seorak", "taebaek")
VISION = ("vision.attention", "vision.embedding", "vision.mlp")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return run_demo(tmp_path_factory.mktemp("demo-originality"))


def _json(result: DemoResult, key: str) -> dict:
    return json.loads(Path(result.files[key]).read_text(encoding="utf-8"))


def test_originality_gate_comes_from_lineage_not_example_data(demo: DemoResult) -> None:
    gates = {t["team"]: t["gates"]["originality"] for t in demo.decision["teams"]}
    assert set(gates) == set(TEAMS)
    assert not any(g["example"] for g in gates.values())
    assert all(g["evidence"].startswith("Originality from lineage: ") for g in gates.values())
    for team, gate in gates.items():  # the link is the team's lineage report in the demo folder
        assert gate["link"] == f"originality/{team}/lineage-compare.html"
        assert (demo.workdir / gate["link"]).stat().st_size > 5_000
    # Nothing recorded is example data any more: the panel's and the arena's scores come from their real runs (the
    # example experts' and raters' judgements are seeded), the benchmarks' and the gates' from computed evidence.
    store = Store(sqlite_url(Path(demo.database)))
    try:
        with store.session(readonly=True) as session:
            example_scores = session.execute(select(Score.id).where(Score.example.is_(True))).all()
            example_gates = session.execute(select(GateResult.id).where(GateResult.example.is_(True))).all()
    finally:
        store.dispose()
    assert example_scores == [] and example_gates == []
    assert demo.decision["example_data"] is False


def test_halla_fails_on_the_copied_vision_encoder(demo: DemoResult) -> None:
    teams = {t["team"]: t for t in demo.decision["teams"]}
    halla = teams["halla"]["gates"]["originality"]
    assert halla["passed"] is False and teams["halla"]["status"] == "eliminated"
    assert demo.decision["eliminated"] == ["halla", "taebaek"]
    assert demo.decision["advanced"] == ["baekdu", "jiri", "seorak"]
    assert "Originality from lineage: FAIL" in halla["evidence"]
    assert halla["grade"] == "cryptographic" and halla["override_reason"] is None  # bit-identical tensors
    assert "encoders: fail" in halla["evidence"] and FOREIGN.split("/")[-1] in halla["evidence"]
    assert all(f"{c} (identical, frozen)" in halla["evidence"] for c in VISION)
    compared = _json(demo, "lineage_compare:halla")
    assert compared["reference"]["path"].endswith(FOREIGN) and compared["verdict"] == "derived"
    verdicts = {c["name"]: c["verdict"] for c in compared["components"]}
    assert all(verdicts[c] == "identical" for c in VISION)
    assert not any(v in ("identical", "derived") for n, v in verdicts.items() if not n.startswith("vision."))
    scanned = _json(demo, "lineage_scan:halla")
    assert scanned["derived"] == [safe_name(FOREIGN)]


def test_the_other_teams_pass_on_statistical_evidence(demo: DemoResult) -> None:
    for team in TEAMS:
        if team == "halla":
            continue
        gate = next(t for t in demo.decision["teams"] if t["team"] == team)["gates"]["originality"]
        assert gate["passed"] is True, gate["evidence"]
        assert gate["grade"] == "statistical"
        assert "independent of the reference: " + ", ".join(VISION) in gate["evidence"]
        assert "training_evidence: pass" in gate["evidence"]
        compared = _json(demo, f"lineage_compare:{team}")
        assert {c["name"]: c["verdict"] for c in compared["components"] if c["name"] in VISION} == dict.fromkeys(
            VISION, "independent")
        assert _json(demo, f"lineage_scan:{team}")["derived"] == []


def test_every_training_evidence_package_verifies(demo: DemoResult) -> None:
    for team in TEAMS:
        verified = _json(demo, f"evidence_verify:{team}")
        assert verified["ok"] is True and verified["team"] == team, verified["failed"]
        checks = {c["id"]: c["status"] for c in verified["checks"]}
        assert {k: checks[k] for k in ("files", "init", "first_loss", "chain", "distance", "tokens",
                                       "independence")} == dict.fromkeys(
            ("files", "init", "first_loss", "chain", "distance", "tokens", "independence"), "passed")
        assert Path(demo.files[f"evidence_report:{team}"]).stat().st_size > 5_000


def test_registry_holds_both_foreign_references(demo: DemoResult) -> None:
    registry = Registry.open(demo.files["lineage_registry"])
    assert set(registry.entries) == {safe_name(FOREIGN), safe_name(FOREIGN_TEXT)}


def test_save_points_give_the_distance_check_three_checkpoints() -> None:
    assert save_points(400) == [0, 10, 200, 400]
    assert save_points(30) == [0, 10, 15, 30]
    assert save_points(8) == [0, 4, 8]


def test_a_traced_build_trains_the_same_weights(tmp_path: Path) -> None:
    """Recording training evidence does not change the model the benchmarks run (so cached runs stay valid)."""
    from safetensors.numpy import load_file

    from simsa.bench.tinymodels import TinySpec, build_tiny_model

    spec = TinySpec(hidden=32, layers=1, heads=2, steps=4, seed=9, vocab=400)
    seen: list[tuple[int, float | None]] = []
    plain = build_tiny_model(tmp_path / "plain", spec)
    traced = build_tiny_model(tmp_path / "traced", spec, trace=lambda step, loss, _model: seen.append((step, loss)))
    assert [s for s, _ in seen] == [0, 1, 2, 3, 4] and seen[0][1] is None
    assert all(loss is not None and loss > 0 for _, loss in seen[1:])
    a, b = (load_file(str(p / "model.safetensors")) for p in (plain, traced))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
