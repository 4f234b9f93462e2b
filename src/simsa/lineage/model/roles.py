"""Canonical roles of checkpoint tensors.

Architecture adapters (``adapters.py``) translate each framework's tensor names into these roles, so the statistics
never see a framework name. A role says which *stack* a tensor belongs to (the language model, a vision tower, an
audio encoder, a projector), which layer, and what it does. ``residual_axis`` says which axis of the tensor indexes
that stack's residual stream: the statistics compare *hidden units* as vectors in residual space, so a ``[out, in]``
query projection contributes its rows (axis 1 is residual) and an output projection its columns (axis 0 is residual).
"""

from __future__ import annotations

from dataclasses import dataclass, field

STACKS = ("text", "vision", "audio", "projector")

# Role kinds. Names mirror what the tensor does, not what a framework calls it.
ATTENTION_KINDS = ("attn.q", "attn.k", "attn.v", "attn.o", "attn.q_a", "attn.q_b", "attn.kv_a", "attn.kv_b",
                   "xattn.q", "xattn.k", "xattn.v", "xattn.o")
MLP_KINDS = ("mlp.gate", "mlp.up", "mlp.down")
MOE_EXPERT_KINDS = ("moe.expert.gate", "moe.expert.up", "moe.expert.down")
SHARED_EXPERT_KINDS = ("moe.shared.gate", "moe.shared.up", "moe.shared.down")
OTHER_KINDS = ("embed.tokens", "embed.positions", "embed.types", "embed.patch", "head", "moe.router",
               "norm", "bias", "projector", "other")


@dataclass(frozen=True, slots=True)
class Role:
    """Where a tensor (or a slice of a fused tensor) sits in the model."""

    stack: str  # one of STACKS
    kind: str  # one of the *_KINDS above
    layer: int | None = None  # layer index as in the tensor name, None outside the layer stack
    expert: int | None = None  # routed-expert index for MoE experts
    detail: str = ""  # e.g. which norm ("input", "post_attention", "q_norm") or "bias"

    @property
    def component(self) -> str:
        """The component this role is reported under, e.g. ``text.attention``."""
        return f"{self.stack}.{component_group(self.kind)}"


def component_group(kind: str) -> str:
    if kind.startswith(("attn.", "xattn.")):
        return "attention"
    if kind in MLP_KINDS:
        return "mlp"
    if kind in MOE_EXPERT_KINDS:
        return "experts"
    if kind in SHARED_EXPERT_KINDS:
        return "shared_experts"
    if kind == "moe.router":
        return "router"
    if kind in ("embed.tokens", "embed.positions", "embed.types", "embed.patch"):
        return "embedding"
    if kind == "head":
        return "output_head"
    if kind == "norm":
        return "norms"
    if kind == "projector":
        return "projector"
    return "other"


@dataclass(frozen=True, slots=True)
class MappedTensor:
    """One tensor, or one slice of a fused tensor, with its role.

    ``unit_range`` selects ``[start, stop)`` along the *unit* axis (the axis that is not residual) for fused tensors
    such as ``qkv_proj`` or ``gate_up_proj``. ``expert_index`` selects the leading index of a stacked 3-D expert tensor
    (``experts.gate_up_proj`` of shape ``[experts, out, in]``); axes below are then counted after that selection.
    ``residual_axis`` is None where the tensor has no residual-stream axis (norm gains, biases, low-rank inner parts,
    convolution kernels): such tensors take part in identity checks and naive statistics, not in the unit test.
    """

    name: str
    role: Role
    shape: tuple[int, ...]
    residual_axis: int | None = None
    unit_range: tuple[int, int] | None = None
    expert_index: int | None = None

    @property
    def n_units(self) -> int:
        """Number of hidden units (vectors in residual space) this entry contributes."""
        if self.residual_axis is None:
            return 0
        shape = self.shape[1:] if self.expert_index is not None else self.shape
        if self.unit_range is not None:
            return self.unit_range[1] - self.unit_range[0]
        return int(shape[1 - self.residual_axis]) if len(shape) == 2 else 0


@dataclass(frozen=True)
class StackInfo:
    """Size of one stack: its residual width and layer count."""

    hidden_size: int
    num_layers: int


@dataclass
class ArchitectureMap:
    """What an adapter made of a checkpoint."""

    model_type: str
    adapter: str  # adapter name that produced the map ("llama", "bert", ..., "generic")
    stacks: dict[str, StackInfo]
    tensors: list[MappedTensor]
    unmapped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def by_component(self) -> dict[str, list[MappedTensor]]:
        out: dict[str, list[MappedTensor]] = {}
        for t in self.tensors:
            out.setdefault(t.role.component, []).append(t)
        return out

    def names_by_component(self) -> dict[str, set[str]]:
        """Tensor names per component (a fused tensor's name appears once per component it feeds)."""
        return {comp: {t.name for t in ts} for comp, ts in self.by_component().items()}
