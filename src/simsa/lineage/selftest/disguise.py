"""Output-preserving disguises of a checkpoint, for the lineage self-test (numpy only).

Each disguise rewrites a model's weights so that it computes the same function (exactly, or up to quantisation
error) while its tensors look different: what a team that copied weights could do to hide it. ``simsa lineage
selftest`` applies each to a model and checks the comparison still finds the descent.

Which disguises preserve the output depends on the architecture. Pre-norm decoders with RMSNorm (llama, mistral,
qwen2/3, qwen3-moe, mixtral) allow everything: RMSNorm commutes with any orthogonal map of the residual stream once
its gain is folded into the matrices that read it. Post-LayerNorm encoders (BERT, RoBERTa) allow only permutations of
the residual coordinates (LayerNorm's centring and per-coordinate gain rule out sign flips and rotations), and their
GELU MLP rules out rescaling neurons. A disguise that does not apply says why.

Tensors are transformed one at a time (``Disguise.tensor``); the plan (permutations, the rotation, scales) is drawn
once from a seeded generator in ``prepare``.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from simsa.lineage.formats.checkpoint import Checkpoint
from simsa.lineage.formats.dtypes import FP8_TABLES
from simsa.lineage.formats.reader import TensorReader
from simsa.lineage.formats.safetensors_write import TensorSpec, encode, write_safetensors
from simsa.lineage.model.adapters import map_architecture
from simsa.lineage.model.roles import ArchitectureMap, MappedTensor

RMS_DECODERS = frozenset({"llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "mixtral"})
LN_ENCODERS = frozenset({"bert", "roberta"})
INPUT_KINDS = frozenset({"attn.q", "attn.k", "attn.v", "mlp.gate", "mlp.up", "moe.expert.gate", "moe.expert.up",
                         "moe.shared.gate", "moe.shared.up", "moe.router", "head", "embed.tokens",
                         "embed.positions", "embed.types"})
NORM_READERS = {"input": ("attn.q", "attn.k", "attn.v"),
                "post_attention": ("mlp.gate", "mlp.up", "moe.expert.gate", "moe.expert.up", "moe.shared.gate",
                                   "moe.shared.up", "moe.router"),
                "final": ("head",)}
RESIDUAL_BIASES = frozenset({"attn.o", "mlp.down", "moe.expert.down", "moe.shared.down", "head/transform"})
FP8_BLOCK = 128
FP8_MAX = 448.0  # largest finite F8_E4M3 value


@dataclass
class Model:
    """A checkpoint with what the disguises need to know about it."""

    ckpt: TensorReader
    amap: ArchitectureMap
    config: dict
    entries: dict[str, list[MappedTensor]]
    width: int
    heads: int
    kv_heads: int
    head_dim: int

    @classmethod
    def open(cls, path: str | Path) -> Model:
        ckpt = Checkpoint.open(path)
        amap = map_architecture({n: tuple(ckpt.shape(n)) for n in ckpt.names()}, ckpt.config)
        entries: dict[str, list[MappedTensor]] = {}
        for t in amap.tensors:
            entries.setdefault(t.name, []).append(t)
        text_config = ckpt.config.get("text_config")
        cfg = text_config if isinstance(text_config, dict) else ckpt.config
        width = amap.stacks["text"].hidden_size if "text" in amap.stacks else 0
        heads = int(cfg.get("num_attention_heads") or 0)
        kv = int(cfg.get("num_key_value_heads") or heads)
        head_dim = int(cfg.get("head_dim") or (width // heads if heads else 0))
        return cls(ckpt, amap, ckpt.config, entries, width, heads, kv, head_dim)

    @property
    def family(self) -> str:
        if self.amap.model_type in RMS_DECODERS:
            return "rms_decoder"
        if self.amap.model_type in LN_ENCODERS:
            return "ln_encoder"
        return "other"

    def text(self, name: str) -> list[MappedTensor]:
        return [t for t in self.entries.get(name, []) if t.role.stack == "text"]

    def residual_vectors(self) -> list[str]:
        """1-D tensors of residual width in the text stack: norm gains/biases and biases added to the residual."""
        out = []
        for name, ents in self.entries.items():
            t = ents[0]
            if t.role.stack != "text" or len(t.shape) != 1 or t.shape[0] != self.width:
                continue
            norm = t.role.kind == "norm" and t.role.detail not in ("q_norm", "k_norm")
            if norm or (t.role.kind == "bias" and t.role.detail in RESIDUAL_BIASES):
                out.append(name)
        return out


class NotApplicable(Exception):
    """This disguise would change what the model computes (or cannot be applied to it)."""


# --- the plan's building blocks


def _residual_axis(t: MappedTensor) -> int:
    """The axis of the full stored tensor that indexes residual coordinates (only asked of tensors that have one)."""
    if t.residual_axis is None:
        raise ValueError(f"tensor {t.name!r} has no residual axis")
    return t.residual_axis + (1 if t.expert_index is not None else 0)


def _unit_axis(t: MappedTensor) -> int:
    """The axis of the full stored tensor that indexes units."""
    lead = 1 if t.expert_index is not None else 0
    return lead + 1 - (_residual_axis(t) - lead)


def _take(x: np.ndarray, axis: int, index: np.ndarray, start: int = 0, expert: int | None = None) -> None:
    """In place: reorder ``x`` along ``axis`` within ``[start, start+len(index))`` (of one expert slice)."""
    view = x[expert] if expert is not None else x
    ax = axis - (1 if expert is not None else 0)
    sl = [slice(None)] * view.ndim
    sl[ax] = slice(start, start + len(index))
    block = view[tuple(sl)]
    view[tuple(sl)] = np.take(block, index, axis=ax)


def _scale(x: np.ndarray, axis: int, factors: np.ndarray, start: int = 0, expert: int | None = None) -> None:
    view = x[expert] if expert is not None else x
    ax = axis - (1 if expert is not None else 0)
    sl = [slice(None)] * view.ndim
    sl[ax] = slice(start, start + len(factors))
    shape = [1] * view.ndim
    shape[ax] = len(factors)
    view[tuple(sl)] *= factors.reshape(shape).astype(view.dtype)


def _unit_start(t: MappedTensor) -> int:
    return t.unit_range[0] if t.unit_range else 0


class Disguise:
    """One output-preserving rewrite. Subclasses fill ``prepare`` and ``tensor``."""

    name = ""
    description = ""

    def applicable(self, model: Model) -> str | None:
        """None when the disguise applies, else the reason it does not."""
        return None

    def prepare(self, model: Model, rng: np.random.Generator) -> None:
        self.model = model

    def tensor(self, name: str, x: np.ndarray) -> np.ndarray:
        return x

    def write(self, model: Model, out: Path, rng: np.random.Generator) -> None:
        """Write the disguised copy of ``model`` as a Hugging Face directory at ``out``."""
        self.prepare(model, rng)
        write_model(model, out, self.tensor)

    def quantised_share(self, model: Model) -> float | None:
        """Share of parameters stored in a block-quantised format (None: this disguise has no such blocks)."""
        return None


def _float_dtype(model: Model, name: str) -> str:
    dtype = model.ckpt.dtype(name)
    return dtype if dtype in ("F32", "F16", "BF16") else "BF16"


def write_model(model: Model, out: Path, transform: Callable[[str, np.ndarray], np.ndarray],
                dtype_of: Callable[[str], str] | None = None, config: dict | None = None,
                extra: Mapping[str, tuple[str, Callable[[], np.ndarray]]] | None = None) -> None:
    """Write every tensor of ``model`` through ``transform`` into ``out/model.safetensors`` with config + tokenizer."""
    out.mkdir(parents=True, exist_ok=True)
    ckpt = model.ckpt
    dtype_of = dtype_of or (lambda n: _float_dtype(model, n))
    integer = {n for n in ckpt.names() if ckpt.dtype(n) not in ("F32", "F16", "BF16", "F64") and not
               ckpt.dtype(n).startswith("F8")}
    specs = [TensorSpec(n, ckpt.dtype(n) if n in integer else dtype_of(n), tuple(ckpt.shape(n)))
             for n in ckpt.names()]
    makers: dict[str, Callable[[], np.ndarray]] = {}
    for n, (dtype, make) in (extra or {}).items():
        probe = make()
        specs.append(TensorSpec(n, dtype, tuple(probe.shape)))
        makers[n] = make

    def produce(spec: TensorSpec) -> np.ndarray:
        if spec.name in makers:
            return makers[spec.name]()
        if spec.name in integer:
            return ckpt.read_index(spec.name, np.arange(spec.shape[0]), allow_integer=True).astype(
                np.dtype(_INT_NUMPY[spec.dtype])) if spec.shape else np.asarray(
                ckpt.read(spec.name, allow_integer=True)).astype(np.dtype(_INT_NUMPY[spec.dtype]))
        values = transform(spec.name, np.array(ckpt.read(spec.name), dtype=np.float32))
        return encode(values, spec.dtype)

    write_safetensors(out / "model.safetensors", specs, produce, {"format": "pt"})
    (out / "config.json").write_text(json.dumps(config if config is not None else model.config, indent=1))
    for path in ckpt.tokenizer_files.values():
        shutil.copyfile(path, out / Path(path).name)


_INT_NUMPY = {"I8": "i1", "I16": "<i2", "I32": "<i4", "I64": "<i8", "U8": "u1", "U16": "<u2", "U32": "<u4",
              "U64": "<u8", "BOOL": "u1"}


# --- residual-stream disguises


class ResidualBasis(Disguise):
    """Change the residual basis: ``v → T v`` for every residual vector (a signed permutation or a rotation)."""

    def _set_basis(self, perm: np.ndarray | None, signs: np.ndarray | None, matrix: np.ndarray | None) -> None:
        self.perm, self.signs, self.matrix = perm, signs, matrix
        self.vectors = set(self.model.residual_vectors())
        self.norms = {n for n in self.vectors if self.model.entries[n][0].role.kind == "norm"}

    def _map_axis(self, x: np.ndarray, axis: int, expert: int | None) -> np.ndarray:
        view = x[expert] if expert is not None else x
        ax = axis - (1 if expert is not None else 0)
        moved = np.moveaxis(view, ax, -1)
        if self.matrix is not None:
            new = moved @ self.matrix.T
        else:
            new = moved[..., self.perm] * (self.signs if self.signs is not None else 1.0)
        result = np.moveaxis(new, -1, ax)
        if expert is not None:
            x[expert] = result
            return x
        return np.ascontiguousarray(result, dtype=np.float32)

    def _residual(self, name: str, x: np.ndarray) -> np.ndarray:
        ents = self.model.text(name)
        if name in self.norms:  # gains (and LayerNorm biases) follow their coordinates; never sign-flipped
            return x[self.perm] if self.perm is not None else x  # a rotation replaces them (see ResidualRotation)
        if name in self.vectors:
            return self._map_axis(x, 0, None)
        done: set[tuple[int, int | None]] = set()
        for t in ents:
            if t.residual_axis is None:
                continue
            key = (_residual_axis(t), t.expert_index)
            if key in done:
                continue
            done.add(key)
            x = self._map_axis(x, key[0], t.expert_index)
            if t.role.kind == "head" and t.role.detail == "transform" and x.ndim == 2 and x.shape[0] == x.shape[1]:
                x = self._map_axis(x, 0, None)  # the MLM head transform writes into the embedding basis too
        return x


class ResidualPermutation(ResidualBasis):
    name = "residual_permutation"
    description = "permute the residual-stream coordinates (and flip their signs where the norms allow)"

    def applicable(self, model: Model) -> str | None:
        if model.family == "other":
            return f"model type {model.amap.model_type!r}: the residual layout is not known to the self-test"
        return None

    def prepare(self, model: Model, rng: np.random.Generator) -> None:
        super().prepare(model, rng)
        signs = rng.choice([-1.0, 1.0], size=model.width).astype(np.float32) if model.family == "rms_decoder" \
            else None
        self._set_basis(rng.permutation(model.width), signs, None)

    def tensor(self, name: str, x: np.ndarray) -> np.ndarray:
        return self._residual(name, x)


class _GainFolding(Disguise):
    """Fold RMSNorm gains into the matrices that read them, then give each norm new random gains (divided back out).

    The stored gains then look like any trained model's but carry nothing of the parent's.
    """

    def _fold_plan(self, model: Model, rng: np.random.Generator) -> None:
        self.gain_of: dict[str, np.ndarray] = {}  # norm name -> original gain
        self.new_gain: dict[str, np.ndarray] = {}
        self.readers: dict[str, str] = {}  # reader tensor name -> norm name
        by_layer: dict[tuple[int | None, str], list[str]] = {}
        for name, ents in model.entries.items():
            for t in ents:
                if t.role.stack == "text" and t.residual_axis == 1:
                    by_layer.setdefault((t.role.layer, t.role.kind), []).append(name)
        for name in model.residual_vectors():
            t = model.entries[name][0]
            if t.role.kind != "norm":
                continue
            kinds = NORM_READERS.get(t.role.detail)
            if kinds is None:
                raise NotApplicable(f"norm {name} ({t.role.detail}) feeds tensors the self-test cannot fold into")
            found = [r for k in kinds for r in by_layer.get((t.role.layer, k), [])]
            if not found:
                raise NotApplicable(f"norm {name} has no matrix to fold its gain into (tied embeddings?)")
            self.gain_of[name] = np.asarray(model.ckpt.read(name), dtype=np.float32)
            self.new_gain[name] = np.exp(rng.normal(0.0, 0.3, size=model.width)).astype(np.float32)
            for r in found:
                self.readers[r] = name

    def _fold(self, name: str, x: np.ndarray, between: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Fold (original gain, then ``between`` on the residual axis, then divide the new gain out)."""
        norm = self.readers.get(name)
        if norm is None:
            return between(x)
        x = self._scale_residual(name, x, self.gain_of[norm])
        x = between(x)
        return self._scale_residual(name, x, 1.0 / self.new_gain[norm])

    def _scale_residual(self, name: str, x: np.ndarray, factors: np.ndarray) -> np.ndarray:
        done = set()
        for t in self.model.text(name):
            if t.residual_axis is None or (t.expert_index, _residual_axis(t)) in done:
                continue
            done.add((t.expert_index, _residual_axis(t)))
            _scale(x, _residual_axis(t), factors, 0, t.expert_index)
        return x

    def _rms_only(self, model: Model) -> str | None:
        if model.family != "rms_decoder":
            return ("needs RMSNorm pre-norm layers (LayerNorm centres and scales each coordinate, so folding its "
                    "gain or rotating the residual stream changes the output)")
        return None


