"""Unit groups: which tensors give a component's hidden units, and reading them lazily from a checkpoint.

A *unit group* is one set of hidden units of one layer, with one or more *parts* (views of the same units): an MLP
neuron has a gate row, an up row and a down column; MoE experts of a layer are pooled into one group so the test
does not care how experts were reordered; attention queries, keys, values and outputs are separate groups because
their units are different things. Embedding and output-head rows are *paired* groups: token t of the candidate is
compared with the same token string of the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from simsa.lineage.model.roles import ArchitectureMap, MappedTensor

if TYPE_CHECKING:  # formats depends on model, not the reverse: the protocol is needed for types only
    from simsa.lineage.formats.reader import TensorReader

LAYERED = ("attention", "mlp", "experts", "shared_experts", "router")
_MLP_PART = {"mlp.gate": 0, "mlp.up": 1, "mlp.down": 2, "moe.expert.gate": 0, "moe.expert.up": 1,
             "moe.expert.down": 2, "moe.shared.gate": 0, "moe.shared.up": 1, "moe.shared.down": 2}


@dataclass
class UnitGroup:
    key: str  # "attn.q", "mlp", "experts", "router", "embed.tokens", "head", ...
    parts: list[list[MappedTensor]]  # each part: tensors whose units are concatenated in this order
    paired: bool = False

    @property
    def n_units(self) -> int:
        return sum(t.n_units for t in self.parts[0])


@dataclass
class ComponentUnits:
    """A component's unit groups, per layer (layer None for embeddings and heads)."""

    name: str
    layers: dict[int | None, dict[str, UnitGroup]] = field(default_factory=dict)

    @property
    def layered(self) -> bool:
        return any(k is not None for k in self.layers)


def _order(t: MappedTensor) -> tuple:
    return (t.role.expert if t.role.expert is not None else -1, t.unit_range[0] if t.unit_range else 0, t.name)


def unit_groups(amap: ArchitectureMap) -> dict[str, ComponentUnits]:
    """Group every residual-space tensor of a mapped checkpoint into unit groups, by component and layer."""
    comps: dict[str, ComponentUnits] = {}
    buckets: dict[tuple[str, int | None, str], list[list[MappedTensor]]] = {}
    for t in amap.tensors:
        if t.residual_axis is None or t.n_units == 0:
            continue
        comp = t.role.component
        kind = t.role.kind
        if kind in _MLP_PART:
            key, part = comp.split(".", 1)[1], _MLP_PART[kind]
        elif kind == "head" and t.role.detail:  # pooler, classifier, MLM transform: not vocabulary rows
            key, part = f"head.{t.role.detail}", 0
        else:
            key, part = kind, 0
        parts = buckets.setdefault((comp, t.role.layer, key), [[], [], []])
        parts[part].append(t)
    for (comp, layer, key), parts in buckets.items():
        parts = [sorted(p, key=_order) for p in parts if p]
        counts = {sum(t.n_units for t in p) for p in parts}
        cu = comps.setdefault(comp, ComponentUnits(comp))
        paired = key in ("embed.tokens", "embed.positions", "embed.types", "head")
        if len(counts) == 1:
            cu.layers.setdefault(layer, {})[key] = UnitGroup(key, parts, paired)
        else:  # parts disagree on the unit count (unusual layouts): test each part on its own
            for i, p in enumerate(parts):
                cu.layers.setdefault(layer, {})[f"{key}.{i}"] = UnitGroup(f"{key}.{i}", [p], paired)
    return comps


def read_units(ckpt: TensorReader, tensors: list[MappedTensor], index: np.ndarray) -> np.ndarray:
    """Units ``index`` (into the concatenation of ``tensors``' units) as rows ``(len(index), residual width)``.

    Non-finite values (a corrupt or overflowed checkpoint) are read as 0 so one bad weight cannot derail the
    linear algebra; identity checks still see the raw bytes.
    """
    out: list[np.ndarray] = []
    order: list[np.ndarray] = []
    offset = 0
    for t in tensors:
        n = t.n_units
        sel = np.nonzero((index >= offset) & (index < offset + n))[0]
        if sel.size and t.residual_axis is not None:  # a tensor without a residual axis has no units
            local = index[sel] - offset + (t.unit_range[0] if t.unit_range else 0)
            unit_axis = 1 - t.residual_axis
            block = ckpt.read_index(t.name, local, axis=unit_axis, expert=t.expert_index)
            out.append(block if unit_axis == 0 else block.T)
            order.append(sel)
        offset += n
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    rows = np.concatenate(out, axis=0)
    if not np.isfinite(rows).all():  # one pass to check; only a corrupt block pays for the replacement
        rows = np.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0)
    result = np.empty_like(rows)
    result[np.concatenate(order)] = rows
    return result
