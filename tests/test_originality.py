"""The originality summary and gate: lineage evidence read against a programme's rules and a team's declaration.

Lineage results come from real comparisons of tiny safetensors checkpoints written here with numpy (a LLaVA-style
model whose vision tower is a copy of a CLIP encoder; an independent and a fine-tuned Llama), then the end-to-end path
`lineage compare` → `gate from-lineage` → `stage decide` runs through the real command line on the example programme.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from helpers import EXAMPLE, write_bench_scores
from simsa.demo import write_example_scores
from simsa.errors import InputError, ProgramFileError
from simsa.lineage.compare.result import compare_paths
from simsa.lineage.stats.correspondence import SamplingSettings
from simsa.program.gates import originality_from_lineage, originality_rules, team_declaration
from simsa.program.loader import load_program, parse_program
from simsa.program.originality import (
    FAIL,
    PASS,
    REVIEW,
    OriginalityRules,
    check_compare_result,
    evidence_text,
    names_same_model,
    originality_summary,
)

D, F, V, L = 64, 128, 128, 2  # text width, MLP width, vocabulary, layers
VD, VF, VL = 48, 96, 2  # vision tower
TEXT_CFG = {"model_type": "llama", "hidden_size": D, "intermediate_size": F, "num_hidden_layers": L,
            "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": V, "rms_norm_eps": 1e-6}
VISION_CFG = {"model_type": "clip_vision_model", "hidden_size": VD, "intermediate_size": VF, "num_hidden_layers": VL,
              "num_attention_heads": 4, "patch_size": 4, "image_size": 16}


def _text(rng: np.random.Generator, prefix: str = "") -> dict[str, np.ndarray]:
    t = {f"{prefix}model.embed_tokens.weight": rng.normal(0, 0.02, (V, D)),
         f"{prefix}model.norm.weight": 1 + rng.normal(0, 0.05, D),
         f"{prefix}lm_head.weight": rng.normal(0, 0.02, (V, D))}
    for i in range(L):
        p = f"{prefix}model.layers.{i}"
        t |= {f"{p}.self_attn.{m}_proj.weight": rng.normal(0, 0.02, (D, D)) for m in "qkvo"}
        t |= {f"{p}.mlp.gate_proj.weight": rng.normal(0, 0.02, (F, D)),
              f"{p}.mlp.up_proj.weight": rng.normal(0, 0.02, (F, D)),
              f"{p}.mlp.down_proj.weight": rng.normal(0, 0.02, (D, F)),
              f"{p}.input_layernorm.weight": 1 + rng.normal(0, 0.05, D),
              f"{p}.post_attention_layernorm.weight": 1 + rng.normal(0, 0.05, D)}
    return t


def _vision(rng: np.random.Generator, prefix: str) -> dict[str, np.ndarray]:
    t = {f"{prefix}embeddings.patch_embedding.weight": rng.normal(0, 0.02, (VD, 3, 4, 4)),
         f"{prefix}embeddings.position_embedding.weight": rng.normal(0, 0.02, (17, VD)),
         f"{prefix}post_layernorm.weight": 1 + rng.normal(0, 0.05, VD)}
    for i in range(VL):
        p = f"{prefix}encoder.layers.{i}"
        t |= {f"{p}.self_attn.{m}_proj.weight": rng.normal(0, 0.02, (VD, VD)) for m in ("q", "k", "v", "out")}
        t |= {f"{p}.mlp.fc1.weight": rng.normal(0, 0.02, (VF, VD)),
              f"{p}.mlp.fc2.weight": rng.normal(0, 0.02, (VD, VF)),
              f"{p}.layer_norm1.weight": 1 + rng.normal(0, 0.05, VD),
              f"{p}.layer_norm2.weight": 1 + rng.normal(0, 0.05, VD)}
    return t


def _write(path: Path, tensors: dict[str, np.ndarray], config: dict, tokenizer: bool = False) -> Path:
    path.mkdir(parents=True)
    save_file({k: np.asarray(v, np.float32) for k, v in tensors.items()}, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    if tokenizer:
        vocab = {f"tok{i}": i for i in range(V)}
        (path / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordLevel", "vocab": vocab}}))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoints named like the example programme's models and the sources they declare."""
    root = tmp_path_factory.mktemp("originality")
    encoder = _vision(np.random.default_rng(7), "vision_model.")
    halla = _text(np.random.default_rng(1), "language_model.")
    halla |= {k.replace("vision_model.", "vision_tower.vision_model."): v for k, v in encoder.items()}
    rng = np.random.default_rng(2)
    halla |= {"multi_modal_projector.linear_1.weight": rng.normal(0, 0.02, (D, VD)),
              "multi_modal_projector.linear_2.weight": rng.normal(0, 0.02, (D, D))}
    foreign = _text(np.random.default_rng(3))
    noise = np.random.default_rng(9)
    tuned = {k: v + noise.normal(0, 0.004, v.shape) for k, v in foreign.items()}
    llama = {**TEXT_CFG, "architectures": ["LlamaForCausalLM"]}
    return {
        "vision-encoder-400m": _write(root / "vision-encoder-400m", encoder,
                                      {**VISION_CFG, "architectures": ["CLIPVisionModel"]}),
        "halla-omni-14b": _write(root / "halla-omni-14b", halla, {
            "model_type": "llava", "architectures": ["LlavaForConditionalGeneration"], "text_config": TEXT_CFG,
            "vision_config": VISION_CFG}),
        "foreign-llm": _write(root / "foreign-llm", foreign, llama, tokenizer=True),
        "baekdu-32b": _write(root / "baekdu-32b", _text(np.random.default_rng(4)), llama, tokenizer=True),
        "seorak-31b": _write(root / "seorak-31b", tuned, llama, tokenizer=True),
    }


