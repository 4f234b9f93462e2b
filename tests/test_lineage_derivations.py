"""Derivation kinds (issue 4): each is detected and localised, against the ground truth its fixture records.

Fixtures: ``tests/lineage_derivations.py`` (tiny models derived from the zoo's parents in each way).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lineage_validity import check_pair
from simsa.lineage.compare.result import compare_paths
from simsa.lineage.stats.attribution import attribute


@pytest.fixture(scope="module")
def results(lineage_derivations):  # type: ignore[no-untyped-def]
    d = lineage_derivations
    cache: dict[tuple[str, str], dict] = {}

    def get(candidate: str, reference: str) -> dict:
        if (candidate, reference) not in cache:
            cache[(candidate, reference)] = compare_paths(d.path(candidate), d.path(reference))
        return cache[(candidate, reference)]

    return get


def _component(result: dict, name: str) -> dict:
    return next(c for c in result["components"] if c["name"] == name)


def _map(component: dict) -> list[list[int]]:
    return [[a, b] for a, b, _ in component["layer_map"]]


def test_every_derivation_pair_matches_its_ground_truth(lineage_derivations, results) -> None:  # type: ignore[no-untyped-def]
    failures = {}
    for pair in lineage_derivations.pairs:
        problems = check_pair(pair, results(pair.candidate, pair.reference))
        if problems:
            failures[pair.name] = problems
    assert not failures


def test_width_pruning_is_matched_through_a_rectangular_basis_map(lineage_derivations, results) -> None:  # type: ignore[no-untyped-def]
    r = results("width_pruned", "llama-s0")
    assert r["verdict"] == "derived"
    align = r["alignment"]["text"]
    assert align["kind"] == "signed_permutation"
    assert (align["candidate_width"], align["reference_width"]) == (48, 64)
    for comp in ("text.attention", "text.mlp"):
        assert _map(_component(r, comp)) == [[0, 0], [1, 1], [2, 2], [3, 3]]


def test_depth_upscaling_maps_duplicated_layers_back_to_their_source(results) -> None:  # type: ignore[no-untyped-def]
    r = results("depth_upscaled", "llama-s0")
    for comp in ("text.attention", "text.mlp"):
        c = _component(r, comp)
        assert _map(c) == [[0, 0], [1, 1], [2, 2], [3, 1], [4, 2], [5, 3]]
        assert c["segments"] == [[0, 2, 0, 2], [3, 5, 1, 3]]
        assert c["reused_reference_layers"] == [1, 2]


def test_depth_pruning_names_the_dropped_layer(results) -> None:  # type: ignore[no-untyped-def]
    c = _component(results("depth_pruned", "llama-s0"), "text.mlp")
    assert _map(c) == [[0, 0], [1, 1], [2, 3]]
    assert 2 not in [b for _, b in _map(c)]


def test_moe_upcycling_maps_every_expert_to_the_dense_mlp(results) -> None:  # type: ignore[no-untyped-def]
    r = results("moe_upcycled", "llama-s0")
    experts = _component(r, "text.experts")
    assert experts["verdict"] == "derived" and experts["parent_component"] == "text.mlp"
    assert _map(experts) == [[0, 0], [1, 1], [2, 2], [3, 3]]
    per = experts["experts"]
    assert per["tested"] and len(per["experts"]) == 8 and per["from_parent"] == 8
    assert _component(r, "text.router")["verdict"] != "derived"  # the router is new


def test_vocabulary_extension_and_replacement(results) -> None:  # type: ignore[no-untyped-def]
    ext = results("vocab_extended", "llama-s0")
    assert _component(ext, "text.embedding")["verdict"] == "derived"
    assert ext["tokenizer"]["available"]
    assert ext["tokenizer"]["candidate"]["size"] > ext["tokenizer"]["reference"]["size"]
    rep = results("vocab_replaced", "llama-s0")
    assert rep["verdict"] == "derived"
    assert _component(rep, "text.embedding")["verdict"] == "independent"
    assert _component(rep, "text.output_head")["verdict"] == "independent"
    assert _map(_component(rep, "text.mlp")) == [[0, 0], [1, 1], [2, 2], [3, 3]]


def test_merges_are_attributed_layer_by_layer(results) -> None:  # type: ignore[no-untyped-def]
    layerwise = attribute({"A": results("merge_layerwise", "llama-s0"), "B": results("merge_layerwise", "llama-s1")})
    for comp in ("text.attention", "text.mlp"):
        rows = {r["candidate_layer"]: r["from"] for r in layerwise["components"][comp]["layers"]}
        assert rows == {0: ["A"], 1: ["A"], 2: ["B"], 3: ["B"]}
        assert layerwise["components"][comp]["summary"] == "0–1 from A; 2–3 from B"
    average = attribute({"A": results("merge_average", "llama-s0"), "B": results("merge_average", "llama-s1")})
    for comp in ("text.attention", "text.mlp"):
        assert all(r["from"] == ["A", "B"] for r in average["components"][comp]["layers"])


def test_partial_reinitialisation_names_the_new_layer(lineage_zoo) -> None:  # type: ignore[no-untyped-def]
    r = compare_paths(lineage_zoo.models["llama-s0-reinit1"], lineage_zoo.models["llama-s0"])
    for comp in ("text.attention", "text.mlp"):
        assert _component(r, comp)["unmapped_layers"] == [1]
    assert "no evidence of descent" in r["summary"]


def test_a_reused_vision_encoder_is_named_even_with_an_independent_language_model(results) -> None:  # type: ignore[no-untyped-def]
    frozen = results("llava_reused_frozen", "vision_ref")
    assert frozen["reuse"]["vision"]["label"] == "reused unchanged"
    assert frozen["reuse"]["vision"]["identical_share"] == 1.0
    assert frozen["reuse"]["text"]["reused"] is False  # the reference has no language model to compare
    assert "vision tower is reused unchanged" in frozen["summary"]
    tuned = results("llava_reused_tuned", "vision_ref")
    info = tuned["reuse"]["vision"]
    assert info["label"] == "reused, lightly tuned"
    assert info["identical_share"] < 0.5 and info["within_10pct_share"] >= 0.9
    assert 0 < info["median_relative_difference"] < 0.1
    for name in ("llava_independent",):
        r = results(name, "vision_ref")
        assert r["verdict"] == "independent" and r["reuse"]["vision"]["reused"] is False
    assert results("llava_reused_frozen", "vision_other")["verdict"] == "independent"


def test_attribute_cli(lineage_derivations) -> None:  # type: ignore[no-untyped-def]
    d = lineage_derivations
    cli = [sys.executable, "-m", "simsa.cli.main", "lineage", "attribute", str(d.path("merge_layerwise"))]
    out = subprocess.run([*cli, str(d.path("llama-s0")), str(d.path("llama-s1")), "--json"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["schema"] == "simsa.lineage.attribution/1"
    rows = info["components"]["text.mlp"]["layers"]
    assert [len(r["from"]) for r in rows] == [1, 1, 1, 1]
    one = subprocess.run([*cli, str(d.path("llama-s0"))], capture_output=True, text=True, timeout=300)
    assert one.returncode == 2 and "at least two parents" in one.stderr
