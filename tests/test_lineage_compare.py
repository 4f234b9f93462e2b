"""compare() paths the zoo does not reach: deep models (screened layer grid), sharded and single-file checkpoints,
candidates built from parts of the reference, tied heads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from transformers import LlamaConfig, LlamaForCausalLM

from simsa.lineage.compare.result import compare_paths
from simsa.lineage.stats.correspondence import SamplingSettings

LAYERS = 12
HIDDEN = 64


def _llama(seed: int, layers: int = LAYERS) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=256, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    return LlamaForCausalLM(cfg)


@pytest.fixture(scope="module")
def deep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 12-layer parent, an unrelated model, and a child that dropped layers 3 and 7 and was perturbed."""
    root = tmp_path_factory.mktemp("deep")
    parent, other = _llama(0), _llama(1)
    child = _llama(0, LAYERS - 2)
    keep = [i for i in range(LAYERS) if i not in (3, 7)]
    sd = parent.state_dict()
    new = {}
    for key in child.state_dict():
        src = key
        if ".layers." in key:
            head, rest = key.split(".layers.", 1)
            idx, tail = rest.split(".", 1)
            src = f"{head}.layers.{keep[int(idx)]}.{tail}"
        noise = torch.randn_like(sd[src]) * sd[src].std() * 0.3 if sd[src].ndim > 1 else 0
        new[key] = sd[src] + noise
    child.load_state_dict(new)
    paths = {}
    for name, model in (("parent", parent), ("other", other), ("child", child)):
        model.save_pretrained(root / name)
        paths[name] = root / name
    return paths


def test_deep_models_are_screened_and_still_localised(deep: dict[str, Path]) -> None:
    result = compare_paths(deep["child"], deep["parent"], settings=SamplingSettings(draws=16))
    assert result["verdict"] == "derived" and result["log10_p"] < -10
    mlp = next(c for c in result["components"] if c["name"] == "text.mlp")
    assert mlp["pairs_tested"] < (LAYERS - 2) * LAYERS  # the grid was screened
    assert any(v is None for row in mlp["evidence"] for v in row)
    keep = [i for i in range(LAYERS) if i not in (3, 7)]
    assert [[a, b] for a, b, _ in mlp["layer_map"]] == [[i, k] for i, k in enumerate(keep)]
    json.dumps(result)  # no NaN or inf leaks into the JSON


def test_unrelated_deep_models_stay_independent(deep: dict[str, Path]) -> None:
    result = compare_paths(deep["other"], deep["parent"], settings=SamplingSettings(draws=16))
    assert result["verdict"] in ("independent", "inconclusive")
    assert all(c["verdict"] not in ("derived", "identical") for c in result["components"])


def test_single_file_and_sharded_copies_are_identical(deep: dict[str, Path], tmp_path: Path) -> None:
    """The same weights in two packagings: one .safetensors file vs a sharded directory."""
    from safetensors import safe_open

    src = deep["parent"] / "model.safetensors"
    with safe_open(str(src), "np") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    names = sorted(tensors)
    shard_dir = tmp_path / "sharded"
    shard_dir.mkdir()
    weight_map = {}
    for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2:])):
        fname = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({k: tensors[k] for k in part}, str(shard_dir / fname))
        weight_map.update(dict.fromkeys(part, fname))
    (shard_dir / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (shard_dir / "config.json").write_text((deep["parent"] / "config.json").read_text())
    result = compare_paths(shard_dir, src, settings=SamplingSettings(draws=8))
    assert result["verdict"] == "identical" and result["identity"]["level"] == "bit"


def test_part_of_the_reference_is_derived_not_identical(deep: dict[str, Path], tmp_path: Path) -> None:
    """Only the first six layers of the parent, copied bit for bit: derived, with identical tensors named."""
    from safetensors import safe_open

    with safe_open(str(deep["parent"] / "model.safetensors"), "np") as f:
        part = {k: f.get_tensor(k) for k in f.keys()  # noqa: SIM118
                if ".layers." not in k or int(k.split(".layers.")[1].split(".")[0]) < 6}
    out = tmp_path / "half"
    out.mkdir()
    save_file(part, str(out / "model.safetensors"))
    cfg = json.loads((deep["parent"] / "config.json").read_text())
    cfg["num_hidden_layers"] = 6
    (out / "config.json").write_text(json.dumps(cfg))
    result = compare_paths(out, deep["parent"], settings=SamplingSettings(draws=8))
    assert result["verdict"] == "derived"
    mlp = next(c for c in result["components"] if c["name"] == "text.mlp")
    assert mlp["verdict"] == "derived" and mlp["identity"]["identical"] == mlp["identity"]["tensors"]
    assert result["identity"]["bit_identical"] == len(part)


def test_constant_tensors_are_not_evidence(tmp_path: Path) -> None:
    """Two unrelated files whose only equal tensors are all-ones gains must not be called derived."""
    for name, seed in (("a", 1), ("b", 2)):
        r = np.random.default_rng(seed)
        save_file({"model.embed_tokens.weight": r.normal(size=(300, 64)).astype(np.float32),
                   "model.layers.0.input_layernorm.weight": np.ones(64, dtype=np.float32),
                   "model.layers.0.mlp.up_proj.weight": r.normal(size=(128, 64)).astype(np.float32),
                   "model.layers.0.mlp.down_proj.weight": r.normal(size=(64, 128)).astype(np.float32)},
                  str(tmp_path / f"{name}.safetensors"))
    result = compare_paths(tmp_path / "a.safetensors", tmp_path / "b.safetensors", settings=SamplingSettings(draws=8))
    assert result["identity"]["identical"] == 1 and result["identity"]["identical_informative"] == 0
    assert result["verdict"] != "derived"


def test_non_finite_weights_do_not_break_the_test(deep: dict[str, Path], tmp_path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(deep["parent"] / "model.safetensors"), "np") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    bad = tensors["model.layers.0.mlp.up_proj.weight"].copy()
    bad[0, :5] = [np.nan, np.inf, -np.inf, np.nan, 1e38]
    tensors["model.layers.0.mlp.up_proj.weight"] = bad
    out = tmp_path / "nan"
    out.mkdir()
    save_file(tensors, str(out / "model.safetensors"))
    (out / "config.json").write_text((deep["parent"] / "config.json").read_text())
    result = compare_paths(out, deep["parent"], settings=SamplingSettings(draws=8))
    assert result["verdict"] == "derived"
    json.dumps(result, allow_nan=False)


def test_dtype_cast_of_a_mid_sized_tensor_is_found(tmp_path: Path) -> None:
    """3.2M elements: 13 MB in F32 but 6.5 MB in BF16 — both sides must take the same identity path."""
    from safetensors.torch import save_file as save_torch

    weights = {"model.embed_tokens.weight": torch.randn(1800, 1800),
               "model.layers.0.mlp.up_proj.weight": torch.randn(256, 1800)}
    save_torch(weights, str(tmp_path / "f32.safetensors"))
    save_torch({k: v.to(torch.bfloat16) for k, v in weights.items()}, str(tmp_path / "bf16.safetensors"))
    result = compare_paths(tmp_path / "bf16.safetensors", tmp_path / "f32.safetensors",
                           settings=SamplingSettings(draws=8, coords=64))
    assert result["verdict"] == "identical" and result["identity"]["level"] == "bf16"