@pytest.fixture(scope="module")
def results(models: dict[str, Path]) -> dict[str, dict]:
    settings = SamplingSettings(draws=8)
    return {
        "halla": compare_paths(models["halla-omni-14b"], models["vision-encoder-400m"], settings=settings),
        "baekdu": compare_paths(models["baekdu-32b"], models["foreign-llm"], settings=settings),
        "seorak": compare_paths(models["seorak-31b"], models["foreign-llm"], settings=settings),
    }


@pytest.fixture(scope="module")
def example() -> object:
    return load_program(EXAMPLE).program


def _summary(result: dict, program: object, team: str, rules: dict | None = None,
             declaration: dict | str | None = "team") -> dict:
    decl = team_declaration(program.team(team)) if declaration == "team" else declaration  # type: ignore[attr-defined]
    if rules is None:
        rules = originality_rules(program.stage("stage-1").gates[0]).as_dict()  # type: ignore[attr-defined]
    return originality_summary(result, decl, rules)


# --------------------------------------------------------------------------- the summary on real results


def test_frozen_foreign_vision_encoder_fails_by_default(results: dict, example: object) -> None:
    s = _summary(results["halla"], example, "halla")
    assert s["schema"] == "simsa.originality/1" and s["recommendation"] == FAIL and s["passed"] is False
    crit = s["criteria"]
    assert crit["encoders"]["status"] == FAIL
    assert crit["encoders"]["reasons"][0].startswith("initialised from the reference's weights, which the program "
                                                     "does not allow (allow_reuse: none): vision.attention "
                                                     "(identical, frozen)")
    assert crit["language_model"]["status"] == PASS  # a vision encoder has no language model to copy from
    assert crit["declaration"]["status"] == PASS and crit["licence"]["status"] == PASS
    assert crit["subject"]["status"] == PASS
    assert {"vision.attention", "vision.mlp"} <= set(s["reused"])
    assert s["stacks"]["vision"]["status"] == "reused" and s["stacks"]["text"]["status"] == "not compared"
    assert s["language_model"] == {"status": "not compared", "initialised_from_reference": None}
    attn = next(e for e in s["components"] if e["name"] == "vision.attention")
    assert attn["weights"] == "frozen" and attn["log10_p"] < -6 and attn["identity"]["identical"] == 8
    assert attn["allowed"] is False
    assert s["reasons"] == [f"encoders: {r}" for r in crit["encoders"]["reasons"]]


