"""GGUF checkpoints: the reader against the writer, against gguf's own GGUFWriter/GGUFReader, and hostile files.

Models are small random tensor dicts in Hugging Face naming (llama, qwen3_moe, bert). Hidden sizes of 256 let Q4_K
(256-value blocks) quantise the weights; the bert model's 64-wide rows exercise the F16 fallback instead.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
import safetensors.numpy as stn
from gguf import GGMLQuantizationType as QT

from simsa.errors import CheckpointError
from simsa.lineage.compare.result import compare
from simsa.lineage.compare.sides import Side
from simsa.lineage.formats.checkpoint import Checkpoint
from simsa.lineage.formats.dtypes import round_to_bf16
from simsa.lineage.formats.gguf import GGUFCheckpoint, gguf_name_table, is_gguf, permute_rows, unpermute_index
from simsa.lineage.formats.gguf import reader as gguf_io
from simsa.lineage.model.adapters import map_architecture
from simsa.lineage.model.tokenizer import Vocabulary
from simsa.lineage.model.units import unit_groups
from simsa.lineage.selftest.gguf_quant import pack_scales, quantize_q4_k
from simsa.lineage.selftest.gguf_writer import WRITE_QUANTS, write_gguf
from simsa.lineage.stats.correspondence import SamplingSettings

# --------------------------------------------------------------------------- models


def _values(rng: np.random.Generator, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    out = {}
    for name, shape in shapes.items():
        if "norm" in name.lower() and name.endswith("weight"):
            out[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            out[name] = (0.02 * rng.standard_normal(shape)).astype(np.float32)
    return out


def llama_model(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, Any], list[str]]:
    h, layers, heads, kv, inter, vocab = 256, 2, 4, 2, 512, 300
    hd = h // heads
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (vocab, h), "model.norm.weight": (h,), "lm_head.weight": (vocab, h)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (heads * hd, h), p + "self_attn.k_proj.weight": (kv * hd, h),
            p + "self_attn.v_proj.weight": (kv * hd, h), p + "self_attn.o_proj.weight": (h, heads * hd),
            p + "self_attn.q_proj.bias": (heads * hd,), p + "self_attn.k_proj.bias": (kv * hd,),
            p + "self_attn.v_proj.bias": (kv * hd,),
            p + "mlp.gate_proj.weight": (inter, h), p + "mlp.up_proj.weight": (inter, h),
            p + "mlp.down_proj.weight": (h, inter),
        })
    config = {"model_type": "llama", "hidden_size": h, "num_hidden_layers": layers, "num_attention_heads": heads,
              "num_key_value_heads": kv, "intermediate_size": inter, "vocab_size": vocab,
              "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
              "tie_word_embeddings": False}
    tokens = ["<unk>", "<s>", "</s>"] + [f"\u2581tok{i}" for i in range(vocab - 3)]
    return _values(np.random.default_rng(seed), shapes), config, tokens


def qwen3_moe_model(seed: int = 1) -> tuple[dict[str, np.ndarray], dict[str, Any], list[str]]:
    h, layers, heads, kv, hd, experts, moe_inter, vocab = 256, 2, 4, 2, 64, 4, 256, 300
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, h), "model.norm.weight": (h,)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (heads * hd, h), p + "self_attn.k_proj.weight": (kv * hd, h),
            p + "self_attn.v_proj.weight": (kv * hd, h), p + "self_attn.o_proj.weight": (h, heads * hd),
            p + "self_attn.q_norm.weight": (hd,), p + "self_attn.k_norm.weight": (hd,),
            p + "mlp.gate.weight": (experts, h),
        })
        for e in range(experts):
            q = f"{p}mlp.experts.{e}."
            shapes.update({q + "gate_proj.weight": (moe_inter, h), q + "up_proj.weight": (moe_inter, h),
                           q + "down_proj.weight": (h, moe_inter)})
    config = {"model_type": "qwen3_moe", "hidden_size": h, "num_hidden_layers": layers, "num_attention_heads": heads,
              "num_key_value_heads": kv, "head_dim": hd, "intermediate_size": 768, "moe_intermediate_size": moe_inter,
              "num_experts": experts, "num_experts_per_tok": 2, "vocab_size": vocab, "max_position_embeddings": 256,
              "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True}
    tokens = [f"\u0120w{i}" for i in range(vocab - 2)] + ["<|endoftext|>", "<|im_start|>"]
    return _values(np.random.default_rng(seed), shapes), config, tokens


def bert_model(seed: int = 2) -> tuple[dict[str, np.ndarray], dict[str, Any], list[str]]:
    h, layers, inter, vocab, positions = 64, 2, 128, 300, 64
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (vocab, h), "embeddings.position_embeddings.weight": (positions, h),
        "embeddings.token_type_embeddings.weight": (2, h), "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for m in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            shapes.update({f"{p}{m}.weight": (h, h), f"{p}{m}.bias": (h,)})
        shapes.update({
            p + "attention.output.LayerNorm.weight": (h,), p + "attention.output.LayerNorm.bias": (h,),
            p + "intermediate.dense.weight": (inter, h), p + "intermediate.dense.bias": (inter,),
            p + "output.dense.weight": (h, inter), p + "output.dense.bias": (h,),
            p + "output.LayerNorm.weight": (h,), p + "output.LayerNorm.bias": (h,),
        })
    config = {"model_type": "bert", "hidden_size": h, "num_hidden_layers": layers, "num_attention_heads": 4,
              "intermediate_size": inter, "vocab_size": vocab, "max_position_embeddings": positions,
              "type_vocab_size": 2, "layer_norm_eps": 1e-12}
    words = [f"w{i}" if i % 3 else f"##s{i}" for i in range(vocab - 5)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    return _values(np.random.default_rng(seed), shapes), config, tokens


MODELS = {"llama": llama_model, "qwen3_moe": qwen3_moe_model, "bert": bert_model}
F32_FORCED = ("mlp.gate.weight", "position_embeddings", "token_type_embeddings")


def _written(tmp_path: Path, family: str, quant: str) -> tuple[Path, dict[str, np.ndarray], dict[str, Any], list[str]]:
    tensors, config, tokens = MODELS[family]()
    path = write_gguf(tmp_path / f"{family}-{quant}.gguf", tensors, config, tokens, quant)
    return path, tensors, config, tokens


def _expected(x: np.ndarray, stored: str) -> np.ndarray:
    """What a tensor stored as `stored` decodes to."""
    if stored == "F32":
        return x
    if stored == "F16":
        return x.astype(np.float16).astype(np.float32)
    if stored == "BF16":
        return round_to_bf16(x)
    if stored == "Q8_0":
        return gguf.quants.dequantize(gguf.quants.quantize(x, QT.Q8_0), QT.Q8_0)
    assert stored == "Q4_K"
    return gguf.quants.dequantize(quantize_q4_k(x), QT.Q4_K)


def _stored_type(name: str, shape: tuple[int, ...], quant: str) -> str:
    """llama.cpp's choice: 1-D, norms, routers, position and type embeddings stay F32; rows must fit the blocks."""
    if quant == "F32" or len(shape) <= 1 or any(k in name for k in F32_FORCED):
        return "F32"
    block = {"Q8_0": 32, "Q4_K": 256}.get(quant, 1)
    if shape[-1] % block:
        return "F16"
    return quant


