"""The lineage zoo must really be what its manifest says, or the validity numbers built on it mean nothing.

These tests check the zoo itself (files, training, function-preserving permutations, dtypes,
caching), not the lineage test that is measured with it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer, PreTrainedModel

from lineage_zoo import COMPONENTS, LAYERS, SEEDS, ZOO_FILE, Zoo, build_zoo, zoo_root

ALL_DERIVATIONS = {
    "fine-tuned",
    "continued-pretraining",
    "permuted",
    "layer-dropped",
    "partial-reinit",
    "bf16-cast",
    "embeddings-reused",
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    """Built once; other fixtures calling build_zoo(zoo_root(basetemp)) reuse this build."""
    return build_zoo(zoo_root(tmp_path_factory.getbasetemp()))


def _load(zoo: Zoo, name: str) -> PreTrainedModel:
    auto = AutoModelForMaskedLM if zoo.info[name]["family"] == "bert" else AutoModelForCausalLM
    model = auto.from_pretrained(zoo.models[name])
    model.eval()
    return model


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(path / "model.safetensors", "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a mapping


def test_manifest_lists_hard_negatives_and_derivations(zoo: Zoo) -> None:
    negatives = zoo.negatives()
    assert len(negatives) >= 20
    for family, n in SEEDS.items():
        assert sum(p.family == family for p in negatives) == n * (n - 1) // 2
    for family in SEEDS:
        derivations = {p.derivation for p in zoo.positives() if p.family == family}
        assert derivations == ALL_DERIVATIONS, family
    names = [p.name for p in zoo.pairs]
    assert len(names) == len(set(names))
    for p in zoo.pairs:
        assert p.candidate in zoo.models and p.reference in zoo.models
        assert zoo.info[p.candidate]["family"] == zoo.info[p.reference]["family"] == p.family
        assert set(p.expect) == {"layer_map", "new_layers", "derived_components", "independent_components"}
        cand_layers, ref_layers = zoo.info[p.candidate]["layers"], zoo.info[p.reference]["layers"]
        assert all(0 <= c < cand_layers and 0 <= r < ref_layers for c, r in p.expect["layer_map"])
        assert all(0 <= c < cand_layers for c in p.expect["new_layers"])
        comps = set(p.expect["derived_components"]) | set(p.expect["independent_components"])
        assert comps <= set(COMPONENTS[p.family])
        assert not set(p.expect["derived_components"]) & set(p.expect["independent_components"])
        if p.kind == "negative":
            assert p.derivation == "seed" and not p.expect["derived_components"]
    on_disk = json.loads((zoo.root / ZOO_FILE).read_text())
    assert on_disk["pairs"] == [asdict(p) for p in zoo.pairs]
    drop = next(p for p in zoo.pairs if p.family == "llama" and p.derivation == "layer-dropped")
    assert drop.expect["layer_map"] == [[0, 0], [1, 1], [2, 3]]


def test_every_model_dir_loads_with_shared_tokenizer(zoo: Zoo) -> None:
    tokenizer_bytes = {(path / "tokenizer.json").read_bytes() for path in zoo.models.values()}
    assert len(tokenizer_bytes) == 1, "the whole zoo must share one tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(next(iter(zoo.models.values())))
    assert tokenizer.mask_token == "[MASK]" and tokenizer.eos_token == "</s>"
    for name, path in zoo.models.items():
        for file in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"):
            assert (path / file).is_file(), f"{name}: {file} missing"
        config = AutoConfig.from_pretrained(path)
        assert config.vocab_size == len(tokenizer)
        model = _load(zoo, name)
        assert type(model).__name__ == zoo.info[name]["architecture"]
        assert model.config.num_hidden_layers == zoo.info[name]["layers"]
        if zoo.info[name]["family"] != "bert":
            assert not model.config.tie_word_embeddings


def test_training_lowered_the_loss(zoo: Zoo) -> None:
    for name, meta in zoo.info.items():
        for run in meta["training"]:
            margin = 1.0 if meta["derivation"] in ("base", "embeddings-reused") else 0.0
            assert run["loss_end"] < run["loss_start"] - margin, (name, run)
        if meta["derivation"] in ("base", "embeddings-reused"):
            assert meta["training"], name


@torch.no_grad()
def test_permuted_models_compute_the_parents_function(zoo: Zoo) -> None:
    ids = torch.randint(7, 500, (2, 32), generator=torch.Generator().manual_seed(0))
    for p in zoo.pairs:
        if p.derivation != "permuted":
            continue
        parent, child = _load(zoo, p.reference), _load(zoo, p.candidate)
        torch.testing.assert_close(child(input_ids=ids).logits, parent(input_ids=ids).logits, atol=1e-4, rtol=0)
        moved = [k for k, v in parent.state_dict().items() if not torch.equal(v, child.state_dict()[k])]
        assert any(".0." in k for k in moved) and any(f".{LAYERS - 1}." in k for k in moved), p.name


def test_layer_dropped_models_have_one_layer_fewer(zoo: Zoo) -> None:
    for p in zoo.pairs:
        if p.derivation != "layer-dropped":
            continue
        assert zoo.info[p.candidate]["layers"] == zoo.info[p.reference]["layers"] - 1 == LAYERS - 1
        keys = _tensors(zoo.models[p.candidate]).keys()
        assert not any(f"layers.{LAYERS - 1}." in k or f"layer.{LAYERS - 1}." in k for k in keys)


def test_bf16_cast_is_the_parent_rounded(zoo: Zoo) -> None:
    for p in zoo.pairs:
        if p.derivation != "bf16-cast":
            continue
        assert p.kind == "identical"
        cast, parent = _tensors(zoo.models[p.candidate]), _tensors(zoo.models[p.reference])
        assert cast.keys() == parent.keys()
        for key, tensor in cast.items():
            assert tensor.dtype == torch.bfloat16, key
            assert torch.equal(tensor, parent[key].to(torch.bfloat16)), key
        assert json.loads((zoo.models[p.candidate] / "config.json").read_text())["dtype"] == "bfloat16"


def _relative_change(child: dict[str, torch.Tensor], parent: dict[str, torch.Tensor], layer: int) -> float:
    """Mean ||child - parent|| / ||parent|| over one layer's matrices (norm vectors all start at one)."""
    keys = [k for k in parent if (f"layers.{layer}." in k or f"layer.{layer}." in k) and parent[k].dim() == 2]
    return sum(float((child[k] - parent[k]).norm() / parent[k].norm()) for k in keys) / len(keys)


def test_partial_reinit_replaced_only_its_layer(zoo: Zoo) -> None:
    """The re-initialised layer must be far from the parent, the kept layers close to it."""
    for p in zoo.pairs:
        if p.derivation != "partial-reinit":
            continue
        child, parent = _tensors(zoo.models[p.candidate]), _tensors(zoo.models[p.reference])
        (new_layer,) = p.expect["new_layers"]
        assert _relative_change(child, parent, new_layer) > 0.8, p.name  # independent weights give about 1.4
        for cand, _ in p.expect["layer_map"]:
            assert _relative_change(child, parent, cand) < 0.5, (p.name, cand)  # kept layers move about 0.2


def test_second_build_reuses_the_cache(zoo: Zoo) -> None:
    stamp = (zoo.root / ZOO_FILE).stat().st_mtime_ns
    messages: list[str] = []
    t0 = time.perf_counter()
    again = build_zoo(zoo.root, progress=messages.append)
    assert time.perf_counter() - t0 < 5.0
    assert (zoo.root / ZOO_FILE).stat().st_mtime_ns == stamp
    assert all("steps" not in m for m in messages)
    assert again.models == zoo.models
    assert again.pairs == zoo.pairs
