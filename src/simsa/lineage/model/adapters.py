"""Architecture adapters: checkpoint tensor names and shapes → canonical roles (torch-free, no file I/O).

Lineage statistics compare *hidden units* between two models that may come from different frameworks or families,
so every tensor name must first be translated into a :class:`~simsa.lineage.model.roles.Role` with the axis that indexes
its stack's residual stream. :func:`map_architecture` does that from the tensor names → shapes of a checkpoint and
its parsed ``config.json``: an adapter picked by ``model_type`` (or, for multimodal wrappers, by the ``text_config``
/ ``vision_config`` / ``audio_config`` sub-configs) says how the family stores fused projections (GPT-2 ``Conv1D``,
GPT-NeoX per-head interleaved ``query_key_value``, Whisper's encoder–decoder split); a single table of name
patterns, shared by all adapters, then assigns roles. Unknown ``model_type`` or a missing config falls back to the
``generic`` adapter, which works from the same patterns plus shapes. Nothing is dropped silently: names no pattern
explains land in ``ArchitectureMap.unmapped`` and anything surprising is explained in ``ArchitectureMap.notes``.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from simsa.lineage.model.roles import ArchitectureMap, MappedTensor, Role, StackInfo

__all__ = [
    "ADAPTERS",
    "GENERIC",
    "Adapter",
    "adapter_for",
    "describe",
    "map_architecture",
    "parameters_by_component",
    "tensor_elements",
]


# --------------------------------------------------------------------------------------------------- adapters


@dataclass(frozen=True)
class Adapter:
    """How one model family stores its tensors, beyond what the shared name patterns say."""

    name: str
    model_types: tuple[str, ...]
    base_stack: str = "text"  # stack of names that carry no tower prefix
    conv1d: bool = False  # GPT-2 Conv1D: linear weights stored [in, out]
    interleaved_qkv: bool = False  # fused query_key_value rows grouped per head as (heads, 3, head_dim)
    audio_encoder_decoder: bool = False  # Whisper: encoder → "audio" stack, decoder → "text" stack
    language_model: bool = True  # predicts tokens, so a missing head tensor means a tied head


ADAPTERS: tuple[Adapter, ...] = (
    Adapter("llama", ("llama", "mistral", "ministral", "qwen2", "qwen3", "olmo2", "granite", "smollm3")),
    Adapter("qwen_moe", ("qwen2_moe", "qwen3_moe")),
    Adapter("mixtral", ("mixtral",)),
    Adapter("glm4", ("glm4", "glm")),
    Adapter("glm4_moe", ("glm4_moe",)),
    Adapter("deepseek", ("deepseek_v2", "deepseek_v3", "kimi_k2")),
    Adapter("gemma", ("gemma", "gemma2", "gemma3", "gemma3_text")),
    Adapter("phi3", ("phi3",)),
    Adapter("gpt2", ("gpt2",), conv1d=True),
    Adapter("gpt_neox", ("gpt_neox",), interleaved_qkv=True),
    Adapter("bert", ("bert", "roberta", "xlm-roberta")),
    Adapter("vit", ("vit",), base_stack="vision", language_model=False),
    Adapter("clip", ("clip", "siglip", "siglip2", "clip_text_model", "siglip_text_model"), language_model=False),
    Adapter("clip_vision", ("clip_vision_model", "siglip_vision_model", "siglip2_vision_model"),
            base_stack="vision", language_model=False),
    Adapter("qwen2_vl", ("qwen2_vl", "qwen2_5_vl", "qwen2_vl_text", "qwen2_5_vl_text")),
    Adapter("qwen2_vl_vision", ("qwen2_vl_vision", "qwen2_5_vl_vision"), base_stack="vision", language_model=False),
    Adapter("whisper", ("whisper",), audio_encoder_decoder=True),
    Adapter("llava", ("llava", "llava_next", "llava_onevision", "mistral3")),
)
GENERIC = Adapter("generic", ())
MULTIMODAL = Adapter("multimodal", ())
_BY_TYPE: dict[str, Adapter] = {mt: a for a in ADAPTERS for mt in a.model_types}
_SUB_CONFIGS = (("text_config", "text"), ("vision_config", "vision"), ("audio_config", "audio"))


def adapter_for(model_type: str | None) -> Adapter | None:
    """The dedicated adapter for a ``model_type``, or None when only the generic fallback applies."""
    return _BY_TYPE.get(model_type or "")


# --------------------------------------------------------------------------------------------------- name patterns

# Which tower a name belongs to, by prefix; first match wins. Names matching none belong to the adapter's base stack.
_STACK_PREFIXES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), s) for p, s in (
    (r"^(?:model\.)?visual\.merger\.", "projector"),
    (r"^(?:model\.)?(?:multi_modal_projector|mm_projector|multimodal_projector|vision_projection|visual_projection"
     r"|text_projection|image_projection|audio_projector|audio_projection)(?:\.|$)", "projector"),
    (r"^(?:logit_scale|logit_bias)$", "projector"),
    (r"^(?:model\.)?(?:vision_tower|vision_model|visual|vision_encoder|image_encoder)\.(?:vision_model\.)?", "vision"),
    (r"^(?:model\.)?(?:audio_tower|audio_model|audio_encoder)\.", "audio"),
    (r"^(?:model\.)?(?:language_model|text_model)\.(?:model\.)?", "text"),
))
_ENC_DEC_PREFIXES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(?:model\.)?encoder\."), "audio"),
    (re.compile(r"^(?:model\.)?decoder\."), "text"),
)

# First ``layers.N.`` (or ``layer``/``h``/``blocks``) in a name: the layer stack.
_LAYER_RE = re.compile(r"^(?P<pre>(?:.*?\.)?)(?:layers|layer|h|blocks|block)\.(?P<idx>\d+)\.(?P<rest>.+)$")

_ATT = r"(?:self_attn|self_attention|attention|attention\.self|attention\.attention|attn)"
_XATT = r"(?:encoder_attn|cross_attn|crossattention|crossattention\.self)"
_MLP = r"(?:mlp|feed_forward|ffn|block_sparse_moe|moe)"

# (module regex relative to the layer, kind, io, detail). io: "in" reads the residual stream ([out, in] weight:
# residual axis 1), "out" writes it (axis 0), None: no residual axis. Kinds starting with "@" are fused tensors.
_LAYER_RULES_SRC: tuple[tuple[str, str, str | None, str], ...] = (
    (rf"{_ATT}\.(?:q_proj|query|wq|q_lin)", "attn.q", "in", ""),
    (rf"{_ATT}\.(?:k_proj|key|wk|k_lin)", "attn.k", "in", ""),
    (rf"{_ATT}\.(?:v_proj|value|wv|v_lin)", "attn.v", "in", ""),
    (rf"{_ATT}\.(?:o_proj|out_proj|dense|wo|proj|c_proj|out_lin)|attention\.output\.dense", "attn.o", "out", ""),
    (rf"{_ATT}\.query_key_value", "@qkv_interleaved", "in", ""),
    (rf"{_ATT}\.(?:qkv_proj|qkv|c_attn|Wqkv|wqkv|W_pack|in_proj)", "@qkv", "in", ""),
    (rf"{_ATT}\.q_a_proj", "attn.q_a", "in", ""),
    (rf"{_ATT}\.q_b_proj", "attn.q_b", None, ""),
    (rf"{_ATT}\.kv_a_proj_with_mqa", "attn.kv_a", "in", ""),
    (rf"{_ATT}\.kv_b_proj", "attn.kv_b", None, ""),
    (rf"{_ATT}\.q_a_layernorm", "norm", None, "q_a"),
    (rf"{_ATT}\.kv_a_layernorm", "norm", None, "kv_a"),
    (rf"{_ATT}\.(?:q_norm|q_layernorm)", "norm", None, "q_norm"),
    (rf"{_ATT}\.(?:k_norm|k_layernorm)", "norm", None, "k_norm"),
    (rf"{_XATT}\.(?:q_proj|query)", "xattn.q", "in", ""),
    (rf"{_XATT}\.(?:k_proj|key)", "xattn.k", "in", ""),
    (rf"{_XATT}\.(?:v_proj|value)", "xattn.v", "in", ""),
    (rf"{_XATT}\.(?:out_proj|o_proj|dense)|crossattention\.output\.dense", "xattn.o", "out", ""),
    (r"encoder_attn_layer_norm|crossattention\.output\.LayerNorm", "norm", None, "cross_attention"),
    (r"input_layernorm|ln_1|layernorm_before|layer_norm1|self_attn_layer_norm|norm1|attention_norm|ln_attn"
     r"|pre_attention_layernorm", "norm", None, "input"),
    (r"post_attention_layernorm|ln_2|layernorm_after|layer_norm2|norm2|ffn_norm|attention\.output\.LayerNorm"
     r"|final_layer_norm", "norm", None, "post_attention"),
    (r"pre_feedforward_layernorm", "norm", None, "pre_feedforward"),
    (r"post_feedforward_layernorm|output\.LayerNorm", "norm", None, "post_feedforward"),
    (r"post_self_attn_layernorm", "norm", None, "post_self_attn"),
    (r"post_mlp_layernorm", "norm", None, "post_mlp"),
    # mixture of experts
    (rf"{_MLP}\.(?:gate|router)", "moe.router", "in", ""),
    (rf"{_MLP}\.shared_expert_gate", "moe.router", "in", "shared_expert_gate"),
    (rf"{_MLP}\.experts\.(?P<e>\d+)\.(?:gate_proj|w1)", "moe.expert.gate", "in", ""),
    (rf"{_MLP}\.experts\.(?P<e>\d+)\.(?:up_proj|w3)", "moe.expert.up", "in", ""),
    (rf"{_MLP}\.experts\.(?P<e>\d+)\.(?:down_proj|w2)", "moe.expert.down", "out", ""),
    (rf"{_MLP}\.shared_experts?\.(?:gate_proj|w1)", "moe.shared.gate", "in", ""),
    (rf"{_MLP}\.shared_experts?\.(?:up_proj|w3)", "moe.shared.up", "in", ""),
    (rf"{_MLP}\.shared_experts?\.(?:down_proj|w2)", "moe.shared.down", "out", ""),
    # dense MLP
    (rf"{_MLP}\.(?:gate_proj|w1|wi_0)", "mlp.gate", "in", ""),
    (rf"{_MLP}\.(?:up_proj|w3|wi_1|c_fc|fc1|fc_in|dense_h_to_4h|lin1)|intermediate\.dense|fc1", "mlp.up", "in", ""),
    (rf"{_MLP}\.(?:down_proj|w2|wo|c_proj|fc2|fc_out|dense_4h_to_h|lin2)|output\.dense|fc2", "mlp.down", "out", ""),
    (rf"{_MLP}\.gate_up_proj", "@gate_up", "in", ""),
    # multi-token-prediction modules (DeepSeek-V3, GLM-4.5) appended after the last decoder layer
    (r"enorm", "norm", None, "mtp_embedding"),
    (r"hnorm", "norm", None, "mtp_hidden"),
    (r"shared_head\.norm", "norm", None, "mtp_final"),
    (r"shared_head\.head", "head", "in", "mtp"),
    (r"eh_proj", "other", "out", "mtp.eh_proj"),
    (r"embed_tokens", "embed.tokens", "in", "mtp"),
)
_STACKED_EXPERTS_RE = re.compile(
    rf"^{_MLP}\.experts\.(?P<p>gate_up_proj|down_proj|gate_proj|up_proj)(?P<b>_bias)?(?:\.(?P<wb>weight|bias))?$")

# Outside the layer stack; matched against the end of the (tower-relative) name, most specific first.
_TOP_RULES_SRC: tuple[tuple[str, str, str | None, str], ...] = (
    (r"head\.attention\.in_proj", "head", "in", "attention_pool.qkv"),
    (r"head\.attention\.out_proj", "head", "out", "attention_pool.o"),
    (r"head\.mlp\.fc1", "head", "in", "attention_pool.fc1"),
    (r"head\.mlp\.fc2", "head", "out", "attention_pool.fc2"),
    (r"head\.layernorm", "norm", None, "attention_pool"),
    (r"head\.probe", "head", None, "attention_pool.probe"),
    (r"cls\.predictions\.transform\.dense|lm_head\.dense", "head", "in", "transform"),
    (r"cls\.predictions\.transform\.LayerNorm|lm_head\.layer_norm|lm_head\.ln", "norm", None, "head_transform"),
    (r"cls\.seq_relationship", "head", "in", "nsp"),
    (r"pooler\.dense", "head", "in", "pooler"),
    (r"classifier\.dense|classifier\.out_proj|classifier|score|qa_outputs", "head", "in", "classifier"),
    (r"lm_head\.decoder|cls\.predictions\.decoder|cls\.predictions|lm_head|embed_out|proj_out|output|head",
     "head", "in", ""),
    (r"embeddings\.(?:LayerNorm|layer_norm|norm)|emb_ln|word_embeddings_layernorm|layernorm_embedding"
     r"|embed_layer_norm", "norm", None, "embeddings"),
    (r"embeddings\.token_type_embeddings|token_type_embeddings", "embed.types", "in", ""),
    (r"embeddings\.(?:cls_token|class_embedding)|cls_token|class_embedding", "embed.tokens", None, "class"),
    (r"embeddings\.mask_token|mask_token", "embed.tokens", None, "mask"),
    (r"embed_tokens|wte|embed_in|word_embeddings|token_embedding|tok_embeddings|shared", "embed.tokens", "in", ""),
    (r"wpe|embed_positions|position_embeddings|position_embedding|pos_embed|positional_embedding",
     "embed.positions", "in", ""),
    (r"patch_embeddings\.projection|patch_embedding|patch_embed\.proj|patch_embed|patch_conv|conv1|conv2",
     "embed.patch", None, ""),
    (r"pre_layrnorm|pre_layernorm|ln_pre", "norm", None, "pre"),
    (r"norm|ln_f|final_layer_norm|final_layernorm|layernorm|post_layernorm|layer_norm|ln_post|norm_f|final_norm",
     "norm", None, "final"),
)

_LAYER_RULES = tuple((re.compile(p), k, io, d) for p, k, io, d in _LAYER_RULES_SRC)
_TOP_RULES = tuple((re.compile(rf"(?:^|\.)(?:{p})$"), k, io, d) for p, k, io, d in _TOP_RULES_SRC)

# Non-parameter buffers and quantisation companions: not weights of the model, left out with a note.
_BUFFER_RE = re.compile(r"(?:^|\.)(?:inv_freq|masked_bias|position_ids|_float_tensor)$")
_QUANT_RE = re.compile(r"\.(?:weight_scale_inv|weight_scale|input_scale)$")


class _Match(NamedTuple):
    """A name's role pattern (a tuple: made once per tensor, so cheap to build matters for 600k-tensor MoEs)."""

    kind: str  # a role kind, or "@qkv" / "@qkv_interleaved" / "@gate_up" / "@experts" for fused tensors
    io: str | None
    detail: str
    param: str  # "weight" or "bias"
    layer: int | None
    expert: int | None = None
    stacked: str = ""  # for "@experts": gate_up_proj / down_proj / gate_proj / up_proj