def test_reuse_allowed_by_the_programme(results: dict, example: object) -> None:
    frozen_barred = _summary(results["halla"], example, "halla", {"allow_reuse": ["vision"]})
    assert frozen_barred["recommendation"] == FAIL
    assert "allow_frozen = false" in frozen_barred["criteria"]["encoders"]["reasons"][0]
    allowed = _summary(results["halla"], example, "halla", {"allow_reuse": ["vision"], "allow_frozen": True})
    assert allowed["recommendation"] == PASS and allowed["passed"] is True
    assert allowed["criteria"]["encoders"]["reasons"][0].startswith("reused as the program allows: vision.")
    licences = _summary(results["halla"], example, "halla", {"allow_reuse": ["vision"], "allow_frozen": True,
                                                             "allowed_licences": ["mit"]})
    assert licences["recommendation"] == FAIL
    assert licences["criteria"]["licence"]["reasons"] == [
        "vision encoder (foreign-lab/vision-encoder-400m) is under apache-2.0, not a licence the program allows (mit)"]
    only_attention = _summary(results["halla"], example, "halla", {"allow_reuse": ["vision.attention"],
                                                                   "allow_frozen": True})
    assert only_attention["recommendation"] == FAIL
    assert only_attention["criteria"]["encoders"]["reasons"][0].endswith(
        "(allow_reuse: vision.attention): vision.embedding (identical, frozen), vision.mlp (identical, frozen), "
        "vision.norms (identical, frozen)")


def test_declaration_must_cover_what_was_found(results: dict, example: object) -> None:
    rules = {"allow_reuse": ["vision"], "allow_frozen": True}
    decl = team_declaration(example.team("halla"))  # type: ignore[attr-defined]
    undeclared = _summary(results["halla"], example, "halla", rules, {**decl, "borrowed": []})
    assert undeclared["recommendation"] == FAIL
    assert undeclared["criteria"]["declaration"]["reasons"][0].startswith(
        "reuse of the reference's weights not declared as reused: vision.attention")
    assert undeclared["criteria"]["licence"]["reasons"][0].startswith("no licence declared for (reuse not declared)")
    said_reinit = copy.deepcopy(decl)
    said_reinit["borrowed"][0]["weights"] = "reinitialised"
    lie = _summary(results["halla"], example, "halla", rules, said_reinit)
    assert lie["criteria"]["declaration"]["status"] == FAIL
    assert "declares weights = 'reinitialised'" in lie["criteria"]["declaration"]["reasons"][0]
    tuned = copy.deepcopy(decl)
    tuned["borrowed"][0]["weights"] = "reused_tuned"
    review = _summary(results["halla"], example, "halla", rules, tuned)
    assert review["recommendation"] == REVIEW and review["passed"] is None
    assert "declared as tuned, but every tensor is identical" in review["criteria"]["declaration"]["reasons"][0]
    other_source = copy.deepcopy(decl)
    other_source["borrowed"][0]["source"] = "another-lab/encoder-1b"
    src = _summary(results["halla"], example, "halla", rules, other_source)
    assert src["criteria"]["declaration"]["status"] == REVIEW
    assert "does not name the compared reference" in src["criteria"]["declaration"]["reasons"][0]
    uncredited = copy.deepcopy(decl)
    uncredited["borrowed"][0]["credited"] = False
    assert _summary(results["halla"], example, "halla", rules, uncredited)["criteria"]["licence"]["reasons"] == [
        "vision encoder (foreign-lab/vision-encoder-400m) is not credited"]
    no_decl = _summary(results["halla"], example, "halla", rules, None)
    assert no_decl["recommendation"] == REVIEW and no_decl["team"] is None
    assert {c: v["status"] for c, v in no_decl["criteria"].items() if v["status"] != PASS} == {
        "declaration": REVIEW, "licence": REVIEW, "subject": REVIEW}


def test_independent_language_model_passes(results: dict, example: object) -> None:
    s = _summary(results["baekdu"], example, "baekdu")
    assert s["recommendation"] == PASS and s["reused"] == []
    assert s["language_model"] == {"status": "re-initialised", "initialised_from_reference": False}
    assert s["criteria"]["language_model"]["reasons"][0].startswith("independent of the reference: text.attention")
    norms = next(e for e in s["components"] if e["name"] == "text.norms")
    assert norms["finding"] == "untested"  # no unit test for norm gains: no evidence either way
    assert s["priors"]["label"] == "prior — not weight evidence"
    assert s["priors"]["tokenizer"].startswith("same tokenizer (128 tokens")  # a shared tokenizer changes nothing
    assert s["priors"]["architecture"].startswith("same architecture as the reference (llama")
    # A team that declares reusing this very model, where the comparison finds nothing: wrong files compared?
    decl = team_declaration(example.team("baekdu"))  # type: ignore[attr-defined]
    decl["borrowed"] = [{"component": "base model", "source": "some-org/foreign-llm", "licence": "mit",
                         "credited": True, "weights": "reused_tuned", "covers": ["text"]}]
    wrong = _summary(results["baekdu"], example, "baekdu", None, decl)
    assert wrong["recommendation"] == REVIEW
    assert "is declared as reused, but the comparison finds" in wrong["criteria"]["declaration"]["reasons"][0]


