"""GGUF tensor names in Hugging Face terms: ``blk.3.attn_q.weight`` → ``model.layers.3.self_attn.q_proj.weight``,
from the `gguf` package's own name tables inverted with a per-family preference, and the rotary q/k row permutation.
"""


from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from gguf.constants import MODEL_ARCH_NAMES, MODEL_TENSORS, TENSOR_NAMES
from gguf.tensor_mapping import TensorNameMap


@dataclass(frozen=True)
class Family:
    """How llama.cpp stores one Hugging Face family: name style, value transforms, table preferences."""

    model_type: str
    style: str = "decoder"  # "decoder": model.layers.N. / model.*, lm_head; "bert": encoder.layer.N. / embeddings.*
    permute_qk: bool = False  # llama.cpp's LlamaModel.permute on q_proj/k_proj rows
    norm_shift: float = 0.0  # Gemma: llama.cpp stores 1 + w for every *norm.weight
    overrides: tuple[tuple[str, str], ...] = ()  # GGUF base name → preferred Hugging Face module (within a block)


_QK_NORM = (("attn_q_norm", "self_attn.q_norm"), ("attn_k_norm", "self_attn.k_norm"))


# A llama-architecture GGUF with experts is a Mixtral conversion.
_MIXTRAL = Family("mixtral", permute_qk=True, overrides=(
    ("ffn_gate_inp", "block_sparse_moe.gate"), ("ffn_gate_exps", "block_sparse_moe.experts.w1"),
    ("ffn_down_exps", "block_sparse_moe.experts.w2"), ("ffn_up_exps", "block_sparse_moe.experts.w3")))


FAMILIES: dict[str, Family] = {
    "llama": Family("llama", permute_qk=True),
    "qwen2": Family("qwen2"),
    "qwen2moe": Family("qwen2_moe", overrides=(("ffn_gate_inp", "mlp.gate"),)),
    "qwen3": Family("qwen3", overrides=_QK_NORM),
    "qwen3moe": Family("qwen3_moe", overrides=(*_QK_NORM, ("ffn_gate_inp", "mlp.gate"))),
    "gemma": Family("gemma", norm_shift=1.0),
    "gemma2": Family("gemma2", norm_shift=1.0),
    "gemma3": Family("gemma3_text", norm_shift=1.0, overrides=_QK_NORM),
    "phi3": Family("phi3", overrides=(("attn_qkv", "self_attn.qkv_proj"), ("ffn_up", "mlp.gate_up_proj"))),
    "bert": Family("bert", style="bert"),
}

_ARCH_BY_NAME = {name: arch for arch, name in MODEL_ARCH_NAMES.items()}


BLOCK = "blk.{bid}."


_DECODER_TOP = ("model.embed_tokens", "model.norm", "lm_head")


def family_for(arch: str, expert_count: int) -> Family:
    if arch == "llama" and expert_count > 0:
        return _MIXTRAL
    return FAMILIES.get(arch) or Family(arch)


def _candidates(arch: Any, tensor: Any) -> tuple[str, ...]:
    arch_specific = TensorNameMap.arch_block_mappings_cfg.get(arch, {}).get(tensor)
    if arch_specific:
        return tuple(arch_specific)
    return tuple(TensorNameMap.mappings_cfg.get(tensor, ())) + tuple(TensorNameMap.block_mappings_cfg.get(tensor, ()))


def _choose(gguf_template: str, candidates: tuple[str, ...], family: Family) -> str | None:
    """The Hugging Face template for a GGUF template: the family's override, else the first in its style."""
    candidates = tuple(c for c in candidates if "{" not in c.replace("{bid}", ""))  # only {bid} is filled in
    in_block = gguf_template.startswith(BLOCK)
    base = gguf_template.removeprefix(BLOCK)
    block_prefix = "encoder.layer.{bid}." if family.style == "bert" else "model.layers.{bid}."
    preferred = dict(family.overrides).get(base)
    if preferred is not None:
        want = block_prefix + preferred if in_block else preferred
        if want in candidates:
            return want
    if in_block:
        return next((c for c in candidates if c.startswith(block_prefix)), None)
    if family.style == "bert":
        return next((c for c in candidates if c.startswith("embeddings.")), None)
    return next((c for c in candidates if c in _DECODER_TOP), None) or next(
        (c for c in candidates if c.startswith("model.") and "{" not in c), None)



@functools.lru_cache(maxsize=64)
def name_tables(arch_name: str, family: Family) -> tuple[dict[str, str], dict[str, str]]:
    """(GGUF template → Hugging Face template, Hugging Face template → GGUF template) for one architecture."""
    arch = _ARCH_BY_NAME.get(arch_name)
    forward: dict[str, str] = {}
    backward: dict[str, str] = {}
    if arch is None:
        return forward, backward
    alternatives: list[tuple[str, str]] = []
    for tensor in MODEL_TENSORS[arch]:
        template = TENSOR_NAMES[tensor]
        if "{" in template.replace("{bid}", "") or ("{bid}" in template and not template.startswith(BLOCK)):
            continue
        candidates = _candidates(arch, tensor)
        chosen = _choose(template, candidates, family)
        if chosen is not None:
            forward[template] = chosen
            backward[chosen] = template
        alternatives += [(c, template) for c in candidates]
    for hf, template in alternatives:  # other spellings convert too (writer side)
        backward.setdefault(hf, template)
    return forward, backward


def gguf_name_table(arch: str, expert_count: int = 0) -> dict[str, str]:
    """GGUF name template → Hugging Face name template for a GGUF architecture (``blk.{bid}.attn_q`` →
    ``model.layers.{bid}.self_attn.q_proj``), as the reader uses it. Empty for architectures gguf does not know."""
    return dict(name_tables(arch, family_for(arch, expert_count))[0])


_BLK_RE = re.compile(r"^blk\.(\d+)\.(.+)$")


SUFFIX_RE = re.compile(r"^(.+)\.(weight|bias)$")


def hf_name(gguf_name: str, forward: dict[str, str]) -> tuple[str | None, int | None, str, str]:
    """(Hugging Face name or None, block index, GGUF base template, parameter suffix) of a GGUF tensor name."""
    m = SUFFIX_RE.match(gguf_name)
    base, suffix = (m[1], m[2]) if m else (gguf_name, "")
    b = _BLK_RE.match(base)
    bid = int(b[1]) if b else None
    template = f"{BLOCK}{b[2]}" if b else base
    hf = forward.get(template)
    if hf is None:
        return None, bid, template, suffix
    name = hf.format(bid=bid) if bid is not None else hf
    return (f"{name}.{suffix}" if suffix else name), bid, template, suffix


def permute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute``: q/k rows from Hugging Face's rotary layout to GGML's (per head, the two
    halves interleaved)."""
    rows = weights.shape[0]
    return weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def unpermute_index(rows: int, n_head: int) -> np.ndarray:
    """For each Hugging Face row of a permuted q/k projection, the row that stores it in the GGUF file."""
    return np.arange(rows).reshape(n_head, rows // n_head // 2, 2).transpose(0, 2, 1).reshape(rows)