def _split_param(name: str) -> tuple[str, str]:
    """``module.weight`` → (module, "weight"); bare parameters (``cls_token``, ``probe``) count as weights."""
    head, _, last = name.rpartition(".")
    if head and last in ("weight", "bias"):
        return head, last
    if head and last in ("in_proj_weight", "in_proj_bias"):
        return f"{head}.in_proj", last.removeprefix("in_proj_")
    if head and last == "e_score_correction_bias":
        return head, "bias"
    return name, "weight"


@functools.lru_cache(maxsize=1 << 16)
def _classify_in_layer(rest: str) -> _Match | None:
    """Role pattern of a name relative to its layer (``layer`` left None), cached: every layer repeats the same few
    names (a MoE layer its experts' projections), so a checkpoint of 600k tensors tries the ~45 patterns a few
    thousand times, not 600k times."""
    sm = _STACKED_EXPERTS_RE.match(rest)
    if sm:
        is_bias = bool(sm["b"]) or sm["wb"] == "bias"
        return _Match("@experts", None, "", "bias" if is_bias else "weight", None, stacked=sm["p"])
    module, param = _split_param(rest)
    for rx, kind, io, detail in _LAYER_RULES:
        mm = rx.fullmatch(module)
        if mm:
            e = mm.groupdict().get("e")
            return _Match(kind, io, detail, param, None, int(e) if e is not None else None)
    return None