def test_language_model_initialised_from_the_reference_fails(results: dict, example: object) -> None:
    s = _summary(results["seorak"], example, "seorak")
    assert s["recommendation"] == FAIL
    assert s["language_model"] == {"status": "reused", "initialised_from_reference": True}
    lm = s["criteria"]["language_model"]
    assert lm["status"] == FAIL and "text.mlp (derived, tuned)" in lm["reasons"][0]
    assert any("text.mlp derived (log10 p" in e for e in lm["evidence"])
    allowed = _summary(results["seorak"], example, "seorak", {"allow_reuse": ["text"]})
    assert allowed["criteria"]["language_model"]["status"] == PASS
    assert allowed["criteria"]["declaration"]["status"] == FAIL  # allowed, but still undeclared


def test_subject_must_be_the_teams_model(results: dict, example: object) -> None:
    s = _summary(results["baekdu"], example, "jiri")  # baekdu's checkpoint used for jiri's gate
    assert s["criteria"]["subject"]["status"] == REVIEW and s["recommendation"] == REVIEW
    assert "names none of the team's models (jiri/jiri-a15b-moe)" in s["criteria"]["subject"]["reasons"][0]
    assert names_same_model("foreign-lab/vision-encoder-400m@v2", "/models/vision-encoder-400m/model.safetensors")
    assert not names_same_model("foreign-lab/vision-encoder", "/models/vision-encoder-400m")


def test_component_findings_from_identity_counts(results: dict, example: object) -> None:
    r = copy.deepcopy(results["seorak"])
    for c in r["components"]:
        if c["name"] == "text.mlp":
            c["identity"]["identical"] = 2
        if c["name"] == "text.attention":
            c["verdict"], c["identity"]["identical"], c["identity"]["bit_identical"] = "identical", 8, 0
        if c["name"] == "text.output_head":
            c["verdict"], c["log10_p"] = "inconclusive", -3.0
    s = _summary(r, example, "seorak", {"allow_reuse": ["text"], "allow_frozen": True})
    found = {e["name"]: (e["finding"], e["weights"]) for e in s["components"]}
    assert found["text.mlp"] == ("derived", "partly frozen")
    assert found["text.attention"] == ("near-identical", "frozen")  # a dtype cast of the reference's tensors
    assert found["text.output_head"] == ("inconclusive", None)
    assert s["criteria"]["language_model"]["status"] == REVIEW
    assert s["criteria"]["language_model"]["reasons"][0].startswith("undecided: text.output_head")