class GainFolding(_GainFolding):
    name = "norm_gain_folding"
    description = "fold the norm gains into the matrices that read them and store new random gains"

    def applicable(self, model: Model) -> str | None:
        return self._rms_only(model)

    def prepare(self, model: Model, rng: np.random.Generator) -> None:
        super().prepare(model, rng)
        self._fold_plan(model, rng)

    def tensor(self, name: str, x: np.ndarray) -> np.ndarray:
        if name in self.new_gain:
            return self.new_gain[name].copy()
        return self._fold(name, x, lambda v: v)


class ResidualRotation(_GainFolding, ResidualBasis):
    name = "residual_rotation"
    description = "fold the norm gains, rotate the residual stream by a random orthogonal matrix, store new gains"

    def applicable(self, model: Model) -> str | None:
        return self._rms_only(model)

    def prepare(self, model: Model, rng: np.random.Generator) -> None:
        Disguise.prepare(self, model, rng)
        self._fold_plan(model, rng)
        q, r = np.linalg.qr(rng.standard_normal((model.width, model.width)))
        q *= np.sign(np.diag(r))  # Haar-distributed
        self._set_basis(None, None, q.astype(np.float32))

    def tensor(self, name: str, x: np.ndarray) -> np.ndarray:
        if name in self.new_gain:
            return self.new_gain[name].copy()
        return self._fold(name, x, lambda v: self._residual(name, v))