def _classify(local: str) -> _Match | None:
    """Role pattern of a tower-relative name, before sizes are known."""
    m = _LAYER_RE.match(local)
    if m:
        found = _classify_in_layer(m["rest"])
        if found is None:
            return None
        kind, io, detail, param, _, expert, stacked = found
        return _Match(kind, io, detail, param, int(m["idx"]), expert, stacked)
    module, param = _split_param(local)
    for rx, kind, io, detail in _TOP_RULES:
        if rx.search(module):
            return _Match(kind, io, detail, param, None)
    return None


# --------------------------------------------------------------------------------------------------- configs


def _int(d: dict, *keys: str) -> int | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


@dataclass(frozen=True)
class _StackCfg:
    hidden: int | None = None
    layers: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    model_type: str = ""

    @classmethod
    def from_dict(cls, d: dict) -> _StackCfg:
        # Qwen2-VL's vision config calls its width embed_dim and uses hidden_size for the merger output.
        hidden = _int(d, "embed_dim") if "depth" in d else None
        return cls(
            hidden=hidden or _int(d, "hidden_size", "n_embd", "d_model", "dim", "width", "embed_dim"),
            layers=_int(d, "num_hidden_layers", "n_layer", "num_layers", "n_layers", "depth", "encoder_layers"),
            heads=_int(d, "num_attention_heads", "n_head", "num_heads", "n_heads", "encoder_attention_heads"),
            kv_heads=_int(d, "num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num"),
            head_dim=_int(d, "head_dim", "kv_channels"),
            model_type=str(d.get("model_type") or ""),
        )


