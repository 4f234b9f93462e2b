"""Architecture adapters map real checkpoint layouts onto canonical roles.

Where transformers has the model class, the tensor names come from a tiny model: ``save_pretrained`` gives the
on-disk layout (what the lineage tool reads: per-expert MoE tensors, legacy ViT names) and a meta-device
``state_dict`` the transformers-5 in-memory layout (stacked experts, ``model.language_model``). Elsewhere the names
are written by hand after published checkpoints.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
from collections import Counter
from pathlib import Path

import pytest

from simsa.lineage.model.adapters import (
    GENERIC,
    adapter_for,
    describe,
    map_architecture,
    parameters_by_component,
    tensor_elements,
)
from simsa.lineage.model.roles import ArchitectureMap, MappedTensor, Role, StackInfo

Shapes = dict[str, tuple[int, ...]]


# --------------------------------------------------------------------------------------------------- helpers


def _read_safetensors_shapes(folder: Path) -> Shapes:
    """Tensor shapes from safetensors headers (8-byte length + JSON), as the torch-free tool reads them."""
    shapes: Shapes = {}
    for f in sorted(folder.glob("*.safetensors")):
        with f.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        shapes.update({k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"})
    return shapes


def disk_layout(tmp_path: Path, config_cls: str, model_cls: str, **kwargs) -> tuple[Shapes, dict]:
    """(shapes, config.json) of a tiny model saved by transformers: the on-disk checkpoint layout."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**kwargs))
    model.save_pretrained(tmp_path)
    return _read_safetensors_shapes(tmp_path), json.loads((tmp_path / "config.json").read_text())


