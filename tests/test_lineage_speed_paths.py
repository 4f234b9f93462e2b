"""The fast paths of the unit test keep its answer: a deep pair's layer screen and full test share one preparation
of each candidate layer, and the screen still picks the pairs its documented rule picks.

Models are small random BERT-shaped encoders written here (6 layers, so 36 layer pairs: more than
``FULL_GRID_PAIRS``, which turns the screen on): a reference, a derived candidate (the reference plus noise, MLP
neurons permuted) and an independent one.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simsa.lineage.compare import evidence
from simsa.lineage.compare.evidence import FULL_GRID_PAIRS, SCREEN_KEEP, Prepared
from simsa.lineage.compare.result import compare
from simsa.lineage.compare.sides import open_side
from simsa.lineage.formats.safetensors_write import TensorSpec, write_safetensors
from simsa.lineage.stats.correspondence import SamplingSettings

HIDDEN, FFN, LAYERS, VOCAB = 64, 128, 6, 300
SETTINGS = SamplingSettings(units=48, ref_units=512, coords=64, draws=8)


def _shapes() -> dict[str, tuple[int, ...]]:
    e = "bert.embeddings."
    out: dict[str, tuple[int, ...]] = {e + "word_embeddings.weight": (VOCAB, HIDDEN),
                                       e + "position_embeddings.weight": (64, HIDDEN),
                                       e + "LayerNorm.weight": (HIDDEN,), e + "LayerNorm.bias": (HIDDEN,)}
    for i in range(LAYERS):
        p = f"bert.encoder.layer.{i}."
        for proj in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            out[p + proj + ".weight"] = (HIDDEN, HIDDEN)
        out[p + "intermediate.dense.weight"] = (FFN, HIDDEN)
        out[p + "output.dense.weight"] = (HIDDEN, FFN)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            out[p + norm + ".weight"] = (HIDDEN,)
    return out


def _write(root: Path, model: str) -> Path:
    shapes = _shapes()
    seed = 1 if model == "independent" else 0

    def produce(spec: TensorSpec) -> np.ndarray:
        name, shape = spec.name, spec.shape
        x = np.random.default_rng([seed, zlib.crc32(name.encode())]).standard_normal(shape).astype(np.float32)
        if len(shape) == 1:
            return (1.0 + 0.1 * x).astype(np.float32)
        x *= 0.02
        if model == "derived":
            x += 0.01 * np.random.default_rng([7, zlib.crc32(name.encode())]).standard_normal(shape).astype(np.float32)
            if ".intermediate.dense" in name or (".output.dense" in name and ".attention." not in name):
                layer = name.split(".layer.")[1].split(".")[0]
                perm = np.random.default_rng(zlib.crc32(layer.encode())).permutation(FFN)
                x = x[perm] if shape[0] == FFN else x[:, perm]
        return x

    out = root / model
    out.mkdir(parents=True)
    write_safetensors(out / "model.safetensors", [TensorSpec(n, "F32", s) for n, s in shapes.items()], produce)
    config = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": HIDDEN, "intermediate_size": FFN,
              "num_hidden_layers": LAYERS, "num_attention_heads": 4, "max_position_embeddings": 64,
              "vocab_size": VOCAB, "hidden_act": "gelu"}
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("speed-paths")
    return {m: _write(root, m) for m in ("reference", "derived", "independent")}


def _component(result: dict, name: str) -> dict:
    return next(c for c in result["components"] if c["name"] == name)


def test_the_pair_is_deep_enough_to_be_screened() -> None:
    assert LAYERS * LAYERS > FULL_GRID_PAIRS


def test_each_candidate_layer_is_prepared_once_with_the_screen_on(models: dict[str, Path],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With the screen on, candidate preparations equal those of the unscreened full grid (one per layer group)."""
    calls = {"n": 0}
    real = evidence.prepare_candidate

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(evidence, "prepare_candidate", counting)
    screened = compare(open_side(models["derived"]), open_side(models["reference"]), SETTINGS)
    with_screen = calls["n"]
    calls["n"] = 0
    monkeypatch.setattr(evidence, "FULL_GRID_PAIRS", LAYERS * LAYERS)  # every pair gets the full test, no screen
    full = compare(open_side(models["derived"]), open_side(models["reference"]), SETTINGS)
    assert with_screen == calls["n"] > 0
    # The screen only drops pairs: every pair it kept has exactly the full grid's evidence.
    for name in ("text.attention", "text.mlp"):
        kept, every = _component(screened, name)["evidence"], _component(full, name)["evidence"]
        assert sum(v is not None for row in kept for v in row) < LAYERS * LAYERS
        for row_k, row_f in zip(kept, every, strict=True):
            for k, f in zip(row_k, row_f, strict=True):
                assert k is None or k == f


def test_the_screen_keeps_the_best_pairs_of_each_row_and_the_diagonal(models: dict[str, Path]) -> None:
    """The pairs tested are those the documented rule picks from the full grid of screen values."""
    cand, ref = open_side(models["derived"]), open_side(models["reference"])
    result = compare(cand, ref, SETTINGS)
    prep = Prepared(open_side(models["derived"]), open_side(models["reference"]), SETTINGS)
    for name in ("text.attention", "text.mlp"):
        cc, rc = prep.cand.comps[name], prep.ref.comps[name]
        layers = sorted(k for k in cc.layers if k is not None)
        grid = np.array([[prep.screen(name, "text", HIDDEN, a, cc.layers[a], b, rc.layers[b]) for b in layers]
                         for a in layers])
        tested = _component(result, name)["evidence"]
        for i in range(len(layers)):
            want = {int(j) for j in np.argsort(-grid[i])[:SCREEN_KEEP]} | {i}
            assert {j for j, v in enumerate(tested[i]) if v is not None} == want


def test_verdicts_on_the_deep_pair(models: dict[str, Path]) -> None:
    derived = compare(open_side(models["derived"]), open_side(models["reference"]), SETTINGS)
    independent = compare(open_side(models["independent"]), open_side(models["reference"]), SETTINGS)
    assert derived["verdict"] == "derived"
    assert independent["verdict"] == "independent"
    assert derived["log10_p"] < -6 < independent["log10_p"]