# --- unit-level disguises


def _layer_tensors(model: Model) -> dict[tuple[int | None, str], list[MappedTensor]]:
    out: dict[tuple[int | None, str], list[MappedTensor]] = {}
    for ents in model.entries.values():
        for t in ents:
            if t.role.stack == "text" and t.residual_axis is not None:
                out.setdefault((t.role.layer, t.role.kind), []).append(t)
    return out


def _biases(model: Model) -> dict[tuple[int | None, str], list[str]]:
    out: dict[tuple[int | None, str], list[str]] = {}
    for name, ents in model.entries.items():
        t = ents[0]
        if t.role.stack == "text" and t.role.kind == "bias" and len(t.shape) == 1:
            out.setdefault((t.role.layer, t.role.detail), []).append(name)
    return out


class _UnitPlan(Disguise):
    """Per-tensor edits along the unit axis, planned per (layer, kind)."""

    def prepare(self, model: Model, rng: np.random.Generator) -> None:
        super().prepare(model, rng)
        self.edits: dict[str, list[Callable[[np.ndarray], None]]] = {}
        self.sources: dict[str, str] = {}

    def _edit(self, name: str, fn: Callable[[np.ndarray], None]) -> None:
        self.edits.setdefault(name, []).append(fn)

    def _units(self, t: MappedTensor, fn_kind: str, values: np.ndarray) -> None:
        axis, start, expert = _unit_axis(t), _unit_start(t), t.expert_index
        if fn_kind == "take":
            self._edit(t.name, partial(_take, axis=axis, index=values, start=start, expert=expert))
        else:
            self._edit(t.name, partial(_scale, axis=axis, factors=values, start=start, expert=expert))

    def _bias(self, names: list[str], fn_kind: str, values: np.ndarray, start: int = 0) -> None:
        for n in names:
            if fn_kind == "take":
                self._edit(n, partial(_take, axis=0, index=values, start=start))
            else:
                self._edit(n, partial(_scale, axis=0, factors=values, start=start))

    def _attention(self, lt: dict, bs: dict, layer: int, op: str, per_kind: list[tuple[str, np.ndarray]]) -> None:
        """One edit per attention projection of a layer; q/k/v biases follow their rows (o's bias is residual)."""
        for kind, values in per_kind:
            for t in lt.get((layer, kind), []):
                self._units(t, op, values)
            if kind != "attn.o":
                self._bias(bs.get((layer, kind), []), op, values)

    def tensor(self, name: str, x: np.ndarray) -> np.ndarray:
        if name in self.sources:
            x = np.array(self.model.ckpt.read(self.sources[name]), dtype=np.float32)
        for fn in self.edits.get(name, []):
            fn(x)
        return x


