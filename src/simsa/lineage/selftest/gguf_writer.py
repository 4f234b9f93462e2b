"""A GGUF writer (F32, F16, BF16, Q8_0, Q4_K) for the self-test's disguises and the tests: a Hugging Face model
converted as llama.cpp's converter would, so the reader can be checked against what it must undo.
"""


from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf.constants import GGMLQuantizationType

from simsa.errors import CheckpointError
from simsa.lineage.formats.gguf.names import BLOCK, SUFFIX_RE, family_for, name_tables, permute_rows
from simsa.lineage.formats.gguf.reader import F32_BASES
from simsa.lineage.selftest.gguf_quant import quantize_q4_k

WRITE_QUANTS = ("F32", "F16", "BF16", "Q8_0", "Q4_K")


_WRITE_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen3_moe": "qwen3moe",
               "bert": "bert"}


WRITABLE_MODEL_TYPES = frozenset(_WRITE_ARCH)


_TOKENIZER_MODEL = {"llama": "llama", "qwen2": "gpt2", "qwen3": "gpt2", "qwen3moe": "gpt2", "bert": "bert"}


_FILE_TYPE = {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
              "BF16": gguf.LlamaFileType.MOSTLY_BF16, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
              "Q4_K": gguf.LlamaFileType.MOSTLY_Q4_K_S}


_DROPPED_RE = re.compile(r"(?:^|\.)(?:inv_freq|position_ids)$|^(?:pooler|cls)\.")


_EXPERT_RE = re.compile(r"^(?P<pre>.+\.experts)\.(?P<e>\d+)\.(?P<rest>.+)$")


_STACKED_RE = re.compile(r"^(?P<pre>.+\.experts)\.(?P<p>gate_up_proj|gate_proj|up_proj|down_proj)(?:\.weight)?$")


_HF_BLOCK_RE = re.compile(r"^(model\.layers|encoder\.layer)\.(\d+)\.(.+)$")