def memory_layout(config_cls: str, model_cls: str, **kwargs) -> tuple[Shapes, dict]:
    """(shapes, config dict) of a tiny model's in-memory ``state_dict`` (transformers 5 layout), built on meta."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    config = getattr(transformers, config_cls)(**kwargs)
    with torch.device("meta"):
        model = getattr(transformers, model_cls)(config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return shapes, json.loads(config.to_json_string(use_diff=True))


def entries(amap: ArchitectureMap, name: str) -> list[MappedTensor]:
    return [t for t in amap.tensors if t.name == name]


def one(amap: ArchitectureMap, name: str) -> MappedTensor:
    found = entries(amap, name)
    assert len(found) == 1, (name, found)
    return found[0]


def roles_of(amap: ArchitectureMap, name: str) -> list[Role]:
    return [t.role for t in entries(amap, name)]


def check_invariants(amap: ArchitectureMap, shapes: Shapes, *, unmapped: tuple[str, ...] = ()) -> None:
    """What every map must satisfy: nothing lost, residual axes of the stack width, fused slices tile the tensor."""
    mapped = {t.name for t in amap.tensors}
    assert sorted(amap.unmapped) == amap.unmapped
    assert set(amap.unmapped) == set(unmapped), amap.unmapped
    assert not mapped & set(amap.unmapped)
    assert mapped | set(amap.unmapped) <= set(shapes)
    # Fused tensors are counted once in total.
    assert sum(parameters_by_component(amap).values()) == sum(math.prod(shapes[n]) for n in mapped)
    by_name: dict[str, list[MappedTensor]] = {}
    for t in amap.tensors:
        by_name.setdefault(t.name, []).append(t)
        assert t.shape == tuple(shapes[t.name])
        assert t.role.stack in amap.stacks
        if t.residual_axis is not None:
            shape = t.shape[1:] if t.expert_index is not None else t.shape
            assert len(shape) == 2, t
            if t.role.kind not in ("xattn.k", "xattn.v"):
                assert shape[t.residual_axis] == amap.stacks[t.role.stack].hidden_size, t
            assert t.n_units > 0
    for name, group in by_name.items():
        ranges = [t for t in group if t.unit_range is not None]
        if not ranges:  # one entry, or one per expert of a stacked tensor
            assert len(group) == len({t.expert_index for t in group}), name
            continue
        for expert in {t.expert_index for t in group}:
            sub = sorted((t.unit_range for t in group if t.expert_index == expert), key=lambda r: r[0])
            assert sub[0][0] == 0 and all(a[1] == b[0] for a, b in itertools.pairwise(sub)), (name, sub)


def kinds_in_layer(amap: ArchitectureMap, stack: str, layer: int) -> Counter[str]:
    return Counter(t.role.kind for t in amap.tensors if t.role.stack == stack and t.role.layer == layer)


TEXT = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=96, pad_token_id=0, bos_token_id=1, eos_token_id=2)
VISION = dict(hidden_size=24, intermediate_size=40, num_hidden_layers=3, num_attention_heads=4, image_size=8,
              patch_size=4)


# --------------------------------------------------------------------------------------------------- dense decoders


@pytest.mark.parametrize(("config_cls", "model_cls", "model_type"), [
    ("LlamaConfig", "LlamaForCausalLM", "llama"),
    ("MistralConfig", "MistralForCausalLM", "mistral"),
    ("Qwen2Config", "Qwen2ForCausalLM", "qwen2"),
])
def test_llama_like_decoders(tmp_path: Path, config_cls: str, model_cls: str, model_type: str) -> None:
    shapes, config = disk_layout(tmp_path, config_cls, model_cls, **TEXT, tie_word_embeddings=False)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert (amap.model_type, amap.adapter) == (model_type, "llama")
    assert amap.stacks == {"text": StackInfo(hidden_size=32, num_layers=4)}
    k = one(amap, "model.layers.3.self_attn.k_proj.weight")
    assert k.role == Role("text", "attn.k", layer=3)
    assert (k.residual_axis, k.n_units) == (1, 2 * 8)  # 2 kv heads x head_dim 8
    assert one(amap, "model.layers.3.self_attn.o_proj.weight").residual_axis == 0
    assert one(amap, "model.layers.0.mlp.gate_proj.weight").role == Role("text", "mlp.gate", 0)
    down = one(amap, "model.layers.0.mlp.down_proj.weight")
    assert (down.role.kind, down.residual_axis, down.n_units) == ("mlp.down", 0, 48)
    assert one(amap, "model.layers.2.post_attention_layernorm.weight").role == Role("text", "norm", 2, None,
                                                                                     "post_attention")
    assert one(amap, "model.norm.weight").role == Role("text", "norm", None, None, "final")
    assert one(amap, "model.embed_tokens.weight").role.kind == "embed.tokens"
    assert (one(amap, "lm_head.weight").role.kind, one(amap, "lm_head.weight").residual_axis) == ("head", 1)
    assert not any("tied" in n for n in amap.notes)
    if model_type == "qwen2":  # q/k/v biases
        bias = one(amap, "model.layers.1.self_attn.k_proj.bias")
        assert bias.role == Role("text", "bias", 1, None, "attn.k") and bias.residual_axis is None


def test_qwen3_q_and_k_norms(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "Qwen3Config", "Qwen3ForCausalLM", **TEXT, head_dim=16)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert one(amap, "model.layers.1.self_attn.q_norm.weight").role == Role("text", "norm", 1, None, "q_norm")
    assert one(amap, "model.layers.1.self_attn.k_norm.weight").role == Role("text", "norm", 1, None, "k_norm")
    assert one(amap, "model.layers.1.self_attn.q_proj.weight").n_units == 4 * 16
    assert amap.stacks["text"] == StackInfo(32, 4)


def test_gemma2_feedforward_norms_and_tied_head(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "Gemma2Config", "Gemma2ForCausalLM", **TEXT, head_dim=8)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "gemma"
    details = {t.role.detail for t in amap.tensors if t.role.kind == "norm" and t.role.layer == 2}
    assert details == {"input", "post_attention", "pre_feedforward", "post_feedforward"}
    assert "lm_head.weight" not in shapes
    assert any(n.startswith("output head tied to the token embedding") for n in amap.notes)


def test_glm4_fused_gate_up_and_extra_norms(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "Glm4Config", "Glm4ForCausalLM", **TEXT, head_dim=8)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "glm4"
    gate, up = entries(amap, "model.layers.2.mlp.gate_up_proj.weight")
    assert shapes["model.layers.2.mlp.gate_up_proj.weight"] == (96, 32)
    assert (gate.role, gate.unit_range, gate.residual_axis) == (Role("text", "mlp.gate", 2), (0, 48), 1)
    assert (up.role, up.unit_range, up.residual_axis) == (Role("text", "mlp.up", 2), (48, 96), 1)
    assert one(amap, "model.layers.2.post_self_attn_layernorm.weight").role.detail == "post_self_attn"
    assert one(amap, "model.layers.2.post_mlp_layernorm.weight").role.detail == "post_mlp"
    assert one(amap, "model.layers.2.self_attn.q_proj.bias").role == Role("text", "bias", 2, None, "attn.q")
    assert parameters_by_component(amap)["text.mlp"] == 4 * (96 * 32 + 32 * 48)


def test_phi3_fused_qkv_split_by_heads(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "Phi3Config", "Phi3ForCausalLM", **TEXT)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "phi3"
    name = "model.layers.3.self_attn.qkv_proj.weight"
    assert shapes[name] == (64, 32)  # q: 4 heads x 8, k and v: 2 kv heads x 8
    q, k, v = entries(amap, name)
    assert (q.role, q.unit_range) == (Role("text", "attn.q", 3), (0, 32))
    assert (k.role, k.unit_range, k.residual_axis, k.n_units) == (Role("text", "attn.k", 3), (32, 48), 1, 16)
    assert (v.role, v.unit_range) == (Role("text", "attn.v", 3), (48, 64))
    gate, up = entries(amap, "model.layers.3.mlp.gate_up_proj.weight")
    assert (gate.unit_range, up.unit_range) == ((0, 48), (48, 96))
    # Counted once: the three slices share the tensor's elements.
    assert sum(tensor_elements(t) for t in (q, k, v)) == 64 * 32


# ----------------------------------------------------------------------------------------------- mixtures of experts

QWEN_MOE = dict(TEXT, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=12, head_dim=8)


def test_qwen3_moe_per_expert_on_disk(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "Qwen3MoeConfig", "Qwen3MoeForCausalLM", **QWEN_MOE)
    assert "model.layers.1.mlp.experts.2.up_proj.weight" in shapes  # transformers writes per-expert tensors
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "qwen_moe"
    up = one(amap, "model.layers.1.mlp.experts.2.up_proj.weight")
    assert (up.role, up.residual_axis, up.n_units) == (Role("text", "moe.expert.up", 1, expert=2), 1, 12)
    down = one(amap, "model.layers.1.mlp.experts.2.down_proj.weight")
    assert (down.role.kind, down.residual_axis) == ("moe.expert.down", 0)
    router = one(amap, "model.layers.1.mlp.gate.weight")
    assert (router.role, router.residual_axis, router.n_units) == (Role("text", "moe.router", 1), 1, 4)
    assert kinds_in_layer(amap, "text", 0)["moe.expert.gate"] == 4


def test_qwen3_moe_stacked_experts_in_memory() -> None:
    shapes, config = memory_layout("Qwen3MoeConfig", "Qwen3MoeForCausalLM", **QWEN_MOE)
    name = "model.layers.2.mlp.experts.gate_up_proj"
    assert shapes[name] == (4, 24, 32)  # [E, 2I, d]
    assert shapes["model.layers.2.mlp.experts.down_proj"] == (4, 32, 12)  # [E, d, I]
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    slices = [t for t in entries(amap, name) if t.expert_index == 3]
    assert [(t.role, t.unit_range, t.residual_axis) for t in slices] == [
        (Role("text", "moe.expert.gate", 2, expert=3), (0, 12), 1),
        (Role("text", "moe.expert.up", 2, expert=3), (12, 24), 1),
    ]
    assert all(t.n_units == 12 for t in slices)
    down = [t for t in entries(amap, "model.layers.2.mlp.experts.down_proj") if t.expert_index == 1]
    assert [(t.role, t.residual_axis, t.n_units) for t in down] == [
        (Role("text", "moe.expert.down", 2, expert=1), 0, 12)]
    assert parameters_by_component(amap)["text.experts"] == 4 * (4 * 24 * 32 + 4 * 32 * 12)


def test_stacked_experts_residual_first_orientation() -> None:
    """Llama-4 stores experts as gate_up [E, d, 2I] and down [E, I, d]: the orientation comes from the hidden size."""
    d, e, i = 32, 3, 20
    shapes: Shapes = {
        "model.embed_tokens.weight": (50, d),
        "model.layers.0.input_layernorm.weight": (d,),
        "model.layers.0.feed_forward.router.weight": (e, d),
        "model.layers.0.feed_forward.experts.gate_up_proj": (e, d, 2 * i),
        "model.layers.0.feed_forward.experts.down_proj": (e, i, d),
        "lm_head.weight": (50, d),
    }
    amap = map_architecture(shapes, {"model_type": "made_up_moe", "hidden_size": d, "num_hidden_layers": 1})
    check_invariants(amap, shapes)
    assert amap.adapter == "generic"
    gate = [t for t in entries(amap, "model.layers.0.feed_forward.experts.gate_up_proj") if t.expert_index == 2]
    assert [(t.role.kind, t.residual_axis, t.unit_range) for t in gate] == [
        ("moe.expert.gate", 0, (0, i)), ("moe.expert.up", 0, (i, 2 * i))]
    down = [t for t in entries(amap, "model.layers.0.feed_forward.experts.down_proj") if t.expert_index == 0]
    assert [(t.role.kind, t.residual_axis, t.n_units) for t in down] == [("moe.expert.down", 1, i)]
    assert one(amap, "model.layers.0.feed_forward.router.weight").role.kind == "moe.router"


def test_mixtral_block_sparse_moe_on_disk(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "MixtralConfig", "MixtralForCausalLM", **TEXT, num_local_experts=3)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "mixtral"
    prefix = "model.layers.2.block_sparse_moe"
    assert one(amap, f"{prefix}.gate.weight").role == Role("text", "moe.router", 2)
    assert one(amap, f"{prefix}.experts.1.w1.weight").role == Role("text", "moe.expert.gate", 2, expert=1)
    assert one(amap, f"{prefix}.experts.1.w3.weight").role == Role("text", "moe.expert.up", 2, expert=1)
    w2 = one(amap, f"{prefix}.experts.1.w2.weight")
    assert (w2.role, w2.residual_axis) == (Role("text", "moe.expert.down", 2, expert=1), 0)


GLM_MOE = dict(TEXT, n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=12, first_k_dense_replace=1,
               n_shared_experts=1, n_group=1, topk_group=1)


def test_glm4_moe_dense_then_moe_with_shared_experts(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "Glm4MoeConfig", "Glm4MoeForCausalLM", **GLM_MOE, head_dim=8)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "glm4_moe"
    dense = kinds_in_layer(amap, "text", 0)
    assert dense["mlp.gate"] == 1 and dense["moe.router"] == 0
    moe = kinds_in_layer(amap, "text", 2)
    assert (moe["mlp.gate"], moe["moe.router"], moe["moe.expert.up"], moe["moe.shared.down"]) == (0, 1, 4, 1)
    assert one(amap, "model.layers.2.mlp.gate.e_score_correction_bias").role == Role("text", "bias", 2, None,
                                                                                     "moe.router")
    shared = one(amap, "model.layers.2.mlp.shared_experts.down_proj.weight")
    assert (shared.role, shared.residual_axis) == (Role("text", "moe.shared.down", 2), 0)
    assert one(amap, "model.layers.3.mlp.experts.3.gate_proj.weight").role == Role("text", "moe.expert.gate", 3,
                                                                                    expert=3)
    comps = parameters_by_component(amap)
    assert {"text.experts", "text.shared_experts", "text.router", "text.mlp"} <= set(comps)


def test_deepseek_v3_mla_mtp_and_fp8_scales(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "DeepseekV3Config", "DeepseekV3ForCausalLM", **dict(GLM_MOE, head_dim=8),
                                 q_lora_rank=16, kv_lora_rank=12, qk_rope_head_dim=4, qk_nope_head_dim=8,
                                 v_head_dim=8)
    # FP8 releases ship weight_scale_inv companions; the MTP module sits after the last layer (index 4 here).
    shapes["model.layers.1.self_attn.q_a_proj.weight_scale_inv"] = (1, 1)
    mtp = {
        "model.layers.4.enorm.weight": (32,), "model.layers.4.hnorm.weight": (32,),
        "model.layers.4.eh_proj.weight": (32, 64), "model.layers.4.embed_tokens.weight": (96, 32),
        "model.layers.4.shared_head.norm.weight": (32,), "model.layers.4.shared_head.head.weight": (96, 32),
        "model.layers.4.input_layernorm.weight": (32,), "model.layers.4.self_attn.o_proj.weight": (32, 32),
    }
    shapes.update(mtp)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "deepseek"
    attn = "model.layers.1.self_attn"
    expected = {
        "q_a_proj": ("attn.q_a", 1), "q_b_proj": ("attn.q_b", None), "kv_a_proj_with_mqa": ("attn.kv_a", 1),
        "kv_b_proj": ("attn.kv_b", None), "o_proj": ("attn.o", 0),
    }
    for proj, (kind, axis) in expected.items():
        t = one(amap, f"{attn}.{proj}.weight")
        assert (t.role, t.residual_axis) == (Role("text", kind, 1), axis), proj
    assert one(amap, f"{attn}.q_a_layernorm.weight").role == Role("text", "norm", 1, None, "q_a")
    assert one(amap, f"{attn}.kv_a_layernorm.weight").role == Role("text", "norm", 1, None, "kv_a")
    assert one(amap, "model.layers.3.mlp.gate.e_score_correction_bias").role.kind == "bias"
    assert f"{attn}.q_a_proj.weight_scale_inv" not in {t.name for t in amap.tensors} | set(amap.unmapped)
    assert any("quantisation scale" in n for n in amap.notes)
    # The MTP layer keeps its index; the stack keeps the config's layer count.
    assert amap.stacks["text"] == StackInfo(32, 4)
    assert any("multi-token-prediction" in n for n in amap.notes)
    assert one(amap, "model.layers.4.shared_head.head.weight").role == Role("text", "head", 4, None, "mtp")
    assert one(amap, "model.layers.4.eh_proj.weight").residual_axis == 0
    assert one(amap, "model.layers.4.enorm.weight").role.detail == "mtp_embedding"


# --------------------------------------------------------------------------------------------------- GPT-2, GPT-NeoX

GPT2 = dict(n_embd=32, n_layer=4, n_head=4, vocab_size=96, n_positions=40)


def test_gpt2_conv1d_orientation(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "GPT2Config", "GPT2LMHeadModel", **GPT2)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "gpt2" and amap.stacks == {"text": StackInfo(32, 4)}
    name = "transformer.h.3.attn.c_attn.weight"
    assert shapes[name] == (32, 96)  # Conv1D: [in, out]
    q, k, v = entries(amap, name)
    assert [(t.role.kind, t.residual_axis, t.unit_range) for t in (q, k, v)] == [
        ("attn.q", 0, (0, 32)), ("attn.k", 0, (32, 64)), ("attn.v", 0, (64, 96))]
    assert k.role.layer == 3
    biases = entries(amap, "transformer.h.3.attn.c_attn.bias")
    assert [(t.role, t.unit_range) for t in biases][1] == (Role("text", "bias", 3, None, "attn.k"), (32, 64))
    assert (one(amap, "transformer.h.3.attn.c_proj.weight").role.kind,
            one(amap, "transformer.h.3.attn.c_proj.weight").residual_axis) == ("attn.o", 1)
    fc = one(amap, "transformer.h.3.mlp.c_fc.weight")
    assert (fc.role.kind, fc.residual_axis, fc.n_units) == ("mlp.up", 0, 128)
    proj = one(amap, "transformer.h.3.mlp.c_proj.weight")
    assert (proj.role.kind, proj.residual_axis, proj.n_units) == ("mlp.down", 1, 128)
    assert one(amap, "transformer.wpe.weight").role.kind == "embed.positions"
    assert one(amap, "transformer.wpe.weight").residual_axis == 1
    assert one(amap, "transformer.ln_f.weight").role.detail == "final"
    assert one(amap, "transformer.h.0.ln_1.bias").role == Role("text", "norm", 0, None, "input")
    assert any(n.startswith("output head tied") for n in amap.notes)

    # Old checkpoints lack the "transformer." prefix and may carry attention-mask buffers.
    bare = {n.removeprefix("transformer."): s for n, s in shapes.items()}
    bare["h.0.attn.bias"] = (1, 1, 40, 40)
    bare_map = map_architecture(bare, config)
    check_invariants(bare_map, bare)
    assert [t.role for t in entries(bare_map, "h.3.attn.c_attn.weight")] == [q.role, k.role, v.role]
    assert any("buffers" in n for n in bare_map.notes)

    # Without a config the generic adapter recognises Conv1D storage from the shapes.
    generic = map_architecture(shapes, None)
    check_invariants(generic, shapes)
    assert generic.adapter == "generic"
    assert [(t.role, t.residual_axis, t.unit_range) for t in generic.tensors] == [
        (t.role, t.residual_axis, t.unit_range) for t in amap.tensors]


def test_gpt_neox_interleaved_qkv_per_head(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "GPTNeoXConfig", "GPTNeoXForCausalLM",
                                 **{**TEXT, "num_key_value_heads": None}, tie_word_embeddings=False)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "gpt_neox"
    name = "gpt_neox.layers.1.attention.query_key_value.weight"
    assert shapes[name] == (96, 32)  # (heads=4, 3, head_dim=8) rows
    parts = entries(amap, name)
    assert len(parts) == 12 and all(t.role.layer == 1 and t.residual_axis == 1 for t in parts)
    ks = [t.unit_range for t in parts if t.role.kind == "attn.k"]
    assert ks == [(8, 16), (32, 40), (56, 64), (80, 88)]  # head h: rows [24h + 8, 24h + 16)
    assert [t.unit_range for t in parts if t.role.kind == "attn.q"][2] == (48, 56)
    assert sum(t.n_units for t in parts if t.role.kind == "attn.v") == 32
    bias_v = [t for t in entries(amap, "gpt_neox.layers.1.attention.query_key_value.bias") if t.role.detail == "attn.v"]
    assert [t.unit_range for t in bias_v][:2] == [(16, 24), (40, 48)]
    assert one(amap, "gpt_neox.layers.1.attention.dense.weight").role.kind == "attn.o"
    assert one(amap, "gpt_neox.layers.1.mlp.dense_h_to_4h.weight").role.kind == "mlp.up"
    assert one(amap, "gpt_neox.layers.1.mlp.dense_4h_to_h.weight").residual_axis == 0
    assert one(amap, "gpt_neox.embed_in.weight").role.kind == "embed.tokens"
    assert one(amap, "embed_out.weight").role.kind == "head"
    assert one(amap, "gpt_neox.final_layer_norm.weight").role.detail == "final"

    # Without a config the names give the family away; without head counts the fused tensor stays unmapped.
    nocfg = map_architecture(shapes, None)
    assert "gpt_neox.layers.1.attention.query_key_value.weight" in nocfg.unmapped
    assert any("gpt_neox layout" in n for n in nocfg.notes)


# --------------------------------------------------------------------------------------------------- encoders

BERT = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4, vocab_size=96,
            max_position_embeddings=40)


def test_bert_pretraining_heads(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "BertConfig", "BertForPreTraining", **BERT)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "bert" and amap.stacks == {"text": StackInfo(32, 3)}
    layer = "bert.encoder.layer.2"
    assert one(amap, f"{layer}.attention.self.query.weight").role == Role("text", "attn.q", 2)
    assert one(amap, f"{layer}.attention.self.value.bias").role == Role("text", "bias", 2, None, "attn.v")
    o = one(amap, f"{layer}.attention.output.dense.weight")
    assert (o.role.kind, o.residual_axis) == ("attn.o", 0)
    assert one(amap, f"{layer}.attention.output.LayerNorm.weight").role.detail == "post_attention"
    up = one(amap, f"{layer}.intermediate.dense.weight")
    assert (up.role.kind, up.residual_axis, up.n_units) == ("mlp.up", 1, 48)
    down = one(amap, f"{layer}.output.dense.weight")
    assert (down.role.kind, down.residual_axis, down.n_units) == ("mlp.down", 0, 48)
    assert one(amap, f"{layer}.output.LayerNorm.bias").role.detail == "post_feedforward"
    assert one(amap, "bert.embeddings.token_type_embeddings.weight").role.kind == "embed.types"
    assert one(amap, "bert.embeddings.position_embeddings.weight").role.kind == "embed.positions"
    assert one(amap, "bert.embeddings.LayerNorm.weight").role == Role("text", "norm", None, None, "embeddings")
    assert one(amap, "bert.pooler.dense.weight").role == Role("text", "head", None, None, "pooler")
    assert one(amap, "cls.predictions.bias").role == Role("text", "bias", None, None, "head")
    assert one(amap, "cls.predictions.transform.dense.weight").role.detail == "transform"
    assert one(amap, "cls.seq_relationship.weight").role.detail == "nsp"
    assert any(n.startswith("output head tied") for n in amap.notes)  # MLM decoder tied to word embeddings


def test_roberta_mlm_and_bert_without_prefix(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path / "r", "RobertaConfig", "RobertaForMaskedLM", **BERT,
                                 pad_token_id=1, tie_word_embeddings=False)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "bert"
    assert one(amap, "roberta.encoder.layer.1.attention.self.key.weight").role == Role("text", "attn.k", 1)
    assert one(amap, "lm_head.decoder.weight").role == Role("text", "head")
    assert one(amap, "lm_head.dense.weight").role.detail == "transform"
    assert one(amap, "lm_head.layer_norm.weight").role.detail == "head_transform"
    assert one(amap, "lm_head.bias").role == Role("text", "bias", None, None, "head")

    shapes, config = disk_layout(tmp_path / "b", "BertConfig", "BertModel", **BERT)
    assert "encoder.layer.0.attention.self.query.weight" in shapes  # no "bert." prefix
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert one(amap, "encoder.layer.0.output.dense.weight").role == Role("text", "mlp.down", 0)
    assert one(amap, "embeddings.word_embeddings.weight").role == Role("text", "embed.tokens")


# --------------------------------------------------------------------------------------------------- vision towers


def test_vit_on_disk_and_in_memory(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "ViTConfig", "ViTForImageClassification", **VISION)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "vit" and amap.stacks == {"vision": StackInfo(24, 3)}
    layer = "vit.encoder.layer.2"
    assert one(amap, f"{layer}.attention.attention.query.weight").role == Role("vision", "attn.q", 2)
    assert one(amap, f"{layer}.attention.attention.key.bias").role == Role("vision", "bias", 2, None, "attn.k")
    assert one(amap, f"{layer}.attention.output.dense.weight").residual_axis == 0
    assert one(amap, f"{layer}.intermediate.dense.weight").role.kind == "mlp.up"
    assert one(amap, f"{layer}.output.dense.weight").role.kind == "mlp.down"
    assert one(amap, f"{layer}.layernorm_before.weight").role.detail == "input"
    assert one(amap, f"{layer}.layernorm_after.weight").role.detail == "post_attention"
    patch = one(amap, "vit.embeddings.patch_embeddings.projection.weight")
    assert (patch.role, patch.residual_axis) == (Role("vision", "embed.patch"), None)
    assert one(amap, "vit.embeddings.position_embeddings").role.kind == "embed.positions"
    assert one(amap, "vit.embeddings.cls_token").role == Role("vision", "embed.tokens", None, None, "class")
    assert one(amap, "vit.layernorm.weight").role.detail == "final"
    assert one(amap, "classifier.weight").role == Role("vision", "head", None, None, "classifier")
    assert not any("tied" in n for n in amap.notes)

    mem, mem_config = memory_layout("ViTConfig", "ViTForImageClassification", **VISION)
    assert "vit.layers.2.attention.q_proj.weight" in mem  # transformers-5 in-memory names
    mem_map = map_architecture(mem, mem_config)
    check_invariants(mem_map, mem)
    assert Counter(t.role for t in mem_map.tensors) == Counter(t.role for t in amap.tensors)


def test_siglip_and_clip_vision_towers(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path / "s", "SiglipVisionConfig", "SiglipVisionModel", **VISION)
    assert "encoder.layers.1.self_attn.v_proj.weight" in shapes  # transformers 5 saves the tower unprefixed
    # Older saves and the towers inside published dual-encoder checkpoints carry a "vision_model." prefix.
    prefixed = {f"vision_model.{n}": s for n, s in shapes.items()}
    for layout, pre in ((shapes, ""), (prefixed, "vision_model.")):
        amap = map_architecture(layout, config)
        check_invariants(amap, layout)
        assert amap.adapter == "clip_vision" and amap.stacks == {"vision": StackInfo(24, 3)}
        layer = f"{pre}encoder.layers.1"
        assert one(amap, f"{layer}.self_attn.v_proj.weight").role == Role("vision", "attn.v", 1)
        assert one(amap, f"{layer}.self_attn.out_proj.weight").residual_axis == 0
        assert one(amap, f"{layer}.mlp.fc1.weight").role.kind == "mlp.up"
        assert one(amap, f"{layer}.mlp.fc2.weight").role.kind == "mlp.down"
        assert one(amap, f"{layer}.layer_norm1.weight").role.detail == "input"
        assert one(amap, f"{layer}.layer_norm2.weight").role.detail == "post_attention"
        assert one(amap, f"{pre}embeddings.patch_embedding.weight").role.kind == "embed.patch"
        assert one(amap, f"{pre}post_layernorm.weight").role.detail == "final"
        assert one(amap, f"{pre}head.attention.in_proj_weight").role.detail == "attention_pool.qkv"
        assert one(amap, f"{pre}head.probe").role == Role("vision", "head", None, None, "attention_pool.probe")

    shapes, config = disk_layout(tmp_path / "c", "CLIPVisionConfig", "CLIPVisionModel", **VISION)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.stacks == {"vision": StackInfo(24, 3)}
    assert one(amap, "pre_layrnorm.weight").role.detail == "pre"
    assert one(amap, "embeddings.class_embedding").role.detail == "class"
    assert one(amap, "embeddings.position_embedding.weight").residual_axis == 1


def test_siglip_dual_tower(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "SiglipConfig", "SiglipModel",
                                 text_config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                                  num_attention_heads=4, vocab_size=96),
                                 vision_config=VISION)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.stacks["text"] == StackInfo(32, 2) and amap.stacks["vision"] == StackInfo(24, 3)
    assert one(amap, "text_model.encoder.layers.1.self_attn.q_proj.weight").role == Role("text", "attn.q", 1)
    assert one(amap, "vision_model.encoder.layers.2.mlp.fc1.weight").role == Role("vision", "mlp.up", 2)
    assert one(amap, "text_model.head.weight").role == Role("text", "head")
    assert one(amap, "logit_scale").role.stack == "projector"
    assert not any("tied" in n for n in amap.notes)


# --------------------------------------------------------------------------------------------------- multimodal

GEMMA3 = dict(text_config=dict(TEXT, head_dim=8), vision_config=VISION, mm_tokens_per_image=4, image_token_index=5,
              boi_token_index=6, eoi_token_index=7)


def _stackless(amap: ArchitectureMap) -> Counter:
    return Counter((t.role, t.residual_axis, t.unit_range, t.expert_index, t.shape) for t in amap.tensors)


def test_gemma3_multimodal_layouts(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "Gemma3Config", "Gemma3ForConditionalGeneration", **GEMMA3)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "gemma"
    assert amap.stacks == {"text": StackInfo(32, 4), "vision": StackInfo(24, 3), "projector": StackInfo(32, 0)}
    lm = "language_model.model.layers.3"
    assert one(amap, f"{lm}.self_attn.k_proj.weight").role == Role("text", "attn.k", 3)
    assert one(amap, f"{lm}.pre_feedforward_layernorm.weight").role.detail == "pre_feedforward"
    assert one(amap, "language_model.model.embed_tokens.weight").role == Role("text", "embed.tokens")
    vt = "vision_tower.encoder.layers.2"
    assert one(amap, f"{vt}.self_attn.out_proj.weight").role == Role("vision", "attn.o", 2)
    proj = one(amap, "multi_modal_projector.mm_input_projection_weight")
    assert (proj.role.stack, proj.role.kind) == ("projector", "projector")
    assert any(n.startswith("output head tied") for n in amap.notes)

    # Published Gemma-3 checkpoints nest the tower as vision_tower.vision_model.*; transformers 5 holds the
    # model as model.language_model / model.vision_tower in memory. All three layouts map to the same roles.
    hub = {n.replace("vision_tower.", "vision_tower.vision_model."): s for n, s in shapes.items()}
    hub_map = map_architecture(hub, config)
    check_invariants(hub_map, hub)
    mem, mem_config = memory_layout("Gemma3Config", "Gemma3ForConditionalGeneration", **GEMMA3)
    assert "model.language_model.layers.3.self_attn.k_proj.weight" in mem
    mem_map = map_architecture(mem, mem_config)
    check_invariants(mem_map, mem)
    expected = _stackless(amap)
    assert _stackless(hub_map) == expected
    mem_roles = _stackless(mem_map)
    mem_roles.pop((Role("text", "head"), 1, None, None, (96, 32)))  # in memory the tied head is a tensor
    assert mem_roles == expected


QWEN_VL = dict(
    text_config=dict(TEXT, head_dim=8, rope_scaling={"rope_type": "default", "mrope_section": [2, 2]}),
    vision_config=dict(depth=3, hidden_size=24, intermediate_size=40, num_heads=4, out_hidden_size=32, patch_size=2,
                       temporal_patch_size=2, spatial_merge_size=2, fullatt_block_indexes=[2], window_size=8),
    image_token_id=5, video_token_id=6, vision_start_token_id=7)


def test_qwen2_5_vl_vision_tower(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", **QWEN_VL)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "qwen2_vl"
    assert amap.stacks == {"text": StackInfo(32, 4), "vision": StackInfo(24, 3), "projector": StackInfo(32, 0)}
    name = "visual.blocks.2.attn.qkv.weight"
    assert shapes[name] == (72, 24)
    assert [(t.role, t.unit_range) for t in entries(amap, name)] == [
        (Role("vision", "attn.q", 2), (0, 24)), (Role("vision", "attn.k", 2), (24, 48)),
        (Role("vision", "attn.v", 2), (48, 72))]
    assert one(amap, "visual.blocks.2.attn.proj.weight").role == Role("vision", "attn.o", 2)
    assert one(amap, "visual.blocks.2.mlp.gate_proj.weight").role == Role("vision", "mlp.gate", 2)
    assert one(amap, "visual.blocks.2.norm1.weight").role.detail == "input"
    assert one(amap, "visual.patch_embed.proj.weight").role == Role("vision", "embed.patch")
    assert {t.role.stack for t in amap.tensors if t.name.startswith("visual.merger.")} == {"projector"}
    assert one(amap, "model.layers.3.self_attn.q_proj.bias").role == Role("text", "bias", 3, None, "attn.q")

    mem, mem_config = memory_layout("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", **QWEN_VL)
    assert "model.visual.blocks.2.attn.qkv.weight" in mem and "model.language_model.layers.0.mlp.up_proj.weight" in mem
    mem_map = map_architecture(mem, mem_config)
    check_invariants(mem_map, mem)
    assert _stackless(mem_map) == _stackless(amap)


def test_whisper_audio_encoder_text_decoder(tmp_path: Path) -> None:
    shapes, config = disk_layout(
        tmp_path, "WhisperConfig", "WhisperForConditionalGeneration", d_model=32, encoder_layers=3, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48, vocab_size=96,
        num_mel_bins=8, max_source_positions=16, max_target_positions=16, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, decoder_start_token_id=1)
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "whisper"
    assert amap.stacks == {"audio": StackInfo(32, 3), "text": StackInfo(32, 2)}
    enc = "model.encoder.layers.2"
    assert one(amap, f"{enc}.self_attn.q_proj.weight").role == Role("audio", "attn.q", 2)
    assert one(amap, f"{enc}.fc1.weight").role == Role("audio", "mlp.up", 2)
    assert one(amap, f"{enc}.fc2.weight").residual_axis == 0
    assert one(amap, f"{enc}.self_attn_layer_norm.weight").role.detail == "input"
    assert one(amap, f"{enc}.final_layer_norm.weight").role.detail == "post_attention"
    assert one(amap, "model.encoder.conv1.weight").role == Role("audio", "embed.patch")
    assert one(amap, "model.encoder.embed_positions.weight").role == Role("audio", "embed.positions")
    assert one(amap, "model.encoder.layer_norm.weight").role == Role("audio", "norm", None, None, "final")
    dec = "model.decoder.layers.1"
    assert one(amap, f"{dec}.encoder_attn.k_proj.weight").role == Role("text", "xattn.k", 1)
    assert one(amap, f"{dec}.encoder_attn.out_proj.weight").role.kind == "xattn.o"
    assert one(amap, f"{dec}.encoder_attn_layer_norm.weight").role.detail == "cross_attention"
    assert one(amap, "model.decoder.embed_tokens.weight").role == Role("text", "embed.tokens")
    assert any(n.startswith("output head tied") for n in amap.notes)  # proj_out shares the decoder embedding
    with_head = dict(shapes, **{"proj_out.weight": (96, 32)})
    assert one(map_architecture(with_head, config), "proj_out.weight").role == Role("text", "head")


def test_llava_layouts(tmp_path: Path) -> None:
    shapes, config = disk_layout(
        tmp_path, "LlavaConfig", "LlavaForConditionalGeneration", image_token_index=5,
        text_config=dict(TEXT, model_type="llama"), vision_config=dict(VISION, model_type="clip_vision_model"))
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "llava"
    assert amap.stacks == {"text": StackInfo(32, 4), "vision": StackInfo(24, 3), "projector": StackInfo(32, 0)}
    assert one(amap, "language_model.model.layers.1.mlp.up_proj.weight").role == Role("text", "mlp.up", 1)
    assert one(amap, "language_model.lm_head.weight").role == Role("text", "head")
    assert one(amap, "vision_tower.encoder.layers.0.self_attn.k_proj.weight").role == Role("vision", "attn.k", 0)
    assert one(amap, "multi_modal_projector.linear_2.weight").role == Role("projector", "projector", detail="linear_2")


def test_original_llava_and_wrapper_prefixes_by_hand() -> None:
    """LLaVA-1.5's own checkpoints: mm_projector and a doubly nested CLIP tower, unknown model_type."""
    d, v = 32, 24
    shapes: Shapes = {
        "model.embed_tokens.weight": (100, d),
        "model.layers.0.self_attn.q_proj.weight": (d, d),
        "model.layers.0.self_attn.o_proj.weight": (d, d),
        "model.layers.0.input_layernorm.weight": (d,),
        "model.norm.weight": (d,),
        "lm_head.weight": (100, d),
        "model.mm_projector.0.weight": (d, v),
        "model.mm_projector.0.bias": (d,),
        "model.mm_projector.2.weight": (d, d),
        "model.vision_tower.vision_tower.vision_model.embeddings.patch_embedding.weight": (v, 3, 4, 4),
        "model.vision_tower.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight": (v, v),
        "model.vision_tower.vision_tower.vision_model.encoder.layers.0.mlp.fc2.weight": (v, 40),
        "model.vision_tower.vision_tower.vision_model.encoder.layers.0.layer_norm1.weight": (v,),
        "audio_tower.layers.0.self_attn.q_proj.weight": (16, 16),
        "audio_tower.layers.0.self_attn_layer_norm.weight": (16,),
        "audio_tower.conv1.weight": (16, 8, 3),
    }
    config = {"model_type": "llava_llama", "hidden_size": d, "num_hidden_layers": 1, "mm_hidden_size": v}
    amap = map_architecture(shapes, config)
    check_invariants(amap, shapes)
    assert amap.adapter == "generic"
    assert amap.stacks == {"text": StackInfo(d, 1), "vision": StackInfo(v, 1), "audio": StackInfo(16, 1),
                           "projector": StackInfo(d, 0)}
    assert one(amap, "model.mm_projector.0.weight").role.stack == "projector"
    fc2 = one(amap, "model.vision_tower.vision_tower.vision_model.encoder.layers.0.mlp.fc2.weight")
    assert (fc2.role, fc2.residual_axis) == (Role("vision", "mlp.down", 0), 0)
    assert one(amap, "audio_tower.layers.0.self_attn.q_proj.weight").role == Role("audio", "attn.q", 0)
    assert any("no dedicated adapter" in n for n in amap.notes)