def test_evidence_text_is_one_bounded_paragraph(results: dict, example: object) -> None:
    s = _summary(results["halla"], example, "halla")
    text = evidence_text(s, "ab" * 32)
    assert "\n" not in text and text.startswith("Originality from lineage: FAIL (compare verdict derived")
    assert "result sha256 abababababababab" in text and "encoders: fail — " in text
    assert "Priors (prior — not weight evidence): architecture: different architectures" in text
    assert len(evidence_text(s, None, limit=120)) == 120


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r.update(schema="simsa.lineage.compare/0"), "schema: 'simsa.lineage.compare/0' is not"),
    (lambda r: r.update(verdict="maybe"), "verdict: expected one of identical"),
    (lambda r: r.pop("reference"), "reference: expected an object"),
    (lambda r: r.update(components={}), "components: expected a list"),
    (lambda r: r["components"][0].update(name="brain.attention"), "components[0].name: 'brain.attention' is not"),
    (lambda r: r["components"][0].update(verdict=None), "components[0].verdict: expected one of"),
    (lambda r: r["components"][0].update(log10_p=3.0), "components[0].log10_p: expected null or a number ≤ 0"),
    (lambda r: r["components"][0].update(identity={"tensors": 1, "identical": 2}), "more identical tensors"),
    (lambda r: r["components"][0].pop("identity"), "components[0].identity: expected counts"),
    (lambda r: r["components"].append(dict(r["components"][0])), "is listed twice"),
])
def test_malformed_lineage_results_are_refused(results: dict, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    bad = copy.deepcopy(results["baekdu"])
    mutate(bad)
    with pytest.raises(InputError, match=r"^lineage result: ") as err:
        originality_summary(bad, None)
    assert message in str(err.value)
    with pytest.raises(InputError, match="top level: expected a JSON object"):
        check_compare_result([1])


def test_rules_validate_component_names() -> None:
    assert OriginalityRules.from_mapping({"allow_reuse": ["vision", "audio.mlp"]}).allows("audio.mlp")
    assert not OriginalityRules.from_mapping(None).allows("vision.mlp")
    assert not OriginalityRules(allow_reuse=("vision",)).allows("visionary.mlp")
    with pytest.raises(ValueError, match="'eyes' is not a lineage component"):
        OriginalityRules.from_mapping({"allow_reuse": ["eyes"]})


# --------------------------------------------------------------------------- the validity card

CARD = {
    "null": "The two models were initialised independently: residual coordinates are exchangeable between them.",
    "method": "A randomisation test permutes the candidate's exchangeable residual coordinates.",
    "assumptions": [
        {"check": "exchangeable residual coordinates", "stack": "text", "outcome": "corrected",
         "detail": "32 constant coordinates left out", "width": 64, "kept": 32,
         "excluded": {"constant": 32, "duplicated": 0, "spiked": 0}},
        {"check": "enough units", "outcome": "passed", "detail": "every group has 16 units or more"},
        {"check": "residual basis", "outcome": "not checked", "detail": "no basis map was needed"},
    ],
    "calibration": {"family": "dense decoder", "threshold_log10": -6.0, "hard_negatives": 216, "models": 54,
                    "derived": 0, "false_positive_rate": 0.0, "upper_95": 0.0169, "inconclusive_rate": 0.01,
                    "source": "lineage calibration bench"},
}


def test_summary_and_evidence_carry_the_validity_card(results: dict, example: object) -> None:
    r = copy.deepcopy(results["baekdu"])
    r["validity"] = copy.deepcopy(CARD)
    s = _summary(r, example, "baekdu")
    card = s["lineage"]["validity"]
    assert card["null"] == CARD["null"] and card["method"] == CARD["method"]
    assert [(a["check"], a["outcome"]) for a in card["assumptions"]] == [
        ("exchangeable residual coordinates", "corrected"), ("enough units", "passed"),
        ("residual basis", "not checked")]
    assert card["assumptions"][0]["excluded"] == {"constant": 32, "duplicated": 0, "spiked": 0}
    assert card["assumptions"][0]["stack"] == "text" and "stack" not in card["assumptions"][1]
    assert card["calibration"]["hard_negatives"] == 216 and card["calibration"]["upper_95"] == 0.0169
    line = ("0 of 216 hard negatives of this family were called derived at this threshold (95 % upper bound 1.7 %); "
            "dense decoder, 54 models, threshold log10 p ≤ -6, 1.0 % inconclusive.")
    assert card["calibration_line"] == line
    assert {"verdict", "log10_p", "rule", "candidate", "reference"} <= set(s["lineage"])
    assert s["recommendation"] == _summary(results["baekdu"], example, "baekdu")["recommendation"]  # evidence only
    text = evidence_text(s)
    assert "\n" not in text
    assert ("Validity: exchangeable residual coordinates (text): corrected; enough units: passed; residual basis: "
            f"not checked. {line}") in text
    assert text.index("Validity:") < text.index("language_model:")
    r["validity"]["calibration"] = None
    uncalibrated = _summary(r, example, "baekdu")
    assert uncalibrated["lineage"]["validity"]["calibration"] is None
    assert "not checked. No calibration data for this family." in evidence_text(uncalibrated)


def test_results_without_a_card_keep_working(results: dict, example: object) -> None:
    old = {k: v for k, v in results["seorak"].items() if k != "validity"}
    s = _summary(old, example, "seorak")
    assert s["lineage"]["validity"] is None and s["recommendation"] == FAIL
    assert "Validity card: not recorded in this result." in evidence_text(s)
    real = _summary(results["seorak"], example, "seorak")["lineage"]["validity"]
    if "validity" in results["seorak"]:  # the card compare records comes through as it is
        assert real["null"] == results["seorak"]["validity"]["null"]
        assert len(real["assumptions"]) == len(results["seorak"]["validity"]["assumptions"])
    else:
        assert real is None


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda v: v.clear(), None),  # an empty card is read as stating nothing
    (lambda v: v.update(null=3), "validity.null: expected text"),
    (lambda v: v.update(assumptions={}), "validity.assumptions: expected a list"),
    (lambda v: v["assumptions"].append({"check": "x"}), "validity.assumptions[3]: expected an object with a check"),
    (lambda v: v["assumptions"][0].update(excluded={"constant": -1}), "assumptions[0].excluded: expected counts"),
    (lambda v: v["assumptions"][0].update(kept="96"), "validity.assumptions[0].kept: expected a count"),
    (lambda v: v.update(calibration=[]), "validity.calibration: expected an object or null"),
    (lambda v: v["calibration"].pop("hard_negatives"), "expected the counts hard_negatives and derived"),
    (lambda v: v["calibration"].update(derived=217), "more derived pairs than hard negatives"),
    (lambda v: v["calibration"].update(upper_95=None), "upper_95: expected a share from 0 to 1"),
    (lambda v: v["calibration"].update(inconclusive_rate=2.0), "inconclusive_rate: expected a share from 0 to 1"),
    (lambda v: v["calibration"].update(threshold_log10="-6"), "threshold_log10: expected a number"),
])
def test_malformed_validity_cards_are_refused(results: dict, mutate, message: str | None) -> None:  # type: ignore[no-untyped-def]
    r = copy.deepcopy(results["baekdu"])
    r["validity"] = copy.deepcopy(CARD)
    mutate(r["validity"])
    if message is None:
        card = originality_summary(r, None)["lineage"]["validity"]
        assert card["null"] == "" and card["assumptions"] == [] and card["calibration"] is None
        return
    with pytest.raises(InputError, match=r"^lineage result: validity") as err:
        originality_summary(r, None)
    assert message in str(err.value)
    r["validity"] = "a card"
    with pytest.raises(InputError, match="validity: expected an object"):
        check_compare_result(r)