def _stack_configs(cfg: dict, adapter: Adapter, base_stack: str) -> dict[str, _StackCfg]:
    """Per-stack sizes from the config: sub-configs of multimodal wrappers, Whisper's encoder/decoder keys."""
    if adapter.audio_encoder_decoder:
        return {
            "audio": _StackCfg(_int(cfg, "d_model"), _int(cfg, "encoder_layers"), _int(cfg, "encoder_attention_heads"),
                               model_type=str(cfg.get("model_type") or "")),
            "text": _StackCfg(_int(cfg, "d_model"), _int(cfg, "decoder_layers"), _int(cfg, "decoder_attention_heads"),
                              model_type=str(cfg.get("model_type") or "")),
        }
    top = {k: v for k, v in cfg.items() if not isinstance(v, dict)}
    raw: dict[str, dict] = {base_stack: top}
    for key, stack in _SUB_CONFIGS:
        sub = cfg.get(key)
        if isinstance(sub, dict):
            # Keys a sub-config omits (defaults) may sit at the top level (older Qwen2-VL configs keep the LM there).
            raw[stack] = {**top, **sub} if stack == base_stack else sub
    return {s: _StackCfg.from_dict(d) for s, d in raw.items()}


# --------------------------------------------------------------------------------------------------- mapping


@dataclass
class _Stack:
    name: str
    cfg: _StackCfg
    hidden: int | None
    conv1d: bool
    interleaved: bool