def _stack_experts(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-expert and transformers-5 stacked expert weights → llama.cpp's stacked ``[experts, out, in]`` form."""
    out: dict[str, np.ndarray] = {}
    groups: dict[str, dict[int, np.ndarray]] = {}
    for name, value in tensors.items():
        m = _EXPERT_RE.match(name)
        s = _STACKED_RE.match(name)
        if m:
            groups.setdefault(f"{m['pre']}.{m['rest']}", {})[int(m["e"])] = value
        elif s and s["p"] == "gate_up_proj":
            half = value.shape[1] // 2
            out[f"{s['pre']}.gate_proj.weight"] = value[:, :half]
            out[f"{s['pre']}.up_proj.weight"] = value[:, half:]
        elif s:
            out[f"{s['pre']}.{s['p']}.weight"] = value
        else:
            out[name] = value
    for key, experts in groups.items():
        if sorted(experts) != list(range(len(experts))):
            raise CheckpointError(f"experts of {key} are not numbered 0..{len(experts) - 1}")
        out[key] = np.stack([experts[e] for e in range(len(experts))])
    return out


def _encode(data: np.ndarray, quant: str, base: str) -> tuple[np.ndarray, GGMLQuantizationType | None]:
    """Stored array and raw type for one tensor, with llama.cpp's choices of what stays F32/F16."""
    data = np.ascontiguousarray(data, dtype=np.float32)
    if quant == "F32" or data.ndim <= 1 or base.endswith("_norm") or base in F32_BASES:
        return data, None
    if quant == "F16":
        return data.astype(np.float16), None
    if quant == "BF16":
        return gguf.quants.quantize(data, GGMLQuantizationType.BF16), GGMLQuantizationType.BF16
    if quant == "Q8_0" and data.shape[-1] % 32 == 0:
        return gguf.quants.quantize(data, GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0
    if quant == "Q4_K" and data.shape[-1] % 256 == 0:
        return quantize_q4_k(data), GGMLQuantizationType.Q4_K
    return data.astype(np.float16), None


def _phantom(tok: str) -> str:
    if len(tok) > 1 and tok.startswith("[") and tok.endswith("]"):
        return tok
    return tok[2:] if tok.startswith("##") else "\u2581" + tok


def _cfg_int(config: dict[str, Any], key: str) -> int | None:
    value = config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def write_gguf(
    path: str | os.PathLike[str],
    tensors: dict[str, np.ndarray],
    config: dict[str, Any],
    tokens: list[str] | None = None,
    quant: str = "F16",
) -> Path:
    """Write Hugging Face tensors as llama.cpp's converter would: GGUF names, q/k rows permuted for llama,
    experts stacked, llama.cpp's metadata, 2-D weights quantised to `quant` where rows fit its blocks.

    For tests and the lineage self-test (disguised copies); supports llama/mistral/qwen2/qwen3/qwen3_moe and bert.
    """
    if quant not in WRITE_QUANTS:
        raise ValueError(f"quant must be one of {', '.join(WRITE_QUANTS)}, got {quant!r}")
    model_type = str(config.get("model_type") or "")
    arch = _WRITE_ARCH.get(model_type)
    if arch is None:
        raise CheckpointError(f"cannot write GGUF for model_type {model_type!r}: supported are "
                              f"{', '.join(sorted(_WRITE_ARCH))}")
    family = family_for(arch, 0)
    _, backward = name_tables(arch, family)
    heads = _cfg_int(config, "num_attention_heads")
    kv_heads = _cfg_int(config, "num_key_value_heads") or heads

    kept = {}
    for name, value in tensors.items():
        name = name.removeprefix("bert.") if arch == "bert" else name
        if not _DROPPED_RE.search(name):
            kept[name] = np.asarray(value, dtype=np.float32)
    staged: list[tuple[str, np.ndarray, GGMLQuantizationType | None]] = []
    unmapped: list[str] = []
    for name, value in _stack_experts(kept).items():
        m = SUFFIX_RE.match(name)
        module, suffix = (m[1], m[2]) if m else (name, "")
        b = _HF_BLOCK_RE.match(module)
        template = backward.get(f"{b[1]}.{{bid}}.{b[3]}" if b else module)
        if template is None:
            unmapped.append(name)
            continue
        base = template.removeprefix(BLOCK)
        gname = (template.format(bid=int(b[2])) if b else template) + (f".{suffix}" if suffix else "")
        if family.permute_qk and base in ("attn_q", "attn_k"):
            n = heads if base == "attn_q" else kv_heads
            if not n or value.shape[0] % (2 * n):
                raise CheckpointError(f"{name}: cannot apply llama.cpp's rotary permutation without a head count "
                                      "that divides its rows (config num_attention_heads/num_key_value_heads)")
            value = permute_rows(value, n)
        data, raw_type = _encode(value, quant, base)
        staged.append((gname, data, raw_type))
    if unmapped:
        shown = ", ".join(unmapped[:5]) + (f" and {len(unmapped) - 5} more" if len(unmapped) > 5 else "")
        raise CheckpointError(f"no llama.cpp name for {shown} (architecture {arch})")

    path = Path(path)
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name(str(config.get("_name_or_path") or model_type))
    writer.add_file_type(int(_FILE_TYPE[quant]))
    if quant in ("Q8_0", "Q4_K"):
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _write_hparams(writer, arch, config)
    if tokens is not None:
        _write_tokens(writer, arch, tokens)
    for gname, data, raw_type in staged:
        writer.add_tensor(gname, data, raw_dtype=raw_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _write_hparams(writer: gguf.GGUFWriter, arch: str, config: dict[str, Any]) -> None:
    hidden, heads = _cfg_int(config, "hidden_size"), _cfg_int(config, "num_attention_heads")
    setters = (
        ("max_position_embeddings", writer.add_context_length), ("hidden_size", writer.add_embedding_length),
        ("num_hidden_layers", writer.add_block_count), ("intermediate_size", writer.add_feed_forward_length),
        ("num_attention_heads", writer.add_head_count), ("num_key_value_heads", writer.add_head_count_kv),
        ("head_dim", writer.add_key_length), ("head_dim", writer.add_value_length),
        ("num_experts", writer.add_expert_count), ("num_experts_per_tok", writer.add_expert_used_count),
        ("moe_intermediate_size", writer.add_expert_feed_forward_length), ("vocab_size", writer.add_vocab_size),
    )
    for key, setter in setters:
        value = _cfg_int(config, key)
        if value is not None:
            setter(value)
    if arch != "bert" and _cfg_int(config, "num_key_value_heads") is None and heads:
        writer.add_head_count_kv(heads)
    if arch == "llama" and hidden and heads:
        writer.add_rope_dimension_count(_cfg_int(config, "head_dim") or hidden // heads)
    theta = config.get("rope_theta")
    if isinstance(theta, int | float) and not isinstance(theta, bool):
        writer.add_rope_freq_base(float(theta))
    eps_setters = (("rms_norm_eps", writer.add_layer_norm_rms_eps), ("layer_norm_eps", writer.add_layer_norm_eps))
    for key, set_eps in eps_setters:
        eps = config.get(key)
        if isinstance(eps, int | float) and not isinstance(eps, bool):
            set_eps(float(eps))
    if arch == "bert":
        writer.add_causal_attention(False)


def _write_tokens(writer: gguf.GGUFWriter, arch: str, tokens: list[str]) -> None:
    types = [int(gguf.TokenType.NORMAL)] * len(tokens)
    if arch == "bert":
        types = [int(gguf.TokenType.CONTROL) if len(t) > 1 and t.startswith("[") and t.endswith("]")
                 else int(gguf.TokenType.NORMAL) for t in tokens]
        tokens = [_phantom(t) for t in tokens]
    writer.add_tokenizer_model(_TOKENIZER_MODEL[arch])
    writer.add_token_list(tokens)
    writer.add_token_types(types)