def _attention_ok(model: Model) -> str | None:
    if model.family == "other":
        return f"model type {model.amap.model_type!r}: the attention layout is not known to the self-test"
    if not model.heads or model.heads % max(1, model.kv_heads) or not model.head_dim:
        return "attention head counts are not in the config"
    return None


class HeadPermutation(_UnitPlan):
    name = "head_permutation"
    description = "permute the attention heads (key/value heads and the query heads of each group)"

    def applicable(self, model: Model) -> str | None:
        return _attention_ok(model)

    def prepare(self, model: Model, rng: np.random.Generator) -> None:
        super().prepare(model, rng)
        lt, bs = _layer_tensors(model), _biases(model)
        hd, nq, nkv = model.head_dim, model.heads, model.kv_heads
        group = nq // nkv
        layers = sorted({layer for layer, _ in lt if layer is not None})
        for layer in layers:
            kv = rng.permutation(nkv)
            q_heads = np.concatenate([g * group + rng.permutation(group) for g in kv])
            q_rows = (q_heads[:, None] * hd + np.arange(hd)).ravel()
            kv_rows = (kv[:, None] * hd + np.arange(hd)).ravel()
            self._attention(lt, bs, layer, "take", [("attn.q", q_rows), ("attn.k", kv_rows), ("attn.v", kv_rows),
                                                     ("attn.o", q_rows)])