class _Notes:
    """Ordered, de-duplicated notes."""

    def __init__(self) -> None:
        self._items: dict[str, None] = {}

    def add(self, text: str) -> None:
        self._items.setdefault(text, None)

    def list(self) -> list[str]:
        return list(self._items)


def _resolve_stack(name: str, adapter: Adapter, base_stack: str) -> tuple[str, str]:
    """(stack, tower-relative name)."""
    rules = (_ENC_DEC_PREFIXES + _STACK_PREFIXES) if adapter.audio_encoder_decoder else _STACK_PREFIXES
    for rx, stack in rules:
        m = rx.match(name)
        if m:
            return stack, name[m.end():]
    return base_stack, name


def _shared_shape(shape: Iterable[int], seen: dict[tuple[int, ...], tuple[int, ...]]) -> tuple[int, ...]:
    """`shape` as a tuple of ints, the same object for equal shapes (a MoE repeats a few shapes 600k times)."""
    as_ints = tuple(map(int, shape))
    return seen.setdefault(as_ints, as_ints)


def _guess_by_names(names: Iterable[str]) -> Adapter | None:
    """A family layout recognisable from names alone (used when the config does not say)."""
    names = list(names)
    if any(n.startswith("gpt_neox.") or n.endswith("embed_in.weight") for n in names):
        return _BY_TYPE["gpt_neox"]
    if any(re.search(r"(?:^|\.)encoder\.conv1\.weight$", n) for n in names) and any(
            re.search(r"(?:^|\.)decoder\.layers\.\d+\.encoder_attn\.", n) for n in names):
        return _BY_TYPE["whisper"]
    if any(".c_attn." in n for n in names):
        return _BY_TYPE["gpt2"]
    return None


def _most_common(values: Iterable[int]) -> int | None:
    c = Counter(values)
    return max(c.items(), key=lambda kv: (kv[1], kv[0]))[0] if c else None


def _infer_hidden(entries: list[tuple[str, tuple[int, ...], _Match | None]]) -> tuple[int | None, set[int]]:
    """Residual width from the shapes, and every width with strong evidence (per-layer norms, token or patch
    embeddings). Per-layer norms come first: factorised embeddings (ALBERT) are narrower than the residual stream."""
    norms = [s[0] for _, s, m in entries
             if m and m.kind == "norm" and m.layer is not None and m.detail in ("input", "post_attention")
             and len(s) == 1]
    emb = [s[1] for _, s, m in entries if m and m.kind == "embed.tokens" and m.detail == "" and len(s) == 2]
    patch = [s[0] for _, s, m in entries if m and m.kind == "embed.patch" and m.param == "weight" and len(s) >= 3]
    strong = set(norms) | set(emb) | set(patch)
    for found in (norms, emb, patch):
        if found:
            return _most_common(found), strong
    return _most_common(d for _, s, _m in entries if len(s) == 2 for d in s), strong


def _detect_conv1d(entries: list[tuple[str, tuple[int, ...], _Match | None]], hidden: int | None) -> bool:
    """GPT-2-style Conv1D storage ([in, out]) recognised from the fused attention / first MLP weights."""
    if hidden is None:
        return False
    for name, shape, m in entries:
        if m and m.param == "weight" and len(shape) == 2 and re.search(r"\.(?:c_attn|c_fc)$", _split_param(name)[0]):
            return shape[0] == hidden and shape[1] != hidden
    return False