# --------------------------------------------------------------------------- the program file


def _with(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def test_program_file_declares_reuse_and_originality_rules(example: object) -> None:
    halla = example.team("halla")  # type: ignore[attr-defined]
    assert halla.borrowed[0].covers == ["vision"] and halla.borrowed[0].attribution
    gate = example.stage("stage-1").gates[0]  # type: ignore[attr-defined]
    assert originality_rules(gate) == OriginalityRules()
    assert originality_rules(example.stage("stage-2").gates[0]) == OriginalityRules()  # type: ignore[attr-defined]
    text = EXAMPLE.read_text(encoding="utf-8")
    custom = _with(text, "allow_reuse = []", 'allow_reuse = ["vision", "audio"]\n    allowed_licences = ["mit"]')
    rules = originality_rules(parse_program(custom, "x.toml").program.stage("stage-1").gates[0])
    assert rules == OriginalityRules(allow_reuse=("vision", "audio"), allowed_licences=("mit",))


@pytest.mark.parametrize(("old", "new", "where", "message"), [
    ('covers = ["vision"]', 'covers = ["eyes"]', "teams[1].borrowed[0].covers[0]", "'eyes' is not a lineage component"),
    ('weights = "reused_frozen"', 'weights = "none"', "teams[1].borrowed[0].weights",
     "covers lineage components but declares weights = \"none\""),
    ("allow_reuse = []", 'allow_reuse = ["vision.eyes"]', "stages[0].gates[0].originality.allow_reuse[0]",
     "'vision.eyes' is not a lineage component"),
    ("allow_frozen = false", "allow_frozn = false", "stages[0].gates[0].originality.allow_frozn",
     "did you mean 'allow_frozen'?"),
    ('attribution = "technical report §2.3 and the model card"', 'attribution = ""',
     "teams[1].borrowed[0].attribution", "at least 1 character"),
    ('kind = "licence"', 'kind = "licence"\n    [stages.gates.originality]', "stages[0].gates[1].originality",
     "originality applies only to kind recorded"),
])
def test_program_file_errors_point_at_the_key(old: str, new: str, where: str, message: str) -> None:
    original = EXAMPLE.read_text(encoding="utf-8")
    text = _with(original, old, new)
    with pytest.raises(ProgramFileError) as err:
        parse_program(text, "x.toml")
    assert err.value.key == where and message in err.value.message
    assert err.value.line == original[:original.index(old)].count("\n") + 1 + new.count("\n")


def test_gate_helpers_use_team_and_gate(results: dict, example: object) -> None:
    gate = example.stage("stage-1").gates[0]  # type: ignore[attr-defined]
    s = originality_from_lineage(gate, example.team("halla"), results["halla"])  # type: ignore[attr-defined]
    assert s["team"] == "halla" and s["recommendation"] == FAIL and s["rules"]["allow_reuse"] == []


# --------------------------------------------------------------------------- end to end through the CLI


def simsa(*args: str, db: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "400", "SIMSA_ACTOR": "originality-test",
           "OMP_NUM_THREADS": "1"}
    env.pop("SIMSA_DATABASE_URL", None)
    cmd = [sys.executable, "-m", "simsa.cli.main", *(["--db", db] if db else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def ok_json(out: subprocess.CompletedProcess[str]) -> dict:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def one_line_error(out: subprocess.CompletedProcess[str], message: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_gate_from_lineage_feeds_stage_decide(db_url: str, models: dict[str, Path], results: dict,
                                              tmp_path: Path) -> None:
    program = str(EXAMPLE)
    halla_json, report = tmp_path / "halla.json", tmp_path / "halla.html"
    compared = simsa("lineage", "compare", str(models["halla-omni-14b"]), str(models["vision-encoder-400m"]),
                     "--draws", "8", "--json", "-o", str(halla_json), "--report", str(report))
    assert compared.returncode == 0, compared.stderr
    baekdu_json = tmp_path / "baekdu.json"
    baekdu_json.write_text(json.dumps(results["baekdu"]), encoding="utf-8")
    seorak_json = tmp_path / "seorak.json"
    seorak_json.write_text(json.dumps(results["seorak"]), encoding="utf-8")

    scores = tmp_path / "scores.csv"
    write_example_scores(scores)
    ok_json(simsa("score", "import", program, str(scores), "--json", db=db_url))
    bench = tmp_path / "bench.json"
    write_bench_scores(bench)
    ok_json(simsa("score", "import", program, str(bench), "--json", db=db_url))

    dry = ok_json(simsa("gate", "from-lineage", program, str(halla_json), "--team", "halla", "--stage", "stage-1",
                        "--dry-run", "--json", db=db_url))
    assert dry["recorded"] is None and dry["summary"]["recommendation"] == "fail"
    halla = ok_json(simsa("gate", "from-lineage", program, str(halla_json), "--team", "halla", "--stage", "stage-1",
                          "--report", str(report), "--json", db=db_url))
    assert halla["recorded"]["passed"] is False and halla["recorded"]["link"] == str(report)
    assert halla["recorded"]["evidence"].startswith("Originality from lineage: FAIL")
    assert halla["lineage_sha256"][:16] in halla["recorded"]["evidence"]
    baekdu = ok_json(simsa("gate", "from-lineage", program, str(baekdu_json), "--team", "baekdu", "--stage",
                           "stage-1", "--json", db=db_url))
    assert baekdu["recorded"]["passed"] is True and baekdu["recorded"]["link"] == str(baekdu_json)

    # seorak's lineage fails; jiri's comparison is of someone else's model and needs a person to decide.
    ok_json(simsa("gate", "from-lineage", program, str(seorak_json), "--team", "seorak", "--stage", "stage-1",
                  "--json", db=db_url))
    refused = simsa("gate", "from-lineage", program, str(baekdu_json), "--team", "jiri", "--stage", "stage-1",
                    db=db_url)
    one_line_error(refused, "the lineage evidence needs review (subject: the candidate")
    one_line_error(simsa("gate", "from-lineage", program, str(baekdu_json), "--team", "jiri", "--stage", "stage-1",
                         "--override", "pass", db=db_url), "--override needs --reason")
    jiri = ok_json(simsa("gate", "from-lineage", program, str(baekdu_json), "--team", "jiri", "--stage", "stage-1",
                         "--override", "pass", "--reason", "jiri's own checkpoint was compared in a second run",
                         "--json", db=db_url))
    assert jiri["recorded"]["passed"] is True
    assert jiri["recorded"]["evidence"].startswith("Decided PASS after review: jiri's own checkpoint")
    ok_json(simsa("gate", "record", program, "--stage", "stage-1", "--team", "taebaek", "--gate", "originality",
                  "--pass", "--evidence", "lineage check by hand", "--json", db=db_url))

    table = simsa("gate", "from-lineage", program, str(halla_json), "--team", "halla", "--stage", "stage-1",
                  "--report", str(report), db=db_url)
    assert table.returncode == 0 and "Recommendation: fail" in table.stdout and "FAILED (record" in table.stdout

    decided = ok_json(simsa("stage", "decide", program, "stage-1", "--at", "2026-01-15T09:00:00Z", "--json",
                            db=db_url))
    teams = {t["team"]: t for t in decided["teams"]}
    assert {"halla", "seorak"} <= set(decided["eliminated"]) and "baekdu" in decided["advanced"]
    gate = teams["halla"]["gates"]["originality"]
    assert gate["passed"] is False and gate["link"] == str(report) and "encoders: fail" in gate["evidence"]
    assert teams["baekdu"]["gates"]["originality"]["passed"] is True
    # Each result's evidence grade: bit-identical reused tensors are a hash match; a lineage test is statistical;
    # a hand-recorded result is declared; a reviewer's decision keeps the reason beside the grade.
    grades = {t: teams[t]["gates"]["originality"]["grade"] for t in teams}
    assert grades == {"halla": "cryptographic", "seorak": "statistical", "baekdu": "statistical",
                      "jiri": "statistical", "taebaek": "declared"}
    assert teams["jiri"]["gates"]["originality"]["override_reason"].startswith("jiri's own checkpoint")
    assert teams["halla"]["gates"]["originality"]["override_reason"] is None
    verified = ok_json(simsa("audit", "verify", "--json", db=db_url))
    assert verified["ok"]
    export = tmp_path / "audit.json"
    ok_json(simsa("audit", "export", "-o", str(export), "--json", db=db_url))
    actions = [e["action"] for e in json.loads(export.read_text(encoding="utf-8"))["entries"]]
    assert actions.count("gate.record") == 5 and actions.count("gate.supersede") == 1


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "malformed JSON"),
    ('{"schema": "simsa.decision/1"}', "lineage result: schema: 'simsa.decision/1' is not"),
    ("[]", "lineage result: top level: expected a JSON object"),
])
def test_gate_from_lineage_refuses_bad_files(content: str, message: str, tmp_path: Path) -> None:
    bad = tmp_path / "lineage.json"
    bad.write_text(content, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    args = ("gate", "from-lineage", str(EXAMPLE), str(bad), "--team", "halla", "--stage", "stage-1")
    one_line_error(simsa(*args, db=db), message)
    as_json = simsa(*args, "--json", db=db)
    assert as_json.returncode == 2 and message in json.loads(as_json.stdout)["error"]


def test_gate_from_lineage_argument_errors(results: dict, tmp_path: Path) -> None:
    good = tmp_path / "r.json"
    good.write_text(json.dumps(results["baekdu"]), encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    base = ("gate", "from-lineage", str(EXAMPLE))
    one_line_error(simsa(*base, str(tmp_path / "missing.json"), "--team", "halla", "--stage", "stage-1", db=db),
                   "missing.json: file not found")
    one_line_error(simsa(*base, str(good), "--team", "nobody", "--stage", "stage-1", db=db),
                   "unknown stage or team 'nobody'")
    one_line_error(simsa(*base, str(good), "--team", "baekdu", "--stage", "stage-1", "--gate", "licence", db=db),
                   "gate 'licence' is of kind licence")
    one_line_error(simsa(*base, str(good), "--team", "baekdu", "--stage", "stage-1", "--override", "maybe", db=db),
                   "--override must be pass or fail")