class UnitRescaling(_UnitPlan):
    name = "unit_rescaling"
    description = "(c, 1/c) rescaling: queries/keys per head, values/outputs per channel, up/down per neuron"

    def applicable(self, model: Model) -> str | None:
        return _attention_ok(model)

    def prepare(self, model: Model, rng: np.random.Generator) -> None:
        super().prepare(model, rng)
        lt, bs = _layer_tensors(model), _biases(model)
        hd, nq, nkv = model.head_dim, model.heads, model.kv_heads
        group = nq // nkv

        def factors(n: int) -> np.ndarray:
            return np.exp(rng.normal(0.0, 0.5, size=n)).astype(np.float32)

        layers = sorted({layer for layer, _ in lt if layer is not None})
        for layer in layers:
            c_qk = np.repeat(factors(nkv), hd)  # per kv head; query heads of the group share it
            c_q = np.repeat(c_qk.reshape(nkv, hd), group, axis=0).ravel()
            c_v = factors(nkv * hd)
            c_o = 1.0 / np.tile(c_v.reshape(nkv, 1, hd), (1, group, 1)).ravel()
            self._attention(lt, bs, layer, "scale", [("attn.q", c_q), ("attn.k", 1.0 / c_qk), ("attn.v", c_v),
                                                      ("attn.o", c_o)])
            if model.family != "rms_decoder":
                continue  # GELU is not homogeneous: rescaling a non-gated neuron changes the output
            for up_kind, down_kind in (("mlp.up", "mlp.down"), ("moe.expert.up", "moe.expert.down"),
                                       ("moe.shared.up", "moe.shared.down")):
                ups = {(t.expert_index, t.role.expert, t.name): t for t in lt.get((layer, up_kind), [])}
                downs = {t.role.expert: t for t in lt.get((layer, down_kind), [])}
                for (_, expert, _), up in ups.items():
                    down = downs.get(expert)
                    if down is None or down.n_units != up.n_units:
                        continue
                    c = factors(up.n_units)
                    self._units(up, "scale", c)
                    self._units(down, "scale", 1.0 / c)