def map_architecture(shapes: dict[str, tuple[int, ...]], config: dict | None) -> ArchitectureMap:
    """Map checkpoint tensor names (→ shapes) and the parsed ``config.json`` onto canonical roles.

    Pure: reads nothing from disk. Sizes come from the config where it has them, otherwise from the shapes.
    """
    cfg = dict(config or {})
    model_type = str(cfg.get("model_type") or "")
    notes = _Notes()
    names = sorted(shapes)
    adapter = _BY_TYPE.get(model_type)
    guessed: Adapter | None = None
    if adapter is None:
        adapter = MULTIMODAL if any(isinstance(cfg.get(k), dict) for k, _ in _SUB_CONFIGS) else GENERIC
        guessed = _guess_by_names(names)
        if guessed is not None and guessed.audio_encoder_decoder:
            adapter = Adapter("generic", (), audio_encoder_decoder=True)
        if config is None or not cfg:
            notes.add("no config: roles and sizes inferred from tensor names and shapes")
        elif model_type:
            notes.add(f"model_type {model_type!r} has no dedicated adapter: mapped by name patterns and shapes")
        else:
            notes.add("config has no model_type: mapped by name patterns and shapes")
        if guessed is not None:
            notes.add(f"tensor names look like the {guessed.name} layout; its storage conventions were applied")

    # Leave out buffers and quantisation companions (with a note), never silently.
    canon: dict[str, tuple[int, ...]] = {}  # shapes as int tuples, one object per distinct shape
    seen_shapes: dict[tuple[int, ...], tuple[int, ...]] = {}
    kept: list[str] = []
    buffers: list[str] = []
    quant: list[str] = []
    for n in names:
        shape = canon[n] = _shared_shape(shapes[n], seen_shapes)
        if _QUANT_RE.search(n):
            quant.append(n)
        elif _BUFFER_RE.search(n) or (n.endswith("attn.bias") and len(shape) == 4):
            buffers.append(n)
        else:
            kept.append(n)
    if quant:
        notes.add(f"{len(quant)} quantisation scale tensors (e.g. {quant[0]}) ignored: they rescale weights, "
                  "they are not weights")
    if buffers:
        notes.add(f"{len(buffers)} non-parameter buffers (e.g. {buffers[0]}) ignored")

    # Base stack: where names without a tower prefix go.
    base_stack = adapter.base_stack
    if adapter.name in ("generic", "multimodal") and not cfg.get("text_config"):
        kinds = set()
        for n in kept:
            stack, local = _resolve_stack(n, adapter, "text")
            if stack == "text" and (m := _classify(local)) is not None:
                kinds.add(m.kind)
        if "embed.patch" in kinds and "embed.tokens" not in kinds:
            base_stack = "vision"
    stack_cfgs = _stack_configs(cfg, adapter, base_stack)

    # First pass: tower, layer pattern; gather evidence on sizes.
    placed: list[tuple[str, str, str, _Match | None]] = []
    per_stack: dict[str, list[tuple[str, tuple[int, ...], _Match | None]]] = {}
    for n in kept:
        stack, local = _resolve_stack(n, adapter, base_stack)
        m = None if stack == "projector" else _classify(local)
        placed.append((n, stack, local, m))
        per_stack.setdefault(stack, []).append((local, canon[n], m))

    stacks: dict[str, _Stack] = {}
    infos: dict[str, StackInfo] = {}
    for s in ("text", "vision", "audio"):
        entries = per_stack.get(s)
        if not entries:
            continue
        sc = stack_cfgs.get(s, _StackCfg())
        inferred, strong = _infer_hidden(entries)
        hidden = sc.hidden
        if hidden is None:
            hidden = inferred
        elif strong and hidden not in strong and inferred is not None:
            notes.add(f"{s}: config hidden size {hidden} disagrees with the tensors ({inferred}); using {inferred}")
            hidden = inferred
        layer_idx = [int(lm["idx"]) for local, _, _ in entries if (lm := _LAYER_RE.match(local))]
        seen_layers = max(layer_idx) + 1 if layer_idx else 0
        n_layers = sc.layers if sc.layers is not None else seen_layers
        if sc.layers is not None and seen_layers > sc.layers:
            extra = f"{sc.layers}" if seen_layers == sc.layers + 1 else f"{sc.layers}..{seen_layers - 1}"
            notes.add(f"{s}: layer {extra} lies beyond num_hidden_layers={sc.layers} (multi-token-prediction "
                      "module); mapped with its own layer index, not counted in num_layers")
        elif sc.layers is not None and 0 < seen_layers < sc.layers:
            notes.add(f"{s}: tensors cover layers 0..{seen_layers - 1} but the config declares {sc.layers}")
        # A stack's storage conventions: its own sub-config's family, else the wrapper's for its base stack.
        flavor = _BY_TYPE.get(sc.model_type)
        if flavor is None and sc.model_type in ("", model_type) and (s == base_stack or adapter.audio_encoder_decoder):
            flavor = adapter
        if flavor is not None and flavor.name not in ("generic", "multimodal"):
            conv1d, interleaved = flavor.conv1d, flavor.interleaved_qkv
        else:
            conv1d = _detect_conv1d(entries, hidden)
            interleaved = guessed is not None and guessed.interleaved_qkv
        if conv1d:
            notes.add(f"{s}: Conv1D weights are stored [in, out]; residual axes follow that layout")
        stacks[s] = _Stack(s, sc, hidden, conv1d, interleaved)
        infos[s] = StackInfo(hidden_size=hidden or 0, num_layers=n_layers)
        pres = {p["pre"] for local, _, _ in entries if (p := _LAYER_RE.match(local))}
        if len(pres) > 1:
            notes.add(f"{s}: several layer stacks share this stack ({', '.join(sorted(pres))}); layer indices overlap")
    if per_stack.get("projector"):
        out_width = infos["text"].hidden_size if "text" in infos else _most_common(
            d for _, s, _ in per_stack["projector"] if len(s) == 2 for d in s)
        infos["projector"] = StackInfo(hidden_size=out_width or 0, num_layers=0)

    # Second pass: emit roles.
    tensors: list[MappedTensor] = []
    unmapped: list[str] = []
    transposed: list[str] = []
    mismatched: list[str] = []
    for n, stack, local, m in placed:
        shape = canon[n]
        if stack == "projector":
            module, _ = _split_param(local)
            tensors.append(MappedTensor(n, Role("projector", "projector", detail=module or local), shape))
            continue
        out = None if m is None else _emit(n, shape, stacks[stack], m, notes, transposed, mismatched)
        if out:
            tensors.extend(out)
        else:
            unmapped.append(n)
    if transposed:
        notes.add(f"{len(transposed)} weights are stored transposed relative to their family's layout "
                  f"(e.g. {transposed[0]}); their residual axis follows the hidden size")
    if mismatched:
        notes.add(f"{len(mismatched)} weights have no axis of the stack's hidden size (e.g. {mismatched[0]}); "
                  "their residual axis is the family's default")

    # Output head: a language model without one ties it to the token embedding.
    if adapter.language_model and "text" in stacks:
        text = [t for t in tensors if t.role.stack == "text"]
        has_emb = any(t.role.kind == "embed.tokens" and t.role.detail == "" for t in text)
        has_head = any(t.role.kind == "head" and t.role.detail == "" and t.role.layer is None for t in text)
        if has_emb and not has_head:
            tied = cfg.get("tie_word_embeddings", (cfg.get("text_config") or {}).get("tie_word_embeddings"))
            extra = " (although config says tie_word_embeddings=false)" if tied is False else ""
            notes.add(f"output head tied to the token embedding: no separate head tensor{extra}")
    if any(t.role.kind in ("xattn.k", "xattn.v") for t in tensors):
        notes.add("cross-attention k/v projections read the encoder output, not their own stack's residual stream")
    if unmapped:
        notes.add(f"{len(unmapped)} tensors match no known role pattern; listed in unmapped")
    return ArchitectureMap(model_type=model_type, adapter=adapter.name, stacks=infos, tensors=tensors,
                           unmapped=sorted(unmapped), notes=notes.list())


