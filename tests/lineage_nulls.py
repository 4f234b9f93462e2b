"""Adversarial nulls for the lineage test: independently initialised models that share a residual *layout*.

Two models drawn with different seeds share no weights, so the lineage test must never call one ``derived`` from the
other. But the test's null assumes the residual coordinates are exchangeable, and a layout shared by construction
breaks that assumption: coordinates that are zero in both (a zero-padded hidden size), coordinates with a planted
large scale, coordinates carrying "massive activations" (a few units with huge weights on them, as trained LLMs
develop), or coordinates that duplicate other coordinates. Each builder here writes a llama-shaped Hugging Face
checkpoint (``config.json`` + ``model.safetensors``) from numpy alone, so tests and benches can build many of them in
milliseconds.

Importable as ``tests.lineage_nulls`` (by the benches) and as ``lineage_nulls`` (by pytest); it must not import pytest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

LAYOUTS = ("plain", "zero_pad", "scale_outliers", "massive", "duplicated")


@dataclass(frozen=True)
class Shape:
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 256
    vocab: int = 512

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


@dataclass(frozen=True)
class Layout:
    """What both models of a pair share although their values are drawn independently."""

    kind: str = "plain"
    coords: tuple[int, ...] = ()  # the residual coordinates the layout touches
    scale: float = 30.0  # scale of planted outliers / massive activations
    units: int = 4  # units per coordinate that carry a massive activation
    extra: dict = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.kind}({len(self.coords)} coordinates)"


def layout(kind: str, shape: Shape, count: int, seed: int = 0) -> Layout:
    """A layout touching ``count`` residual coordinates (the last ones for padding, seeded ones otherwise)."""
    if kind not in LAYOUTS:
        raise ValueError(f"unknown layout {kind!r}; known: {', '.join(LAYOUTS)}")
    if kind == "plain" or count == 0:
        return Layout("plain")
    if kind == "zero_pad":
        return Layout(kind, tuple(range(shape.hidden - count, shape.hidden)))
    rng = np.random.default_rng([seed, 4049])
    picked = tuple(int(c) for c in np.sort(rng.choice(shape.hidden, count, replace=False)))
    return Layout(kind, picked)


def _tensors(shape: Shape, rng: np.random.Generator, std: float) -> dict[str, np.ndarray]:
    h, hd = shape.hidden, shape.head_dim

    def w(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * std).astype(np.float32)

    out = {"model.embed_tokens.weight": w(shape.vocab, h), "model.norm.weight": np.ones(h, np.float32),
           "lm_head.weight": w(shape.vocab, h)}
    for i in range(shape.layers):
        p = f"model.layers.{i}."
        out.update({
            p + "input_layernorm.weight": np.ones(h, np.float32),
            p + "post_attention_layernorm.weight": np.ones(h, np.float32),
            p + "self_attn.q_proj.weight": w(shape.heads * hd, h),
            p + "self_attn.k_proj.weight": w(shape.kv_heads * hd, h),
            p + "self_attn.v_proj.weight": w(shape.kv_heads * hd, h),
            p + "self_attn.o_proj.weight": w(h, shape.heads * hd),
            p + "mlp.gate_proj.weight": w(shape.intermediate, h),
            p + "mlp.up_proj.weight": w(shape.intermediate, h),
            p + "mlp.down_proj.weight": w(h, shape.intermediate),
        })
    return out


def _residual_axis(name: str) -> int | None:
    """Which axis of a tensor indexes residual coordinates (None: none does)."""
    if name.endswith(("o_proj.weight", "down_proj.weight")):
        return 0
    if name.endswith("norm.weight"):
        return 0
    if name.endswith(("embed_tokens.weight", "lm_head.weight", "q_proj.weight", "k_proj.weight", "v_proj.weight",
                      "gate_proj.weight", "up_proj.weight")):
        return 1
    return None


def apply_layout(tensors: dict[str, np.ndarray], lay: Layout, rng: np.random.Generator) -> None:
    """Impose ``lay`` on one model's tensors in place (the values stay this model's own)."""
    if lay.kind == "plain" or not lay.coords:
        return
    idx = np.array(lay.coords, dtype=np.int64)
    for name, x in tensors.items():
        axis = _residual_axis(name)
        if axis is None:
            continue
        view = x if axis == 1 or x.ndim == 1 else x.T  # residual coordinates on the last axis
        if lay.kind == "zero_pad":
            view[..., idx] = 0.0
        elif lay.kind == "scale_outliers":
            view[..., idx] *= lay.scale
        elif lay.kind == "duplicated":
            # Each touched coordinate repeats its left neighbour's values: a layout with tied coordinates.
            src = (idx - 1) % view.shape[-1]
            view[..., idx] = view[..., src]
        elif lay.kind == "massive":
            if x.ndim == 1:
                view[idx] = 1.0 / lay.scale  # norm gains damp the massive coordinates, as in trained LLMs
                continue
            base = float(np.abs(view).mean())
            for c in idx:
                carriers = rng.choice(view.shape[0], min(lay.units, view.shape[0]), replace=False)
                view[carriers, c] = base * lay.scale * np.sign(rng.standard_normal(len(carriers)))


def write_llama(out: Path, shape: Shape, seed: int, lay: Layout | None = None, *, std: float = 0.02) -> Path:
    """One independently initialised llama-shaped checkpoint with ``lay`` imposed; returns its directory."""
    rng = np.random.default_rng([seed, 7717])
    tensors = _tensors(shape, rng, std)
    apply_layout(tensors, lay or Layout(), rng)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(out / "model.safetensors"))
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": shape.hidden,
        "intermediate_size": shape.intermediate, "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads, "num_key_value_heads": shape.kv_heads, "vocab_size": shape.vocab,
        "head_dim": shape.head_dim, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
    }
    (out / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return out


def null_pair(root: Path, kind: str, count: int, seed: int, shape: Shape | None = None) -> tuple[Path, Path, Layout]:
    """Two independent models (seeds ``2·seed`` and ``2·seed + 1``) sharing one layout."""
    shape = shape or Shape()
    lay = layout(kind, shape, count, seed)
    name = f"{kind}-{count}-{seed}"
    a = write_llama(root / f"{name}-a", shape, 2 * seed, lay)
    b = write_llama(root / f"{name}-b", shape, 2 * seed + 1, lay)
    return a, b, lay