# --------------------------------------------------------------------------------------------------- fallback


def _made_up_shapes(d: int = 40, layers: int = 3) -> Shapes:
    shapes: Shapes = {"model.embed_tokens.weight": (120, d), "model.norm.weight": (d,)}
    for i in range(layers):
        p = f"model.layers.{i}"
        shapes |= {
            f"{p}.self_attn.q_proj.weight": (d, d), f"{p}.self_attn.k_proj.weight": (20, d),
            f"{p}.self_attn.v_proj.weight": (20, d), f"{p}.self_attn.o_proj.weight": (d, d),
            f"{p}.mlp.gate_proj.weight": (64, d), f"{p}.mlp.up_proj.weight": (64, d),
            f"{p}.mlp.down_proj.weight": (d, 64), f"{p}.input_layernorm.weight": (d,),
            f"{p}.post_attention_layernorm.weight": (d,), f"{p}.self_attn.sinkhorn_knob": (7,),
        }
    return shapes


@pytest.mark.parametrize("config", [{"model_type": "acme_lm", "hidden_size": 40, "num_hidden_layers": 3}, None])
def test_generic_fallback_for_made_up_architecture(config: dict | None) -> None:
    shapes = _made_up_shapes()
    amap = map_architecture(shapes, config)
    odd = tuple(f"model.layers.{i}.self_attn.sinkhorn_knob" for i in range(3))
    check_invariants(amap, shapes, unmapped=odd)
    assert adapter_for("acme_lm") is None and amap.adapter == GENERIC.name
    assert amap.stacks == {"text": StackInfo(40, 3)}
    k = one(amap, "model.layers.2.self_attn.k_proj.weight")
    assert (k.role, k.residual_axis, k.n_units) == (Role("text", "attn.k", 2), 1, 20)
    assert one(amap, "model.layers.2.mlp.down_proj.weight").residual_axis == 0
    assert any(n.startswith("output head tied") for n in amap.notes)
    assert any("3 tensors match no known role pattern" in n for n in amap.notes)