def _as_f16_safetensors(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors cast as an F16 GGUF stores them (1-D and routers stay F32), for a safetensors twin."""
    return {n: x.astype(np.float16) if _stored_type(n, x.shape, "F16") == "F16" else x for n, x in tensors.items()}


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


# --------------------------------------------------------------------------- Q4_K encoder


def test_q4_k_encoder_decodes_with_gguf_within_q4_error() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 1024)).astype(np.float32)
    raw = quantize_q4_k(x)
    assert raw.dtype == np.uint8 and raw.shape == (32, 4 * 144)
    y = gguf.quants.dequantize(raw, QT.Q4_K)
    assert y.shape == x.shape
    assert 0.03 < _rel(y, x) < 0.10  # 4-bit: ~8 % relative error on Gaussian weights
    shifted = x + 3.0  # all positive: the clamped minimum (offset 0) path
    assert _rel(gguf.quants.dequantize(quantize_q4_k(shifted), QT.Q4_K), shifted) < 0.05
    assert not gguf.quants.dequantize(quantize_q4_k(np.zeros((2, 256), np.float32)), QT.Q4_K).any()


def test_q4_k_scale_packing_matches_ggml_layout() -> None:
    rng = np.random.default_rng(4)
    sc, mn = rng.integers(0, 64, (50, 8)), rng.integers(0, 64, (50, 8))
    got_sc, got_mn = gguf.quants.Q4_K.get_scale_min(pack_scales(sc, mn))
    assert (got_sc == sc).all() and (got_mn == mn).all()


def test_q4_k_rejects_rows_that_are_not_whole_blocks() -> None:
    with pytest.raises(ValueError, match="multiple of 256"):
        quantize_q4_k(np.zeros((4, 100), np.float32))


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("quant", WRITE_QUANTS)
@pytest.mark.parametrize("family", sorted(MODELS))
def test_round_trip_names_shapes_values(tmp_path: Path, family: str, quant: str) -> None:
    path, tensors, _, _ = _written(tmp_path, family, quant)
    with GGUFCheckpoint(path) as ckpt:
        assert sorted(ckpt.names()) == sorted(tensors)
        assert ckpt.total_parameters() == sum(v.size for v in tensors.values())
        for name, x in tensors.items():
            assert ckpt.shape(name) == x.shape, name
            stored = _stored_type(name, x.shape, quant)
            assert ckpt.dtype(name) == stored, name
            assert ckpt.scale_name(name) is None
            got = ckpt.read(name)
            assert got.dtype == np.float32 and got.shape == x.shape
            np.testing.assert_array_equal(got, _expected(x, stored), err_msg=name)
            limit = {"F32": 0, "F16": 1e-3, "BF16": 5e-3, "Q8_0": 1e-2, "Q4_K": 0.1}[stored]
            assert _rel(got, x) <= limit, (name, stored, _rel(got, x))


def test_every_quant_type_in_use_was_exercised(tmp_path: Path) -> None:
    path, _, _, _ = _written(tmp_path, "llama", "Q4_K")
    with GGUFCheckpoint(path) as ckpt:
        assert {ckpt.dtype(n) for n in ckpt.names()} == {"Q4_K", "F32"}
        assert ckpt.nbytes("lm_head.weight") == 300 * 144


@pytest.mark.parametrize("quant", ["F32", "Q4_K"])
def test_qk_permutation_is_applied_on_write_and_undone_on_read(tmp_path: Path, quant: str) -> None:
    path, tensors, config, _ = _written(tmp_path, "llama", quant)
    reader = gguf.GGUFReader(path)
    stored = {t.name: gguf.quants.dequantize(t.data, t.tensor_type) for t in reader.tensors}
    q = tensors["model.layers.1.self_attn.q_proj.weight"]
    k = tensors["model.layers.1.self_attn.k_proj.weight"]
    # the file holds llama.cpp's layout (written independently of permute_rows: per head, halves interleaved)
    hd = q.shape[0] // config["num_attention_heads"]
    manual = np.stack([q[h * hd:(h + 1) * hd].reshape(2, hd // 2, -1).transpose(1, 0, 2).reshape(hd, -1)
                       for h in range(config["num_attention_heads"])]).reshape(q.shape)
    np.testing.assert_array_equal(stored["blk.1.attn_q.weight"], _expected(manual, quant))
    assert not np.array_equal(stored["blk.1.attn_q.weight"], _expected(q, quant))
    with GGUFCheckpoint(path) as ckpt:
        np.testing.assert_array_equal(ckpt.read("model.layers.1.self_attn.q_proj.weight"), _expected(q, quant))
        np.testing.assert_array_equal(ckpt.read("model.layers.1.self_attn.k_proj.weight"), _expected(k, quant))
        bias = tensors["model.layers.0.self_attn.k_proj.bias"]
        np.testing.assert_array_equal(ckpt.read("model.layers.0.self_attn.k_proj.bias"), bias)
        assert any("permutation undone" in n for n in ckpt.notes)


def test_permutation_helpers_are_inverse() -> None:
    x = np.arange(24 * 3, dtype=np.float32).reshape(24, 3)
    for heads in (1, 2, 3, 6):
        np.testing.assert_array_equal(permute_rows(x, heads)[unpermute_index(24, heads)], x)


def test_qwen_family_is_not_permuted(tmp_path: Path) -> None:
    path, tensors, _, _ = _written(tmp_path, "qwen3_moe", "F32")
    reader = gguf.GGUFReader(path)
    stored = {t.name: np.asarray(t.data) for t in reader.tensors}
    np.testing.assert_array_equal(stored["blk.0.attn_q.weight"], tensors["model.layers.0.self_attn.q_proj.weight"])
    # experts are stacked [experts, out, in] as llama.cpp stores them
    assert stored["blk.0.ffn_gate_exps.weight"].shape == (4, 256, 256)
    np.testing.assert_array_equal(stored["blk.0.ffn_down_exps.weight"][2],
                                  tensors["model.layers.0.mlp.experts.2.down_proj.weight"])


def test_stacked_transformers5_experts_are_written_like_per_expert_ones(tmp_path: Path) -> None:
    tensors, config, tokens = qwen3_moe_model()
    stacked = {k: v for k, v in tensors.items() if ".experts." not in k}
    for layer in range(2):
        p = f"model.layers.{layer}.mlp.experts"
        gate = np.stack([tensors[f"{p}.{e}.gate_proj.weight"] for e in range(4)])
        up = np.stack([tensors[f"{p}.{e}.up_proj.weight"] for e in range(4)])
        stacked[f"{p}.gate_up_proj"] = np.concatenate([gate, up], axis=1)
        stacked[f"{p}.down_proj"] = np.stack([tensors[f"{p}.{e}.down_proj.weight"] for e in range(4)])
    path = write_gguf(tmp_path / "stacked.gguf", stacked, config, tokens, "F32")
    with GGUFCheckpoint(path) as ckpt:
        assert sorted(ckpt.names()) == sorted(tensors)
        for name, x in tensors.items():
            np.testing.assert_array_equal(ckpt.read(name), x, err_msg=name)


def test_bert_prefix_and_pooler_follow_llama_cpp(tmp_path: Path) -> None:
    tensors, config, tokens = bert_model()
    prefixed = {f"bert.{k}": v for k, v in tensors.items()}
    prefixed["bert.pooler.dense.weight"] = np.ones((64, 64), np.float32)
    prefixed["cls.predictions.bias"] = np.ones(300, np.float32)
    path = write_gguf(tmp_path / "bert.gguf", prefixed, config, tokens, "F16")
    with GGUFCheckpoint(path) as ckpt:
        assert sorted(ckpt.names()) == sorted(tensors)


# --------------------------------------------------------------------------- lazy reads


@pytest.mark.parametrize("quant", ["Q4_K", "Q8_0", "BF16"])
def test_read_index_rows_and_columns_equal_slices_of_read(tmp_path: Path, quant: str) -> None:
    path, _, _, _ = _written(tmp_path, "llama", quant)
    with GGUFCheckpoint(path) as ckpt:
        for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight",
                     "model.layers.0.mlp.down_proj.weight", "model.embed_tokens.weight"):
            full = ckpt.read(name)
            for index in ([3, 0, -1, 7, 7], slice(2, 90, 3), np.array([5, 1], dtype=np.int64), slice(None)):
                rows = np.arange(full.shape[0])[index]
                cols = np.arange(full.shape[1])[index]
                np.testing.assert_array_equal(ckpt.read_index(name, index, axis=0), full[rows], err_msg=name)
                np.testing.assert_array_equal(ckpt.read_index(name, index, axis=1), full[:, cols], err_msg=name)
        with pytest.raises(ValueError, match="read_index needs 2-D"):
            ckpt.read_index("model.norm.weight", [0])
        with pytest.raises(ValueError, match="expert= needs a 3-D"):
            ckpt.read_index("lm_head.weight", [0], expert=0)
        with pytest.raises(IndexError):
            ckpt.read_index("lm_head.weight", [300])
        with pytest.raises(ValueError, match="axis"):
            ckpt.read_index("lm_head.weight", [0], axis=2)


def test_reads_dequantise_only_needed_rows_in_bounded_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _, _, _ = _written(tmp_path, "llama", "Q4_K")
    calls: list[int] = []
    real = gguf.quants.dequantize

    def counting(data: np.ndarray, qtype: QT) -> np.ndarray:
        calls.append(data.shape[0])
        return real(data, qtype)

    monkeypatch.setattr(gguf.quants, "dequantize", counting)
    monkeypatch.setattr(gguf_io, "CHUNK_ELEMENTS", 256 * 16)  # at most 16 rows of 256 per step
    with GGUFCheckpoint(path) as ckpt:
        name = "model.layers.0.self_attn.q_proj.weight"
        rows = ckpt.read_index(name, [200, 3, 4], axis=0)
        assert calls == [3]
        calls.clear()
        cols = ckpt.read_index(name, [7], axis=1)
        assert sum(calls) == 256 and max(calls) <= 16
        full = ckpt.read(name)
    np.testing.assert_array_equal(rows, full[[200, 3, 4]])
    np.testing.assert_array_equal(cols, full[:, [7]])


def test_expert_views_read_only_their_slab(tmp_path: Path) -> None:
    path, tensors, _, _ = _written(tmp_path, "qwen3_moe", "Q4_K")
    with GGUFCheckpoint(path) as ckpt:
        name = "model.layers.1.mlp.experts.3.up_proj.weight"
        assert ckpt.gguf_name(name) == "blk.1.ffn_up_exps.weight"
        assert ckpt.nbytes(name) == 256 * 144
        full = ckpt.read(name)
        np.testing.assert_array_equal(full, _expected(tensors[name], "Q4_K"))
        np.testing.assert_array_equal(ckpt.read_index(name, [0, 255], axis=0), full[[0, 255]])
        np.testing.assert_array_equal(ckpt.read_index(name, [9], axis=1), full[:, [9]])


# --------------------------------------------------------------------------- digests


def test_digests_match_safetensors_copy_of_the_same_values(tmp_path: Path) -> None:
    """An F16 GGUF and an F16 safetensors file of one model digest alike, q/k permutation notwithstanding."""
    path, tensors, _, _ = _written(tmp_path, "llama", "F16")
    st_path = tmp_path / "model.safetensors"
    stn.save_file(_as_f16_safetensors(tensors), str(st_path))
    with GGUFCheckpoint(path) as g, Checkpoint.open(st_path) as s:
        for name in tensors:
            assert g.dtype(name) == s.dtype(name), name
            assert g.digest(name, "exact") == s.digest(name, "exact"), name
            assert g.digest(name, "bf16") == s.digest(name, "bf16"), name
        with pytest.raises(ValueError, match="precision"):
            g.digest("lm_head.weight", "fp8")


def test_bf16_digest_of_quantised_tensor_is_digest_of_its_values(tmp_path: Path) -> None:
    path, _, _, _ = _written(tmp_path, "qwen3_moe", "Q4_K")
    st_path = tmp_path / "values.safetensors"
    with GGUFCheckpoint(path) as g:
        names = ["model.layers.0.mlp.experts.1.gate_proj.weight", "model.embed_tokens.weight", "model.norm.weight"]
        stn.save_file({n: g.read(n) for n in names}, str(st_path))
        with Checkpoint.open(st_path) as s:
            for name in names:
                assert g.digest(name, "bf16") == s.digest(name, "bf16"), name
        assert g.digest(names[0], "exact") != g.digest("model.layers.0.mlp.experts.2.gate_proj.weight", "exact")


# --------------------------------------------------------------------------- roles and config


def _roles(shapes: dict[str, tuple[int, ...]], config: dict[str, Any]) -> tuple[list, dict, list]:
    amap = map_architecture(shapes, config)
    mapped = sorted((t.name, t.role.stack, t.role.kind, t.role.layer, t.role.expert, t.role.detail, t.shape,
                     t.residual_axis, t.unit_range, t.expert_index) for t in amap.tensors)
    return mapped, {k: (v.hidden_size, v.num_layers) for k, v in amap.stacks.items()}, amap.unmapped


@pytest.mark.parametrize("family", sorted(MODELS))
def test_map_architecture_sees_the_same_roles(tmp_path: Path, family: str) -> None:
    path, tensors, config, _ = _written(tmp_path, family, "Q4_K")
    with GGUFCheckpoint(path) as ckpt:
        shapes = {n: ckpt.shape(n) for n in ckpt.names()}
        got = _roles(shapes, ckpt.config)
        assert map_architecture(shapes, ckpt.config).adapter == map_architecture(
            {n: x.shape for n, x in tensors.items()}, config).adapter
    want = _roles({n: x.shape for n, x in tensors.items()}, config)
    assert got == want
    assert not got[2]


@pytest.mark.parametrize("family", sorted(MODELS))
def test_config_from_metadata(tmp_path: Path, family: str) -> None:
    path, _, config, _ = _written(tmp_path, family, "F16")
    with GGUFCheckpoint(path) as ckpt:
        cfg = ckpt.config
        assert ckpt.tokenizer_files == {} and ckpt.files == [path]
    keys = ["model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "vocab_size", "max_position_embeddings", "rms_norm_eps", "layer_norm_eps", "rope_theta", "num_experts",
            "num_experts_per_tok", "moe_intermediate_size", "head_dim", "num_key_value_heads", "tie_word_embeddings",
            "type_vocab_size"]
    for key in keys:
        if key in config:
            assert cfg.get(key) == config[key], key
    assert cfg["gguf"]["architecture"] == {"llama": "llama", "qwen3_moe": "qwen3moe", "bert": "bert"}[family]


# --------------------------------------------------------------------------- vocabulary


@pytest.mark.parametrize("family", sorted(MODELS))
def test_vocabulary_round_trips(tmp_path: Path, family: str) -> None:
    path, _, _, tokens = _written(tmp_path, family, "F32")
    with GGUFCheckpoint(path) as ckpt:
        assert ckpt.vocabulary_tokens() == tokens
        vocab = ckpt.vocabulary()
    assert isinstance(vocab, Vocabulary)
    assert vocab.tokens == {t: i for i, t in enumerate(tokens)}
    if family == "bert":
        stored = gguf.GGUFReader(path).fields["tokenizer.ggml.tokens"].contents()
        assert stored[2:7] == ["[CLS]", "[SEP]", "[MASK]", "s0", "\u2581w1"]  # llama.cpp's phantom-space spelling
        assert vocab.kind == "WordPiece"
        assert {"[CLS]", "[SEP]", "[MASK]"} <= set(vocab.special)


def test_no_tokens_means_no_vocabulary(tmp_path: Path) -> None:
    tensors, config, _ = llama_model()
    path = write_gguf(tmp_path / "notok.gguf", tensors, config, None, "F16")
    with GGUFCheckpoint(path) as ckpt:
        assert ckpt.vocabulary_tokens() is None and ckpt.vocabulary() is None and ckpt.special_tokens == []
        assert ckpt.config["vocab_size"] == 300  # from {arch}.vocab_size


# --------------------------------------------------------------------------- end to end


def _side(label: str, ckpt: Any, vocab: Vocabulary | None = None) -> Side:
    shapes = {n: tuple(ckpt.shape(n)) for n in ckpt.names()}
    amap = map_architecture(shapes, ckpt.config)
    return Side(label, ckpt, amap, unit_groups(amap), vocab)


@pytest.mark.parametrize(("family", "quant", "seed", "verdict"), [
    ("llama", "F16", None, "identical"), ("llama", "Q4_K", None, "derived"), ("llama", "Q4_K", 99, "independent"),
    ("qwen3_moe", "Q8_0", None, "derived"),
])
def test_compare_gguf_candidate_with_safetensors_reference(tmp_path: Path, family: str, quant: str, seed: int | None,
                                                           verdict: str) -> None:
    """The duck-typed checkpoint goes through the whole comparison (Sides built by hand until open_side knows GGUF)."""
    tensors, config, tokens = MODELS[family]()
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    stn.save_file(_as_f16_safetensors(tensors), str(ref_dir / "model.safetensors"))
    (ref_dir / "config.json").write_text(json.dumps(config))
    source = tensors if seed is None else MODELS[family](seed)[0]
    path = write_gguf(tmp_path / "cand.gguf", source, config, tokens, quant)
    settings = SamplingSettings(units=64, ref_units=512, coords=128, draws=8, seed=0)
    with GGUFCheckpoint(path) as cand, Checkpoint.open(ref_dir) as ref:
        result = compare(_side("cand", cand, cand.vocabulary()), _side("ref", ref), settings)
    assert result["verdict"] == verdict, result["rule"]
    if verdict == "identical":
        assert result["identity"]["level"] == "bit"


# --------------------------------------------------------------------------- files written by gguf itself


def _ggml_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute, restated for the test."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def test_reads_a_llama_file_written_directly_with_gguf_writer(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    h, heads, kv, inter, vocab = 256, 4, 2, 512, 64
    hf = {
        "model.embed_tokens.weight": rng.standard_normal((vocab, h)).astype(np.float32),
        "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((h, h)).astype(np.float32),
        "model.layers.0.self_attn.k_proj.weight": rng.standard_normal((kv * 64, h)).astype(np.float32),
        "model.layers.0.self_attn.v_proj.weight": rng.standard_normal((kv * 64, h)).astype(np.float32),
        "model.layers.0.self_attn.o_proj.weight": rng.standard_normal((h, h)).astype(np.float32),
        "model.layers.0.mlp.gate_proj.weight": rng.standard_normal((inter, h)).astype(np.float32),
        "model.layers.0.mlp.up_proj.weight": rng.standard_normal((inter, h)).astype(np.float32),
        "model.layers.0.mlp.down_proj.weight": rng.standard_normal((h, inter)).astype(np.float32),
        "model.layers.0.input_layernorm.weight": rng.standard_normal(h).astype(np.float32),
        "model.layers.0.post_attention_layernorm.weight": rng.standard_normal(h).astype(np.float32),
        "model.norm.weight": rng.standard_normal(h).astype(np.float32),
        "lm_head.weight": rng.standard_normal((vocab, h)).astype(np.float32),
    }
    w = gguf.GGUFWriter(tmp_path / "direct.gguf", "llama")
    w.add_name("direct")
    w.add_context_length(64)
    w.add_embedding_length(h)
    w.add_block_count(1)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(500000.0)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(vocab)])
    w.add_token_types([1] * (vocab - 1) + [3])
    w.add_token_merges(["t 1", "t 2"])
    w.add_tensor("token_embd.weight", hf["model.embed_tokens.weight"].astype(np.float16))
    w.add_tensor("blk.0.attn_q.weight", _ggml_permute(hf["model.layers.0.self_attn.q_proj.weight"], heads))
    w.add_tensor("blk.0.attn_k.weight", _ggml_permute(hf["model.layers.0.self_attn.k_proj.weight"], kv))
    w.add_tensor("blk.0.attn_v.weight", hf["model.layers.0.self_attn.v_proj.weight"])
    w.add_tensor("blk.0.attn_output.weight", hf["model.layers.0.self_attn.o_proj.weight"])
    w.add_tensor("blk.0.ffn_gate.weight", gguf.quants.quantize(hf["model.layers.0.mlp.gate_proj.weight"], QT.Q8_0),
                 raw_dtype=QT.Q8_0)
    w.add_tensor("blk.0.ffn_up.weight", gguf.quants.quantize(hf["model.layers.0.mlp.up_proj.weight"], QT.Q4_0),
                 raw_dtype=QT.Q4_0)
    w.add_tensor("blk.0.ffn_down.weight", gguf.quants.quantize(hf["model.layers.0.mlp.down_proj.weight"], QT.BF16),
                 raw_dtype=QT.BF16)
    w.add_tensor("blk.0.attn_norm.weight", hf["model.layers.0.input_layernorm.weight"])
    w.add_tensor("blk.0.ffn_norm.weight", hf["model.layers.0.post_attention_layernorm.weight"])
    w.add_tensor("output_norm.weight", hf["model.norm.weight"])
    w.add_tensor("output.weight", hf["lm_head.weight"])
    w.add_tensor("rope_freqs.weight", np.ones(32, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    with GGUFCheckpoint(tmp_path / "direct.gguf") as ckpt:
        assert sorted(ckpt.names()) == sorted([*hf, "rope_freqs.weight"])
        assert any("keep their llama.cpp names (e.g. rope_freqs.weight)" in n for n in ckpt.notes)
        for name, x in hf.items():
            assert ckpt.shape(name) == x.shape
        np.testing.assert_array_equal(ckpt.read("model.layers.0.self_attn.q_proj.weight"),
                                      hf["model.layers.0.self_attn.q_proj.weight"])
        np.testing.assert_array_equal(ckpt.read("model.layers.0.self_attn.k_proj.weight"),
                                      hf["model.layers.0.self_attn.k_proj.weight"])
        np.testing.assert_array_equal(ckpt.read("lm_head.weight"), hf["lm_head.weight"])
        np.testing.assert_array_equal(ckpt.read("model.embed_tokens.weight"),
                                      hf["model.embed_tokens.weight"].astype(np.float16).astype(np.float32))
        assert ckpt.dtype("model.layers.0.mlp.up_proj.weight") == "Q4_0"
        assert _rel(ckpt.read("model.layers.0.mlp.gate_proj.weight"), hf["model.layers.0.mlp.gate_proj.weight"]) < 0.01
        assert _rel(ckpt.read("model.layers.0.mlp.up_proj.weight"), hf["model.layers.0.mlp.up_proj.weight"]) < 0.15
        np.testing.assert_array_equal(ckpt.read("model.layers.0.mlp.down_proj.weight"),
                                      round_to_bf16(hf["model.layers.0.mlp.down_proj.weight"]))
        cfg = ckpt.config
        assert cfg["model_type"] == "llama" and cfg["num_key_value_heads"] == kv and cfg["vocab_size"] == vocab
        assert cfg["rope_theta"] == 500000.0 and cfg["rms_norm_eps"] == 1e-5 and cfg["tie_word_embeddings"] is False
        vocab_obj = ckpt.vocabulary()
        assert vocab_obj is not None and vocab_obj.merges == ["t 1", "t 2"] and vocab_obj.kind == "BPE"
        assert ckpt.special_tokens == [f"t{vocab - 1}"]
        # the reader agrees with gguf's own reader on every stored tensor (before the q/k un-permutation)
        reader = gguf.GGUFReader(tmp_path / "direct.gguf")
        for t in reader.tensors:
            if t.name in ("blk.0.attn_q.weight", "blk.0.attn_k.weight"):
                continue
            ours = next(n for n in ckpt.names() if ckpt.gguf_name(n) == t.name)
            np.testing.assert_array_equal(ckpt.read(ours), gguf.quants.dequantize(t.data, t.tensor_type))
        amap = map_architecture({n: ckpt.shape(n) for n in ckpt.names()}, cfg)
        assert amap.unmapped == ["rope_freqs.weight"]


def test_gemma_norm_shift_is_removed_and_nothing_is_permuted(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    q = rng.standard_normal((256, 256)).astype(np.float32)
    gain = (0.1 * rng.standard_normal(256)).astype(np.float32)
    w = gguf.GGUFWriter(tmp_path / "gemma.gguf", "gemma")
    w.add_head_count(4)
    w.add_head_count_kv(1)
    w.add_tensor("blk.0.attn_q.weight", q)
    w.add_tensor("blk.0.attn_norm.weight", gain + 1)  # llama.cpp stores Gemma's (1 + w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with GGUFCheckpoint(tmp_path / "gemma.gguf") as ckpt:
        assert ckpt.config["model_type"] == "gemma"
        np.testing.assert_array_equal(ckpt.read("model.layers.0.self_attn.q_proj.weight"), q)
        np.testing.assert_allclose(ckpt.read("model.layers.0.input_layernorm.weight"), gain, atol=1e-6)
        assert any("+1 removed" in n for n in ckpt.notes)


def test_llama_file_with_experts_reads_as_mixtral(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    gate = rng.standard_normal((2, 64, 32)).astype(np.float32)  # [experts, out, in]
    w = gguf.GGUFWriter(tmp_path / "mixtral.gguf", "llama")
    w.add_embedding_length(32)
    w.add_block_count(1)
    w.add_head_count(2)
    w.add_expert_count(2)
    w.add_expert_used_count(1)
    w.add_tensor("blk.0.ffn_gate_exps.weight", gate)
    w.add_tensor("blk.0.ffn_gate_inp.weight", rng.standard_normal((2, 32)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with GGUFCheckpoint(tmp_path / "mixtral.gguf") as ckpt:
        assert ckpt.config["model_type"] == "mixtral" and ckpt.config["num_local_experts"] == 2
        assert ckpt.names() == ["model.layers.0.block_sparse_moe.experts.0.w1.weight",
                                "model.layers.0.block_sparse_moe.experts.1.w1.weight",
                                "model.layers.0.block_sparse_moe.gate.weight"]
        np.testing.assert_array_equal(ckpt.read("model.layers.0.block_sparse_moe.experts.1.w1.weight"), gate[1])
        amap = map_architecture({n: ckpt.shape(n) for n in ckpt.names()}, ckpt.config)
    assert amap.adapter == "mixtral" and not amap.unmapped
    assert {t.role.kind for t in amap.tensors} == {"moe.expert.gate", "moe.router"}


def test_unknown_architecture_keeps_names_and_reads_3d_and_integer_tensors(tmp_path: Path) -> None:
    stacked = np.arange(4 * 6 * 32, dtype=np.float32).reshape(4, 6, 32)
    w = gguf.GGUFWriter(tmp_path / "other.gguf", "not-an-arch")
    w.add_tensor("blk.0.ffn_gate_exps.weight", stacked)
    w.add_tensor("ids", np.arange(5, dtype=np.int32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with GGUFCheckpoint(tmp_path / "other.gguf") as ckpt:
        assert ckpt.names() == ["blk.0.ffn_gate_exps.weight", "ids"]
        assert any("no dedicated mapping" in n for n in ckpt.notes)
        np.testing.assert_array_equal(ckpt.read("blk.0.ffn_gate_exps.weight"), stacked)
        np.testing.assert_array_equal(ckpt.read_index("blk.0.ffn_gate_exps.weight", [5, 0], expert=2),
                                      stacked[2, [5, 0]])
        np.testing.assert_array_equal(ckpt.read_index("blk.0.ffn_gate_exps.weight", [31], axis=1, expert=3),
                                      stacked[3][:, [31]])
        with pytest.raises(IndexError, match="expert 4"):
            ckpt.read_index("blk.0.ffn_gate_exps.weight", [0], expert=4)
        with pytest.raises(CheckpointError, match="allow_integer"):
            ckpt.read("ids")
        np.testing.assert_array_equal(ckpt.read("ids", allow_integer=True), np.arange(5, dtype=np.float32))
        assert ckpt.digest("ids", "bf16") == ckpt.digest("ids", "exact")
    with pytest.raises(CheckpointError, match="file is closed"):
        ckpt.read("ids", allow_integer=True)


def test_name_table_comes_from_gguf_tables() -> None:
    table = gguf_name_table("qwen3moe")
    assert table["blk.{bid}.attn_q"] == "model.layers.{bid}.self_attn.q_proj"
    assert table["blk.{bid}.attn_q_norm"] == "model.layers.{bid}.self_attn.q_norm"
    assert table["blk.{bid}.ffn_gate_inp"] == "model.layers.{bid}.mlp.gate"
    assert table["output"] == "lm_head" and table["token_embd"] == "model.embed_tokens"
    assert gguf_name_table("llama", expert_count=8)["blk.{bid}.ffn_gate_exps"] == (
        "model.layers.{bid}.block_sparse_moe.experts.w1")
    assert gguf_name_table("phi3")["blk.{bid}.attn_qkv"] == "model.layers.{bid}.self_attn.qkv_proj"
    assert gguf_name_table("gemma2")["blk.{bid}.ffn_norm"] == "model.layers.{bid}.pre_feedforward_layernorm"
    assert gguf_name_table("bert")["blk.{bid}.layer_output_norm"] == "encoder.layer.{bid}.output.LayerNorm"
    assert gguf_name_table("no-such-arch") == {}


# --------------------------------------------------------------------------- hostile files


def _tiny(tmp_path: Path) -> Path:
    """One F32 tensor [2, 256] and a token list, written by gguf's writer."""
    w = gguf.GGUFWriter(tmp_path / "tiny.gguf", "llama")
    w.add_token_list(["a", "b", "c"])
    w.add_tensor("token_embd.weight", np.ones((2, 256), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tmp_path / "tiny.gguf"


def _patched(path: Path, name: str, offset: int, fmt: str, value: int, *more: tuple[int, str, int]) -> Path:
    data = bytearray(path.read_bytes())
    for at, f, v in ((offset, fmt, value), *more):
        struct.pack_into(f, data, at, v)
    out = path.with_name(name)
    out.write_bytes(bytes(data))
    return out


def _tensor_field(data: bytes, field: str) -> int:
    """Byte offset of a field of the tensor entry of token_embd.weight: dims, type or offset."""
    start = data.index(b"token_embd.weight") + len(b"token_embd.weight")
    return {"dims": start + 4, "type": start + 4 + 16, "offset": start + 4 + 16 + 4}[field]


def _error(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        GGUFCheckpoint(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_hostile_headers_fail_with_one_line(tmp_path: Path) -> None:
    good = _tiny(tmp_path)
    data = good.read_bytes()
    with GGUFCheckpoint(good) as ckpt:
        assert ckpt.read("model.embed_tokens.weight").shape == (2, 256)

    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_bytes(b"PK\x03\x04" + bytes(100))
    assert "not a GGUF file" in _error(not_gguf)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    assert "not a GGUF file" in _error(empty)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:40])
    assert "truncated GGUF header" in _error(cut)
    short = tmp_path / "short.gguf"
    short.write_bytes(data[:-100])
    assert "runs past the end of the file" in _error(short)

    assert "version 1 is not supported" in _error(_patched(good, "v1.gguf", 4, "<I", 1))
    assert "version 99 is not supported" in _error(_patched(good, "v99.gguf", 4, "<I", 99))
    assert "big-endian" in _error(_patched(good, "be.gguf", 4, ">I", 3))
    assert "impossible" in _error(_patched(good, "kv.gguf", 16, "<Q", 2**62))
    tokens_count = data.index(b"tokenizer.ggml.tokens") + len(b"tokenizer.ggml.tokens") + 8
    assert "truncated GGUF header" in _error(_patched(good, "arr.gguf", tokens_count, "<Q", 2**60))
    assert "unknown GGML type code 99" in _error(_patched(good, "type.gguf", _tensor_field(data, "type"), "<I", 99))
    assert "whole number of Q4_K blocks" in _error(_patched(
        good, "q4k.gguf", _tensor_field(data, "dims"), "<Q", 32, (_tensor_field(data, "type"), "<I", int(QT.Q4_K))))
    assert "runs past the end" in _error(_patched(good, "off.gguf", _tensor_field(data, "offset"), "<Q", 2**40))
    assert "not a multiple of the alignment" in _error(
        _patched(good, "align.gguf", _tensor_field(data, "offset"), "<Q", 3))
    assert "does not exist" in _error(tmp_path / "missing.gguf")
    with pytest.raises(CheckpointError, match="not a regular file"):
        GGUFCheckpoint(tmp_path)


def test_empty_tensor_with_huge_claimed_dimension_allocates_nothing(tmp_path: Path) -> None:
    good = _tiny(tmp_path)
    at = _tensor_field(good.read_bytes(), "dims")
    with GGUFCheckpoint(_patched(good, "zero.gguf", at, "<Q", 0, (at + 8, "<Q", 2**40))) as ckpt:
        name = "model.embed_tokens.weight"
        assert ckpt.shape(name) == (2**40, 0) and ckpt.total_parameters() == 0
        assert ckpt.read(name).size == 0
        assert ckpt.read_index(name, [5], axis=0).shape == (1, 0)
        assert ckpt.digest(name, "bf16") and ckpt.digest(name, "exact")


def test_undecodable_quant_type_fails_on_read(tmp_path: Path) -> None:
    good = _tiny(tmp_path)
    data = good.read_bytes()
    q8k = _patched(good, "q8k.gguf", _tensor_field(data, "type"), "<I", int(QT.Q8_K))
    with GGUFCheckpoint(q8k) as ckpt:
        assert ckpt.dtype("model.embed_tokens.weight") == "Q8_K"
        with pytest.raises(CheckpointError, match="Q8_K cannot be decoded"):
            ckpt.read("model.embed_tokens.weight")


def _write(path: Path, build: Any) -> Path:
    w = gguf.GGUFWriter(path, "llama")
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _rename(path: Path, old: bytes, new: bytes) -> Path:
    data = path.read_bytes()
    assert len(old) == len(new) and data.count(old) == 1
    out = path.with_name("renamed-" + path.name)
    out.write_bytes(data.replace(old, new))
    return out


def test_split_and_duplicate_entries_are_refused(tmp_path: Path) -> None:
    def split(w: gguf.GGUFWriter) -> None:
        w.add_uint16("split.no", 0)
        w.add_uint16("split.count", 3)
        w.add_tensor("token_embd.weight", np.ones((2, 32), np.float32))

    assert "shard 1 of 3" in _error(_write(tmp_path / "split.gguf", split))

    def two_keys(w: gguf.GGUFWriter) -> None:
        w.add_uint32("test.key_a", 1)
        w.add_uint32("test.key_b", 2)

    assert "metadata key 'test.key_a' appears twice" in _error(
        _rename(_write(tmp_path / "keys.gguf", two_keys), b"test.key_b", b"test.key_a"))

    def two_tensors(w: gguf.GGUFWriter) -> None:
        w.add_tensor("t.a", np.ones(32, np.float32))
        w.add_tensor("t.b", np.ones(32, np.float32))

    assert "tensor 't.a' appears twice" in _error(
        _rename(_write(tmp_path / "tensors.gguf", two_tensors), b"t.b", b"t.a"))

    def bad_alignment(w: gguf.GGUFWriter) -> None:
        w.add_uint32("general.alignment", 24)

    assert "power of two" in _error(_write(tmp_path / "align.gguf", bad_alignment))


def test_corrupted_headers_never_escape_as_other_exceptions(tmp_path: Path) -> None:
    tensors, config, tokens = bert_model()
    small = dict(list(tensors.items())[:8])
    good = write_gguf(tmp_path / "good.gguf", small, config, tokens[:40], "Q8_0").read_bytes()
    header_end = good.index(b"token_embd") + 2000
    rng = np.random.default_rng(0)
    for i in range(300):
        data = bytearray(good)
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(0, header_end))
            data[at] = int(rng.integers(0, 256)) if rng.random() < 0.7 else data[at] ^ (1 << int(rng.integers(0, 8)))
        path = tmp_path / f"m{i % 4}.gguf"
        path.write_bytes(bytes(data))
        try:
            with GGUFCheckpoint(path) as ckpt:
                assert isinstance(ckpt.config, dict) and isinstance(ckpt.notes, list)
                ckpt.vocabulary()
                for name in ckpt.names():
                    ckpt.read(name, allow_integer=True)
                    ckpt.digest(name, "exact")
                    ckpt.digest(name, "bf16")
        except CheckpointError as exc:
            assert "\n" not in str(exc)


def test_is_gguf(tmp_path: Path) -> None:
    good = _tiny(tmp_path)
    plain = tmp_path / "model.bin"
    plain.write_bytes(good.read_bytes())
    other = tmp_path / "x.safetensors"
    other.write_bytes(b"{}")
    assert is_gguf(good) and is_gguf(plain) and not is_gguf(other) and not is_gguf(tmp_path)