class NeuronPermutation(_UnitPlan):
    name = "neuron_permutation"
    description = "permute MLP neurons, and the experts of MoE layers (router rows with them)"

    def applicable(self, model: Model) -> str | None:
        if model.family == "other":
            return f"model type {model.amap.model_type!r}: the MLP layout is not known to the self-test"
        return None

    def prepare(self, model: Model, rng: np.random.Generator) -> None:
        super().prepare(model, rng)
        lt, bs = _layer_tensors(model), _biases(model)
        layers = sorted({layer for layer, _ in lt if layer is not None})
        for layer in layers:
            for kinds in (("mlp.gate", "mlp.up", "mlp.down"), ("moe.shared.gate", "moe.shared.up",
                                                               "moe.shared.down")):
                ts = [t for k in kinds for t in lt.get((layer, k), [])]
                if not ts:
                    continue
                perm = rng.permutation(ts[0].n_units)
                for t in ts:
                    self._units(t, "take", perm)
                for k in kinds[:2]:
                    self._bias(bs.get((layer, k), []), "take", perm)
            experts = [t for k in ("moe.expert.gate", "moe.expert.up", "moe.expert.down")
                       for t in lt.get((layer, k), [])]
            if not experts:
                continue
            n_exp = 1 + max(t.role.expert for t in experts if t.role.expert is not None)
            order = rng.permutation(n_exp)
            per_expert = {e: rng.permutation(next(t.n_units for t in experts if t.role.expert == e))
                          for e in range(n_exp)}
            for t in lt.get((layer, "moe.router"), []):
                self._units(t, "take", order)
            by_slot = {(t.role.kind, t.role.expert): t for t in experts}
            for t in experts:
                src = by_slot[(t.role.kind, int(order[t.role.expert]))]
                if t.expert_index is None:
                    self.sources[t.name] = src.name  # expert e now holds what expert order[e] held
                    self._units(t, "take", per_expert[int(order[t.role.expert])])
                else:
                    raise NotApplicable("stacked 3-D expert tensors: expert permutation not written yet")