def _residual_axis(name: str, kind: str, shape: tuple[int, ...], io: str | None, st: _Stack,
                   transposed: list[str], mismatched: list[str]) -> int | None:
    if io is None or len(shape) != 2:
        return None
    axis = 1 if io == "in" else 0
    if st.conv1d and kind.startswith(("attn.", "xattn.", "mlp.", "moe.", "@")):  # Conv1D: linears only
        axis = 1 - axis
    h = st.hidden
    if h is not None and shape[axis] != h:
        if shape[1 - axis] == h:
            axis = 1 - axis
            transposed.append(name)
        else:
            mismatched.append(name)
    return axis


def _qkv_splits(units: int, st: _Stack, interleaved: bool) -> tuple[list[tuple[str, tuple[int, int]]] | None, bool]:
    """q/k/v unit ranges of a fused projection with ``units`` output units (None: layout unknown), and whether
    they are a guess (equal thirds without head counts)."""
    sc, h = st.cfg, st.hidden
    if interleaved:
        nh = sc.heads
        if not nh or units % (3 * nh):
            return None, False
        hd = units // (3 * nh)
        out: list[tuple[str, tuple[int, int]]] = []
        for head in range(nh):
            base = 3 * hd * head
            out += [("attn.q", (base, base + hd)), ("attn.k", (base + hd, base + 2 * hd)),
                    ("attn.v", (base + 2 * hd, base + 3 * hd))]
        return out, False
    nh = sc.heads
    head_dim = sc.head_dim or (h // nh if h and nh and h % nh == 0 else None)
    if nh and head_dim:
        q = nh * head_dim
        rest = units - q
        if rest > 0 and rest % 2 == 0:
            k = rest // 2
            return [("attn.q", (0, q)), ("attn.k", (q, q + k)), ("attn.v", (q + k, units))], False
    if h and units == 3 * h:
        return [("attn.q", (0, h)), ("attn.k", (h, 2 * h)), ("attn.v", (2 * h, 3 * h))], True
    return None, False


def _emit(name: str, shape: tuple[int, ...], st: _Stack, m: _Match, notes: _Notes,
          transposed: list[str], mismatched: list[str]) -> list[MappedTensor] | None:
    """MappedTensors for one tensor (several for a fused one); None when it cannot be mapped."""

    def role(kind: str, detail: str = "", expert: int | None = m.expert) -> Role:
        return Role(st.name, kind, m.layer, expert, detail)

    if m.kind == "norm":
        return [MappedTensor(name, role("norm", m.detail), shape)]
    if m.kind == "@experts":
        return _emit_stacked(name, shape, st, m, notes)

    axis = None if m.param == "bias" else _residual_axis(name, m.kind, shape, m.io, st, transposed, mismatched)
    if m.kind in ("@qkv", "@qkv_interleaved", "@gate_up"):
        if m.param == "bias":
            units = shape[0] if len(shape) == 1 else None
        else:
            units = shape[1 - axis] if axis is not None else None
        if units is None:
            return None
        if m.kind == "@gate_up":
            if units % 2:
                notes.add(f"fused gate_up {name} has an odd number of units; left unmapped")
                return None
            half = units // 2
            splits = [("mlp.gate", (0, half)), ("mlp.up", (half, units))]
        elif m.kind == "@qkv_interleaved" and not st.interleaved:
            notes.add("fused query_key_value of an unknown family left unmapped: GPT-NeoX/BLOOM interleave rows "
                      "per head, Falcon groups them per key/value head")
            return None
        else:
            found, guess = _qkv_splits(units, st, m.kind == "@qkv_interleaved")
            if found is None:
                notes.add(f"cannot split fused qkv {name} ({units} units) without head counts; left unmapped")
                return None
            if guess:
                notes.add(f"{st.name}: fused qkv split in equal thirds (no usable head counts in the config)")
            splits = found
        if m.param == "bias":
            return [MappedTensor(name, role("bias", k), shape, None, rng) for k, rng in splits]
        return [MappedTensor(name, role(k), shape, axis, rng) for k, rng in splits]

    if m.param == "bias":
        detail = f"{m.kind}/{m.detail}" if m.detail else m.kind
        return [MappedTensor(name, role("bias", detail), shape)]
    return [MappedTensor(name, role(m.kind, m.detail), shape, axis)]


_STACKED_KINDS = {"gate_proj": "moe.expert.gate", "up_proj": "moe.expert.up", "down_proj": "moe.expert.down"}


def _emit_stacked(name: str, shape: tuple[int, ...], st: _Stack, m: _Match, notes: _Notes) -> list[MappedTensor] | None:
    """Per-expert entries of a stacked [experts, ·, ·] tensor (transformers 5 in-memory layout, Llama-4 on disk)."""
    p = m.stacked

    def role(kind: str, e: int, bias: bool) -> Role:
        return Role(st.name, "bias" if bias else kind, m.layer, e, kind if bias else "")

    if m.param == "bias":
        if len(shape) != 2:
            return None
        n_exp, units = shape
        out: list[MappedTensor] = []
        for e in range(n_exp):
            if p == "gate_up_proj":
                half = units // 2
                out += [MappedTensor(name, role("moe.expert.gate", e, True), shape, None, (0, half), e),
                        MappedTensor(name, role("moe.expert.up", e, True), shape, None, (half, units), e)]
            else:
                out.append(MappedTensor(name, role(_STACKED_KINDS[p], e, True), shape, None, None, e))
        return out
    if len(shape) != 3:
        return None
    n_exp, a, b = shape
    h = st.hidden
    if p == "down_proj":  # transformers: [E, d, I]; Llama-4: [E, I, d]
        axis = 1 if (h is not None and b == h and a != h) else 0
    else:  # transformers: [E, 2I, d]; Llama-4: [E, d, 2I]
        axis = 0 if (h is not None and a == h and b != h) else 1
    if h is None or (a == h) == (b == h):
        notes.add(f"orientation of stacked expert tensors ({p} {list(shape)}) is ambiguous from shapes; "
                  "assumed the transformers layout")
    layout = "[experts, units, residual]" if axis == 1 else "[experts, residual, units]"
    notes.add(f"{st.name}: stacked expert tensors {p} read as {layout}")
    units = (a, b)[1 - axis]
    out = []
    for e in range(n_exp):
        if p == "gate_up_proj":
            half = units // 2
            out += [MappedTensor(name, role("moe.expert.gate", e, False), shape, axis, (0, half), e),
                    MappedTensor(name, role("moe.expert.up", e, False), shape, axis, (half, units), e)]
        else:
            out.append(MappedTensor(name, role(_STACKED_KINDS[p], e, False), shape, axis, None, e))
    return out


# --------------------------------------------------------------------------------------------------- summaries


def tensor_elements(t: MappedTensor) -> int:
    """Elements of the tensor this entry covers: a slice of a fused tensor counts only its share."""
    shape = t.shape[1:] if t.expert_index is not None else t.shape
    n = math.prod(shape)
    if t.unit_range is not None and shape:
        axis = 1 - t.residual_axis if (t.residual_axis is not None and len(shape) == 2) else 0
        n = n // shape[axis] * (t.unit_range[1] - t.unit_range[0])
    return n


def parameters_by_component(amap: ArchitectureMap) -> dict[str, int]:
    """Parameter count per ``role.component``; a fused tensor's elements are split over its slices."""
    out: dict[str, int] = {}
    for t in amap.tensors:
        out[t.role.component] = out.get(t.role.component, 0) + tensor_elements(t)
    return dict(sorted(out.items()))


def describe(amap: ArchitectureMap) -> dict:
    """JSON-ready summary for ``simsa lineage inspect``: what was recognised, how big, and what was not."""
    params = parameters_by_component(amap)
    names = amap.names_by_component()
    return {
        "model_type": amap.model_type,
        "adapter": amap.adapter,
        "stacks": {s: {"hidden_size": i.hidden_size, "num_layers": i.num_layers} for s, i in amap.stacks.items()},
        "components": {c: {"parameters": params[c], "tensors": len(names[c])} for c in params},
        "total_parameters": sum(params.values()),
        "mapped_tensors": len({t.name for t in amap.tensors}),
        "unmapped": list(amap.unmapped),
        "notes": list(amap.notes),
    }