def test_generic_vision_only_and_transposed_weights() -> None:
    d = 24
    shapes: Shapes = {
        "encoder.patch_embed.proj.weight": (d, 3, 4, 4),
        "encoder.blocks.0.attn.qkv.weight": (3 * d, d),
        "encoder.blocks.0.attn.proj.weight": (d, d),
        "encoder.blocks.0.norm1.weight": (d,),
        "encoder.blocks.0.mlp.fc1.weight": (d, 96),  # stored [in, out]
        "encoder.blocks.0.mlp.fc2.weight": (d, 96),
    }
    amap = map_architecture(shapes, None)
    check_invariants(amap, shapes)
    assert amap.stacks == {"vision": StackInfo(d, 1)}
    assert [t.unit_range for t in entries(amap, "encoder.blocks.0.attn.qkv.weight")] == [(0, 24), (24, 48), (48, 72)]
    assert any("equal thirds" in n for n in amap.notes)
    assert one(amap, "encoder.blocks.0.mlp.fc1.weight").residual_axis == 0
    assert any("stored transposed" in n for n in amap.notes)


def test_fused_qkv_without_head_counts_stays_unmapped() -> None:
    shapes: Shapes = {"model.embed_tokens.weight": (50, 32), "model.layers.0.self_attn.qkv_proj.weight": (64, 32)}
    amap = map_architecture(shapes, {"model_type": "phi3", "hidden_size": 32})
    check_invariants(amap, shapes, unmapped=("model.layers.0.self_attn.qkv_proj.weight",))
    assert any("cannot split fused qkv" in n for n in amap.notes)


