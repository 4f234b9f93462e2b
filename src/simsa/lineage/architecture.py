"""Architecture provenance from config fields: a separate finding, never weight evidence.

Two teams may legitimately use the same design; this section says "architecture of X with modifications Y" so a
reader sees how close the designs are without confusing that with weight descent.
"""

from __future__ import annotations

from typing import Any

# Fields that define the computation, in the order a reader wants them. Sub-configs of multimodal wrappers are
# flattened as "text_config.hidden_size" etc.
SHAPE_FIELDS = (
    "model_type", "architectures", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "head_dim", "intermediate_size", "moe_intermediate_size", "num_experts", "n_routed_experts", "num_local_experts",
    "num_experts_per_tok", "n_shared_experts", "first_k_dense_replace", "kv_lora_rank", "q_lora_rank",
    "vocab_size", "max_position_embeddings", "rope_theta", "rope_scaling", "hidden_act", "rms_norm_eps",
    "layer_norm_eps", "tie_word_embeddings", "sliding_window", "n_embd", "n_layer", "n_head", "n_inner",
    "type_vocab_size", "d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
)
SUBCONFIGS = ("text_config", "vision_config", "audio_config", "encoder_config")


def _flatten(config: dict[str, Any]) -> dict[str, Any]:
    flat = {k: config[k] for k in SHAPE_FIELDS if k in config}
    for sub in SUBCONFIGS:
        inner = config.get(sub)
        if isinstance(inner, dict):
            flat.update({f"{sub}.{k}": inner[k] for k in SHAPE_FIELDS if k in inner})
    return flat


def compare_configs(cand: dict[str, Any] | None, ref: dict[str, Any] | None) -> dict:
    """The ``architecture`` section: equal and differing fields, and a one-line summary."""
    if not cand or not ref:
        return {"available": False, "note": "config.json missing on one side"}
    a, b = _flatten(cand), _flatten(ref)
    keys = [k for k in list(b) + [k for k in a if k not in b]]
    same = {k: a[k] for k in keys if k in a and k in b and a[k] == b[k]}
    differ = {k: {"candidate": a.get(k), "reference": b.get(k)} for k in keys if a.get(k) != b.get(k)}
    ref_type = b.get("model_type", "unknown")
    if not differ:
        summary = f"same architecture as the reference ({ref_type}, every compared field equal)"
    else:
        changes = ", ".join(
            f"{k} {v['reference']}→{v['candidate']}" for k, v in list(differ.items())[:8]
        ) + (" …" if len(differ) > 8 else "")
        summary = f"architecture of {ref_type} with modifications: {changes}"
    return {
        "available": True,
        "summary": summary,
        "same": same,
        "different": differ,
        "share_equal": round(len(same) / len(keys), 4) if keys else 0.0,
        "note": "Reusing a design is common and allowed; this section never decides a verdict.",
    }