# --- quantisation round trips


def _is_matrix(model: Model, name: str) -> bool:
    ents = model.text(name) or model.entries.get(name, [])
    return bool(ents) and ents[0].residual_axis is not None and len(model.ckpt.shape(name)) >= 2


class Int8RoundTrip(Disguise):
    name = "int8_round_trip"
    description = "quantise every matrix to int8 (per-row absmax scale) and back"

    def tensor(self, name: str, x: np.ndarray) -> np.ndarray:
        if not _is_matrix(self.model, name):
            return x
        scale = np.abs(x).max(axis=-1, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        return (np.clip(np.rint(x / scale), -127, 127) * scale).astype(np.float32)


class Fp8BlockScaled(Disguise):
    name = "fp8_block_round_trip"
    description = "store every layer matrix as F8_E4M3 with 128×128 block scales (DeepSeek-V3 style)"

    def write(self, model: Model, out: Path, rng: np.random.Generator) -> None:
        self.prepare(model, rng)
        quantised = [n for n in model.ckpt.names() if _is_matrix(model, n) and len(model.ckpt.shape(n)) == 2
                     and model.entries[n][0].role.layer is not None]
        cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

        def quantise(name: str) -> tuple[np.ndarray, np.ndarray]:
            if name not in cache:
                cache.clear()
                cache[name] = fp8_block_quantise(np.asarray(model.ckpt.read(name), dtype=np.float32))
            return cache[name]

        def transform(name: str, x: np.ndarray) -> np.ndarray:
            if name not in quantised:
                return x
            return FP8_TABLES["F8_E4M3"][quantise(name)[0]]  # stored codes; the scales go in weight_scale_inv

        def dtype_of(name: str) -> str:
            return "F8_E4M3" if name in quantised else _float_dtype(model, name)

        def scale_of(name: str) -> np.ndarray:
            return quantise(name)[1]

        extra = {n[: -len(".weight")] + ".weight_scale_inv": ("F32", partial(scale_of, n))
                 for n in quantised if n.endswith(".weight")}
        config = dict(model.config)
        config["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                         "weight_block_size": [FP8_BLOCK, FP8_BLOCK]}
        write_model(model, out, transform, dtype_of, config, extra)


def fp8_block_quantise(x: np.ndarray, block: int = FP8_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """F8_E4M3 codes and per-block dequantisation factors (``weight_scale_inv``) of a matrix."""
    rows, cols = x.shape
    br, bc = math.ceil(rows / block), math.ceil(cols / block)
    scale = np.ones((br, bc), dtype=np.float32)
    scaled = np.empty_like(x)
    for i in range(br):
        for j in range(bc):
            blk = x[i * block:(i + 1) * block, j * block:(j + 1) * block]
            amax = float(np.abs(blk).max())
            s = amax / FP8_MAX if amax > 0 else 1.0
            scale[i, j] = s
            scaled[i * block:(i + 1) * block, j * block:(j + 1) * block] = blk / s
    return encode(scaled, "F8_E4M3"), scale


def fp8_block_dequantise(codes: np.ndarray, scale: np.ndarray, block: int = FP8_BLOCK) -> np.ndarray:
    values = FP8_TABLES["F8_E4M3"][codes]
    factors = np.repeat(np.repeat(scale, block, axis=0), block, axis=1)[: codes.shape[0], : codes.shape[1]]
    return (values * factors).astype(np.float32)


class _GGUFRoundTrip(Disguise):
    """Convert to GGUF as llama.cpp would, quantising the matrices; the copy is read back through ``gguf``."""

    quant = ""

    def applicable(self, model: Model) -> str | None:
        from simsa.lineage.selftest.gguf_writer import WRITABLE_MODEL_TYPES

        if model.amap.model_type not in WRITABLE_MODEL_TYPES:
            return f"GGUF writing supports {', '.join(sorted(WRITABLE_MODEL_TYPES))}, not {model.amap.model_type!r}"
        if self.quantised_share(model) == 0:
            block = {"Q8_0": 32, "Q4_K": 256}[self.quant]
            return (f"no matrix row of this model is a multiple of {block} values long, so {self.quant} "
                    "quantises nothing")
        return None

    def write(self, model: Model, out: Path, rng: np.random.Generator) -> None:
        from simsa.lineage.model.tokenizer import load_vocabulary
        from simsa.lineage.selftest.gguf_writer import write_gguf

        self.prepare(model, rng)
        vocab = load_vocabulary(model.ckpt.tokenizer_files)
        tokens = None
        if vocab is not None and vocab.tokens:
            by_id = {i: t for t, i in vocab.tokens.items()}
            tokens = [by_id.get(i, f"<unused{i}>") for i in range(max(by_id) + 1)]
        out.mkdir(parents=True, exist_ok=True)
        tensors = {n: np.asarray(model.ckpt.read(n), dtype=np.float32) for n in model.ckpt.names()
                   if model.ckpt.dtype(n) in ("F32", "F16", "BF16") or model.ckpt.dtype(n).startswith("F8")}
        write_gguf(out / "model.gguf", tensors, model.config, tokens, self.quant)

    def quantised_share(self, model: Model) -> float:
        """Share of parameters whose rows fit this format's blocks (the rest stay F16/F32, as llama.cpp does)."""
        block = {"Q8_0": 32, "Q4_K": 256}[self.quant]
        total = fit = 0
        for n in model.ckpt.names():
            shape = model.ckpt.shape(n)
            size = math.prod(shape)
            total += size
            if len(shape) >= 2 and shape[-1] % block == 0 and _is_matrix(model, n):
                fit += size
        return fit / total if total else 0.0


class GGUFQ8(_GGUFRoundTrip):
    name = "gguf_q8_0"
    description = "convert to GGUF with Q8_0 matrices and read it back through the gguf package"
    quant = "Q8_0"


class GGUFQ4K(_GGUFRoundTrip):
    name = "gguf_q4_k"
    description = "convert to GGUF with Q4_K matrices and read it back through the gguf package"
    quant = "Q4_K"


class Combined(Disguise):
    """Every applicable exact disguise in turn, then an int8 round trip: what a determined copier would do."""

    name = "combined"
    description = "rotation (or permutation), gain folding, rescaling, head and neuron permutation, then int8"
    steps: tuple[type[Disguise], ...] = (ResidualRotation, ResidualPermutation, UnitRescaling, HeadPermutation,
                                         NeuronPermutation, Int8RoundTrip)

    def applicable(self, model: Model) -> str | None:
        if not [s for s in self.steps if s().applicable(model) is None]:
            return "no disguise applies to this architecture"
        return None

    def write(self, model: Model, out: Path, rng: np.random.Generator) -> None:
        import tempfile

        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            current, source = model, None
            steps = [s for s in self.steps if s().applicable(model) is None]
            for i, step in enumerate(steps):
                target = out if i == len(steps) - 1 else Path(tmp) / f"step{i}"
                step().write(current, target, rng)
                if source is not None:
                    source.ckpt.close()
                current = source = Model.open(target)
            if source is not None:
                source.ckpt.close()


ALL: list[type[Disguise]] = [ResidualPermutation, ResidualRotation, GainFolding, UnitRescaling, HeadPermutation,
                             NeuronPermutation, Int8RoundTrip, Fp8BlockScaled, GGUFQ8, GGUFQ4K, Combined]