def test_config_hidden_size_disagreeing_with_tensors_is_noted() -> None:
    shapes = _made_up_shapes(d=40, layers=1)
    amap = map_architecture(shapes, {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 1})
    assert amap.stacks["text"].hidden_size == 40
    assert any("disagrees" in n for n in amap.notes)


# --------------------------------------------------------------------------------------------------- summaries


def test_parameters_and_describe(tmp_path: Path) -> None:
    shapes, config = disk_layout(tmp_path, "Phi3Config", "Phi3ForCausalLM", **TEXT)
    amap = map_architecture(shapes, config)
    params = parameters_by_component(amap)
    assert params["text.attention"] == 4 * (64 * 32 + 32 * 32)
    assert params["text.embedding"] == 96 * 32
    assert params["text.output_head"] == 96 * 32
    assert sum(params.values()) == sum(math.prod(s) for s in shapes.values())
    info = describe(amap)
    assert json.loads(json.dumps(info)) == info
    assert info["model_type"] == "phi3" and info["adapter"] == "phi3"
    assert info["stacks"] == {"text": {"hidden_size": 32, "num_layers": 4}}
    assert info["components"]["text.attention"] == {"parameters": params["text.attention"], "tensors": 8}
    assert info["components"]["text.mlp"]["tensors"] == 8  # gate_up + down per layer, fused counted once
    assert info["total_parameters"] == sum(params.values())
    assert info["mapped_tensors"] == len(shapes) and info["unmapped"] == []


def test_describe_lists_unmapped_sorted() -> None:
    shapes: Shapes = {"zeta.weird": (3,), "model.embed_tokens.weight": (10, 8), "alpha.weird": (2, 2),
                      "lm_head.weight": (10, 8)}
    info = describe(map_architecture(shapes, None))
    assert info["unmapped"] == ["alpha.weird", "zeta.weird"]
    assert info["stacks"] == {"text": {"hidden_size": 8, "num_layers": 0}}
    assert info["components"]["text.embedding"] == {"parameters": 80, "tensors": 1}
