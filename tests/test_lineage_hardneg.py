"""The hard-negative builder and the calibration bench's table functions, on small real inputs.

The calibration numbers the validity card quotes are only as good as the models behind them (independently
initialised under the stated schemes, trained, openable by the lineage test) and the arithmetic that turns p-values
into rates, intervals and tail ratios; both are checked here on a tiny build.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

import lineage_zoo as lz
from lineage_hardneg import (
    HARDNEG_FILE,
    INITS,
    MODEL_FILE,
    HardNegZoo,
    build_hardneg,
    initialise,
    model_config,
)
from simsa.errors import InputError
from simsa.lineage.compare.result import compare_paths

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("llama", "moe", "bert")
PER_GROUP = 4
STEPS = 8


@pytest.fixture(scope="module")
def bench():
    path = ROOT / "benchmarks" / "lineage_calibration.py"
    spec = importlib.util.spec_from_file_location("lineage_calibration_bench", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[HardNegZoo, list[tuple[str, int, int]]]:
    calls: list[tuple[str, int, int]] = []
    zoo = build_hardneg(tmp_path_factory.mktemp("hardneg"), families=FAMILIES, widths=(64,),
                        models_per_group=PER_GROUP, steps=STEPS, progress=lambda m, d, t: calls.append((m, d, t)))
    return zoo, calls


@pytest.fixture(scope="module")
def results(tiny: tuple[HardNegZoo, list]) -> list[tuple[object, dict]]:
    zoo, _ = tiny
    picked = [next(p for p in zoo.pairs if p.family == f) for f in FAMILIES]
    return [(p, compare_paths(zoo.models[p.candidate], zoo.models[p.reference])) for p in picked]


def test_builds_every_within_group_pair_of_trained_independent_models(tiny: tuple[HardNegZoo, list]) -> None:
    zoo, calls = tiny
    assert len(zoo.models) == len(FAMILIES) * PER_GROUP
    assert len(zoo.pairs) == len(FAMILIES) * math.comb(PER_GROUP, 2)
    assert calls[-1][1:] == (len(zoo.models), len(zoo.models))
    for pair in zoo.pairs:
        a, b = zoo.info[pair.candidate], zoo.info[pair.reference]
        assert pair.candidate != pair.reference
        assert a["family"] == b["family"] == pair.family and a["width"] == b["width"] == pair.width == 64
        assert a["seed"] != b["seed"]
    for name, path in zoo.models.items():
        meta = zoo.info[name]
        for f in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", MODEL_FILE):
            assert (path / f).is_file(), (name, f)
        assert json.loads((path / "config.json").read_text())["hidden_size"] == 64
        assert meta["training"]["steps"] == STEPS
        assert meta["training"]["loss_end"] < meta["training"]["loss_start"]
    for family in FAMILIES:
        inits = [m["init"] for m in zoo.info.values() if m["family"] == family]
        assert inits == list(INITS[:PER_GROUP])
    manifest = json.loads((zoo.root / HARDNEG_FILE).read_text())
    assert manifest["recipe"] == zoo.recipe and len(manifest["pairs"]) == len(zoo.pairs)


def test_reuses_the_build_and_its_models(tiny: tuple[HardNegZoo, list]) -> None:
    zoo, _ = tiny
    calls: list[str] = []
    again = build_hardneg(zoo.root, families=FAMILIES, widths=(64,), models_per_group=PER_GROUP, steps=STEPS,
                          progress=lambda m, d, t: calls.append(m))
    assert "reusing" in calls[0] and again.info == zoo.info
    # Another recipe is not the cached one, but models it shares are reused rather than trained again.
    calls.clear()
    subset = build_hardneg(zoo.root, families=("llama",), widths=(64,), models_per_group=3, steps=STEPS,
                           progress=lambda m, d, t: calls.append(m))
    assert not any("reusing" in m for m in calls)
    assert sum("reused" in m for m in calls) == 3 and len(subset.pairs) == 3
    for name, meta in subset.info.items():
        assert meta["training"] == zoo.info[name]["training"]
    with pytest.raises(InputError, match="at least 2 models"):
        build_hardneg(zoo.root, models_per_group=1)
    with pytest.raises(InputError, match="unknown families"):
        build_hardneg(zoo.root, families=("gpt",))


def test_initialisation_schemes_are_what_they_say() -> None:
    sp = lz.specials_of(lz._train_tokenizer(lz.corpus_sentences()["A"]["train"][:2000]))
    config = model_config("llama", sp, 128)
    assert (config.hidden_size, config.head_dim, config.intermediate_size) == (128, 32, 256)
    with pytest.raises(InputError, match="not a multiple"):
        model_config("llama", sp, 66)

    def fresh(family: str, scheme: str, seed: int) -> dict[str, torch.Tensor]:
        model = lz._MODEL_CLASSES[family](model_config(family, sp, 128))
        initialise(model, scheme, seed)
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    q = "model.layers.0.self_attn.q_proj.weight"
    normal, uniform, trunc, mup = (fresh("llama", s, 1) for s in ("normal", "uniform", "truncated_normal", "mup"))
    assert abs(float(normal[q].std()) - 0.02) < 0.001
    assert abs(float(uniform[q].std()) - 0.02) < 0.001 and float(uniform[q].abs().max()) <= math.sqrt(3) * 0.02
    assert float(trunc[q].abs().max()) <= 0.04 + 1e-6 and float(trunc[q].std()) < 0.02
    assert abs(float(mup[q].std()) - 1 / math.sqrt(128)) < 0.005
    assert abs(float(mup["lm_head.weight"].std()) - 1 / 128) < 0.0005
    assert abs(float(mup["model.embed_tokens.weight"].std()) - 0.02 * math.sqrt(0.5)) < 0.001
    assert float(normal["model.embed_tokens.weight"][sp.pad].abs().max()) == 0.0
    assert torch.equal(fresh("llama", "normal", 1)[q], normal[q])
    assert not torch.equal(fresh("llama", "normal", 2)[q], normal[q])
    experts = fresh("moe", "mup", 3)["model.layers.0.mlp.experts.down_proj"]  # (experts, hidden, moe intermediate)
    assert abs(float(experts.std()) - 1 / math.sqrt(experts.shape[-1])) < 0.01


def test_clopper_pearson_matches_the_exact_interval(bench) -> None:
    for k, n in [(0, 10), (5, 10), (10, 10), (3, 216), (0, 216)]:
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert bench.clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert bench.clopper_pearson(0, 10)[1] == pytest.approx(1 - 0.025 ** 0.1)
    with pytest.raises(ValueError):
        bench.clopper_pearson(3, 2)


def test_false_positive_table_on_real_and_reference_pvalues(bench, results: list[tuple[object, dict]]) -> None:
    pvals = bench.collect_pvalues([r for _, r in results])
    assert {"overall", "embedding", "attention", "mlp", "output_head", "experts", "router"} <= set(pvals)
    assert len(pvals["overall"]) == 3 and len(pvals["experts"]) == 1 and len(pvals["mlp"]) == 2
    rows = bench.false_positive_table(pvals)
    assert len(rows) == 3 * len(pvals)
    for row in rows:
        values = np.asarray(pvals[row.label])
        assert row.n == values.size and row.k == int(np.sum(values <= math.log10(row.alpha)))
        assert row.low <= row.rate <= row.high
    # Uniform p-values are calibrated at every α; p-values that are always tiny are not.
    uniform = np.log10(np.random.default_rng(5).uniform(size=4000)).tolist()
    table = bench.false_positive_table({"uniform": uniform, "tiny": [-8.0] * 300})
    assert all(r.ok for r in table if r.label == "uniform")
    assert not any(r.ok for r in table if r.label == "tiny")
    counts = bench.verdict_counts([r for _, r in results])
    assert counts.n == 3 and counts.derived + counts.inconclusive + counts.independent == 3
    doc = bench.calibration_document({"dense decoder": ([results[0][1]], 4), "moe": ([results[1][1]], 4),
                                      "encoder": ([results[2][1]], 4)}, [results[0][1]], "python bench", "now")
    assert set(doc["families"]) == {"dense decoder", "moe", "encoder", "all"}
    assert doc["families"]["all"]["hard_negatives"] == 3 and doc["families"]["all"]["models"] == 12
    assert set(doc["families"]["all"]["alpha"]) == {"0.05", "0.01", "0.001"}
    assert doc["adversarial_nulls"]["pairs"] == 1 and doc["schema"] == bench.SCHEMA


def test_tail_draws_reproduce_the_tests_statistic(bench, tiny: tuple[HardNegZoo, list],
                                                  results: list[tuple[object, dict]]) -> None:
    zoo, _ = tiny
    pair, result = results[0]
    emb = next(c for c in result["components"] if c["name"] == "text.embedding")
    sample = bench.tail_sample(zoo.models[pair.candidate], zoo.models[pair.reference], "text.embedding", None,
                               pair=pair.name, draws=10 * 24, chunk=100)
    assert sample.null.shape == (240,) and sample.coords == 64
    # Same units, same coordinates: the observed statistic is the one the comparison reported.
    assert sample.observed == pytest.approx(emb["pairs"][0]["statistic"], abs=2e-5)
    layered = bench.tail_sample(zoo.models[pair.candidate], zoo.models[pair.reference], "text.attention", 1,
                                draws=48, chunk=20)
    assert layered.null.size == 48 and set(layered.groups) >= {"attn.q", "attn.o"}
    rows = bench.tail_agreement(sample.null)
    assert [r.q for r in rows] == list(bench.TAIL_QS) and all(r.subsets == 10 for r in rows)


def test_tail_agreement_is_exact_for_gaussian_draws_and_flags_heavy_tails(bench) -> None:
    rng = np.random.default_rng(11)
    gauss = bench.tail_agreement(rng.standard_normal(24 * 800), qs=(1e-2,))
    assert 0.8 < gauss[0].ratio < 1.25
    heavy = bench.tail_agreement(rng.standard_t(2, 24 * 800), qs=(1e-3,))
    assert heavy[0].ratio > 2
    plan = bench.tail_plan([p for p in build_pairs()], 12)
    assert {p.family for p, _, _ in plan} == set(FAMILIES)
    assert len({(p.family, c) for p, c, _ in plan}) == 12


def build_pairs() -> list:
    from lineage_hardneg import group_pairs, model_names

    return [p for f in FAMILIES for w in (64, 128) for p in group_pairs(f, w, [n for n, _ in model_names(f, w, 9)])]
