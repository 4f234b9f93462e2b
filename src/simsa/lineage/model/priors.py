"""Architecture provenance from config fields: a prior, reported apart from weight evidence.

Two teams may legitimately use the same design; this section says "architecture of X with modifications Y" so a
reader sees how close the designs are without confusing that with weight descent. ``known_architecture`` names the
public family a config follows (from ``model_type``, the class name, or failing both its shape signature), because a
panel asks "whose design is this?" before it asks "whose weights?".
"""

from __future__ import annotations

import json
import re
from typing import Any

PRIOR_LABEL = "prior — not weight evidence"

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

# Differences are reported by group; a field in no group and not ignored below is reported under "other".
GROUPS: dict[str, tuple[str, ...]] = {
    "identity": ("model_type", "architectures"),
    "shape": (
        "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
        "intermediate_size", "vocab_size", "n_embd", "n_layer", "n_head", "n_inner", "d_model", "encoder_layers",
        "decoder_layers", "encoder_attention_heads", "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim",
        "type_vocab_size", "qk_nope_head_dim", "qk_rope_head_dim", "qk_head_dim", "v_head_dim", "patch_size",
        "image_size", "num_channels", "depth", "embed_dim", "num_heads", "mlp_ratio", "num_mel_bins",
        "spatial_merge_size", "temporal_patch_size", "projection_dim",
    ),
    "positional": (
        "rope_theta", "rope_scaling", "rope_parameters", "max_position_embeddings", "n_positions",
        "original_max_position_embeddings", "partial_rotary_factor", "rotary_pct", "rotary_emb_base",
        "position_embedding_type", "max_source_positions", "max_target_positions", "rope_interleave",
        "rope_local_base_freq",
    ),
    "normalisation": (
        "rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon", "norm_eps", "norm_type", "use_qk_norm",
        "qk_layernorm", "normalization_type",
    ),
    "moe": (
        "num_experts", "num_local_experts", "n_routed_experts", "num_experts_per_tok", "n_shared_experts",
        "shared_expert_intermediate_size", "moe_intermediate_size", "first_k_dense_replace", "decoder_sparse_step",
        "mlp_only_layers", "norm_topk_prob", "routed_scaling_factor", "n_group", "topk_group", "topk_method",
        "moe_layer_freq",
    ),
    "attention": (
        "sliding_window", "use_sliding_window", "max_window_layers", "layer_types", "sliding_window_pattern",
        "kv_lora_rank", "q_lora_rank", "attention_bias", "qkv_bias", "query_pre_attn_scalar",
        "attn_logit_softcapping", "use_bidirectional_attention",
    ),
}
_GROUP_OF = {f: g for g, fields in GROUPS.items() for f in fields}
GROUP_ORDER = (*GROUPS, "other")
# Not architecture: bookkeeping, token ids, training regularisation and runtime switches.
IGNORED = frozenset({
    "transformers_version", "name_or_path", "dtype", "torch_dtype", "use_cache", "output_hidden_states",
    "output_attentions", "return_dict", "use_return_dict", "id2label", "label2id", "problem_type", "initializer_range",
    "initializer_factor", "chunk_size_feed_forward", "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id",
    "decoder_start_token_id", "image_token_id", "image_token_index", "video_token_id", "vision_start_token_id",
    "vision_end_token_id", "auto_map", "tokenizer_class", "task_specific_params", "quantization_config",
    "output_router_logits", "router_aux_loss_coef", "router_z_loss_coef", "router_jitter_noise", "pretraining_tp",
    "torchscript", "pruned_heads", "tf_legacy_loss", "use_bfloat16", "attn_implementation", "is_encoder_decoder",
    "classifier_dropout", "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
    "summary_first_dropout",
})


def _ignored(key: str) -> bool:
    return key in IGNORED or key.startswith("_") or "dropout" in key or key.endswith("pdrop")


def _rope(cfg: dict[str, Any]) -> dict[str, Any]:
    """transformers 5 folds rope_theta and rope_scaling into rope_parameters; older configs keep them apart.

    Both are brought to the older form so that configs saved by different versions compare field by field.
    """
    params = cfg.get("rope_parameters")
    if not isinstance(params, dict) or not isinstance(params.get("rope_theta"), int | float):
        return cfg
    out = {k: v for k, v in cfg.items() if k != "rope_parameters"}
    out.setdefault("rope_theta", params["rope_theta"])
    rest = {k: v for k, v in params.items() if k != "rope_theta"}
    if rest.get("rope_type", "default") != "default" or len(rest) > 1:
        out.setdefault("rope_scaling", rest)
    else:
        out.setdefault("rope_scaling", None)
    return out


def _fields(cfg: dict[str, Any]) -> dict[str, Any]:
    """Every architecture field of one config level (sub-configs excluded), rope folded, nulls dropped."""
    cfg = _rope(cfg)
    return {k: v for k, v in cfg.items() if k not in SUBCONFIGS and not _ignored(k) and v is not None}


def _all_fields(config: dict[str, Any]) -> dict[str, Any]:
    flat = _fields(config)
    for sub in SUBCONFIGS:
        inner = config.get(sub)
        if isinstance(inner, dict):
            flat.update({f"{sub}.{k}": v for k, v in _fields(inner).items()})
    return flat


def group_of(key: str) -> str:
    """The group a (possibly sub-config-prefixed) field is reported under."""
    return _GROUP_OF.get(key.rsplit(".", 1)[-1], "other")


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "…"


# --- known architectures

# family → (display name, model_types, class-name stems)
FAMILIES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "llama": ("Llama", ("llama",), ("Llama",)),
    "mistral": ("Mistral", ("mistral", "ministral"), ("Mistral", "Ministral")),
    "mixtral": ("Mixtral (MoE)", ("mixtral",), ("Mixtral",)),
    "qwen2": ("Qwen2 / Qwen2.5", ("qwen2",), ("Qwen2",)),
    "qwen2_moe": ("Qwen2-MoE", ("qwen2_moe",), ("Qwen2Moe",)),
    "qwen3": ("Qwen3", ("qwen3",), ("Qwen3",)),
    "qwen3_moe": ("Qwen3-MoE", ("qwen3_moe",), ("Qwen3Moe",)),
    "qwen2_vl": ("Qwen2-VL / Qwen2.5-VL", ("qwen2_vl", "qwen2_5_vl", "qwen2_vl_text", "qwen2_5_vl_text"),
                 ("Qwen2VL", "Qwen2_5_VL")),
    "deepseek_v2": ("DeepSeek-V2", ("deepseek_v2",), ("DeepseekV2",)),
    "deepseek_v3": ("DeepSeek-V3", ("deepseek_v3", "kimi_k2"), ("DeepseekV3",)),
    "glm4": ("GLM-4", ("glm4", "glm"), ("Glm4", "Glm")),
    "glm4_moe": ("GLM-4-MoE", ("glm4_moe",), ("Glm4Moe",)),
    "gemma": ("Gemma", ("gemma",), ("Gemma",)),
    "gemma2": ("Gemma 2", ("gemma2",), ("Gemma2",)),
    "gemma3": ("Gemma 3", ("gemma3", "gemma3_text"), ("Gemma3",)),
    "phi3": ("Phi-3", ("phi3",), ("Phi3",)),
    "gpt2": ("GPT-2", ("gpt2",), ("GPT2",)),
    "gpt_neox": ("GPT-NeoX", ("gpt_neox",), ("GPTNeoX",)),
    "bert": ("BERT", ("bert",), ("Bert",)),
    "roberta": ("RoBERTa", ("roberta", "xlm-roberta"), ("Roberta", "XLMRoberta")),
    "olmo2": ("OLMo 2", ("olmo2",), ("Olmo2",)),
    "exaone": ("EXAONE", ("exaone", "exaone4"), ("Exaone", "Exaone4")),
    "llava": ("LLaVA", ("llava", "llava_next", "llava_onevision"), ("Llava", "LlavaNext", "LlavaOnevision")),
    "whisper": ("Whisper", ("whisper",), ("Whisper",)),
    "vit": ("ViT", ("vit",), ("ViT",)),
    "clip": ("CLIP", ("clip", "clip_vision_model", "clip_text_model"), ("CLIP", "CLIPVision", "CLIPText")),
    "siglip": ("SigLIP", ("siglip", "siglip2", "siglip_vision_model", "siglip2_vision_model"),
               ("Siglip", "Siglip2", "SiglipVision", "Siglip2Vision")),
}
_BY_MODEL_TYPE = {mt: fam for fam, (_, types, _) in FAMILIES.items() for mt in types}
_BY_CLASS = {stem: fam for fam, (_, _, stems) in FAMILIES.items() for stem in stems}
_CLASS_SUFFIX = re.compile(r"(ForCausalLM|ForConditionalGeneration|LMHeadModel|ForMaskedLM|ForSequenceClassification|"
                           r"ForTokenClassification|ForQuestionAnswering|ForPreTraining|ForImageClassification|"
                           r"TextModel|VisionModel|Model)$")


def _has(cfg: dict[str, Any], *keys: str) -> bool:
    return all(cfg.get(k) is not None for k in keys)


def _signature(cfg: dict[str, Any]) -> tuple[str, str] | None:
    """(family, why) from which fields a config has, for configs that name no known model_type or class.

    Field names are a weak signal (forks keep them, rewrites change them); the result is labelled "inferred".
    """
    if _has(cfg, "kv_lora_rank"):
        v3 = _has(cfg, "num_nextn_predict_layers") or _has(cfg, "rope_interleave")
        return ("deepseek_v3" if v3 else "deepseek_v2"), "multi-head latent attention (kv_lora_rank)"
    if _has(cfg, "n_embd", "n_layer", "n_head"):
        return "gpt2", "GPT-2 field names (n_embd, n_layer, n_head)"
    if _has(cfg, "use_parallel_residual") or _has(cfg, "rotary_pct"):
        return "gpt_neox", "parallel residual / rotary_pct"
    if _has(cfg, "type_vocab_size"):
        return "bert", "token-type embeddings of a BERT-style encoder"
    if _has(cfg, "patch_size", "image_size") and not _has(cfg, "vocab_size"):
        fam = "siglip" if _has(cfg, "vision_use_head") else "clip" if _has(cfg, "projection_dim") else "vit"
        return fam, "patch embedding of a ViT-style vision encoder"
    if _has(cfg, "n_routed_experts"):
        return "glm4_moe", "routed and shared experts without latent attention"
    experts = _has(cfg, "num_experts") or _has(cfg, "num_local_experts")
    if experts and _has(cfg, "shared_expert_intermediate_size"):
        return "qwen2_moe", "routed experts plus a shared expert (Qwen2-MoE style)"
    if experts and _has(cfg, "moe_intermediate_size"):
        return "qwen3_moe", "routed experts with their own width, no shared expert (Qwen3-MoE style)"
    if experts:
        return "mixtral", "experts as wide as the dense MLP (Mixtral-style MoE)"
    if _has(cfg, "query_pre_attn_scalar"):
        nested = isinstance(cfg.get("rope_parameters"), dict) and "rope_theta" not in cfg["rope_parameters"]
        gemma3 = nested or _has(cfg, "rope_local_base_freq") or _has(cfg, "sliding_window_pattern")
        return ("gemma3" if gemma3 else "gemma2"), "query_pre_attn_scalar (Gemma 2/3)"
    if _has(cfg, "original_max_position_embeddings", "rms_norm_eps"):
        return "phi3", "original_max_position_embeddings (Phi-3 long-rope)"
    if _has(cfg, "max_window_layers"):
        return ("qwen3" if _has(cfg, "head_dim") else "qwen2"), "max_window_layers (Qwen2/Qwen3)"
    if _has(cfg, "rms_norm_eps", "intermediate_size", "num_attention_heads"):
        if _has(cfg, "sliding_window") and cfg.get("use_sliding_window") is not False:
            return "mistral", "RMSNorm decoder with sliding-window attention"
        return "llama", "RMSNorm decoder with gated MLP fields (Llama-style)"
    return None


def _traits(cfg: dict[str, Any]) -> list[str]:
    """Plain-language design features a reader compares first."""
    cfg = _rope(cfg)
    out = []
    layers = cfg.get("num_hidden_layers", cfg.get("n_layer"))
    hidden = cfg.get("hidden_size", cfg.get("n_embd", cfg.get("d_model")))
    if layers is not None and hidden is not None:
        ffn = cfg.get("intermediate_size", cfg.get("n_inner"))
        out.append(f"{layers} layers, hidden {hidden}" + (f", FFN {ffn}" if ffn else "")
                   + (f", vocabulary {cfg['vocab_size']}" if cfg.get("vocab_size") else ""))
    heads = cfg.get("num_attention_heads", cfg.get("n_head"))
    kv = cfg.get("num_key_value_heads")
    if _has(cfg, "kv_lora_rank"):
        out.append(f"multi-head latent attention (kv_lora_rank {cfg['kv_lora_rank']}, "
                   f"q_lora_rank {cfg.get('q_lora_rank')})")
    elif isinstance(heads, int) and isinstance(kv, int) and kv < heads:
        out.append(("multi-query" if kv == 1 else "grouped-query") + f" attention ({heads} heads, {kv} KV heads)")
    elif heads is not None:
        out.append(f"multi-head attention ({heads} heads)")
    experts = next((cfg[k] for k in ("n_routed_experts", "num_experts", "num_local_experts") if _has(cfg, k)), None)
    if experts:
        shared = cfg.get("n_shared_experts") or (1 if cfg.get("shared_expert_intermediate_size") else 0)
        out.append(f"MoE: {experts} routed experts, {cfg.get('num_experts_per_tok')} per token"
                   + (f", {shared} shared" if shared else ""))
    if _has(cfg, "sliding_window") and cfg.get("use_sliding_window") is not False:
        out.append(f"sliding-window attention ({cfg['sliding_window']})")
    if _has(cfg, "rope_theta"):
        out.append(f"RoPE θ {cfg['rope_theta']:g}" + (" with scaling" if cfg.get("rope_scaling") else ""))
    if _has(cfg, "rms_norm_eps"):
        out.append(f"RMSNorm (eps {cfg['rms_norm_eps']:g})")
    elif _has(cfg, "layer_norm_eps") or _has(cfg, "layer_norm_epsilon"):
        out.append(f"LayerNorm (eps {cfg.get('layer_norm_eps', cfg.get('layer_norm_epsilon')):g})")
    return out


def _family_of(cfg: dict[str, Any]) -> tuple[str | None, str, str]:
    """(family, basis, confidence) for one config level."""
    model_type = str(cfg.get("model_type") or "")
    if model_type in _BY_MODEL_TYPE:
        return _BY_MODEL_TYPE[model_type], f"model_type {model_type!r}", "declared"
    archs = cfg.get("architectures")
    for cls in archs if isinstance(archs, list) else []:
        stem = _CLASS_SUFFIX.sub("", str(cls))
        if stem in _BY_CLASS:
            return _BY_CLASS[stem], f"class {cls!r}", "declared"
    sig = _signature(cfg)
    if sig is not None:
        return sig[0], f"shape signature: {sig[1]}", "inferred"
    return None, "no known model_type, class or shape signature", "unknown"


def known_architecture(config: dict[str, Any] | None) -> dict:
    """Which well-known public architecture family a config follows, as a prior (never weight evidence).

    Looks at ``model_type``, then the ``architectures`` class names, then the fields the config has. A multimodal
    wrapper also reports the family of each sub-config (``parts``).
    """
    if not isinstance(config, dict) or not config:
        return {"available": False, "label": PRIOR_LABEL, "note": "no config.json"}
    family, basis, confidence = _family_of(config)
    archs = config.get("architectures")
    cls = str(archs[0]) if isinstance(archs, list) and archs else None
    parts = {}
    for sub in SUBCONFIGS:
        inner = config.get(sub)
        if isinstance(inner, dict) and inner:
            fam, b, conf = _family_of(inner)
            parts[sub.removesuffix("_config")] = {"family": fam, "name": FAMILIES[fam][0] if fam else None,
                                                  "basis": b, "confidence": conf, "traits": _traits(inner)}
    text_config = config.get("text_config")
    text = text_config if isinstance(text_config, dict) else config
    traits = _traits(text)
    name = FAMILIES[family][0] if family else None
    if family is None:
        summary = "no known public architecture family recognised"
    elif confidence == "declared":
        summary = f"follows {name} (declared by {basis})"
    else:
        summary = f"probably follows {name} — inferred from its fields: {basis.removeprefix('shape signature: ')}"
    if traits:
        summary += ": " + "; ".join(traits)
    return {"available": True, "label": PRIOR_LABEL, "family": family, "name": name, "basis": basis,
            "confidence": confidence, "model_type": config.get("model_type"), "class": cls, "traits": traits,
            "parts": parts, "summary": summary}


# --- comparison


def _order(key: str, keys: list[str]) -> tuple[int, int, int]:
    """Group order, then the order fields are listed in their group, then config order."""
    group = group_of(key)
    fields = GROUPS.get(group, ())
    base = key.rsplit(".", 1)[-1]
    return GROUP_ORDER.index(group), fields.index(base) if base in fields else len(fields), keys.index(key)


def _verdict(differ: dict[str, dict], cand_family: str | None, ref_family: str | None, same_type: bool) -> str:
    if not differ:
        return "same"
    if same_type or (cand_family is not None and cand_family == ref_family):
        return "same family, modified"
    return "different"


def compare_configs(cand: dict[str, Any] | None, ref: dict[str, Any] | None) -> dict:
    """The ``architecture`` section: equal and differing fields, grouped modifications, a verdict and a summary.

    Verdicts: ``same`` (every compared field equal), ``same family, modified`` (same model_type, or the same known
    family under another name, with differing fields), ``different``. A prior; never weight evidence.
    """
    if not cand or not ref:
        return {"available": False, "label": PRIOR_LABEL, "note": "config.json missing on one side"}
    a, b = _all_fields(cand), _all_fields(ref)
    keys = list(b) + [k for k in a if k not in b]
    same = {k: a[k] for k in keys if k in a and k in b and a[k] == b[k]}
    differ = {k: {"candidate": a.get(k), "reference": b.get(k)} for k in keys if a.get(k) != b.get(k)}
    groups: dict[str, dict[str, dict]] = {}
    for k in sorted(differ, key=lambda k: _order(k, keys)):
        groups.setdefault(group_of(k), {})[k] = differ[k]
    fam_c, fam_r = known_architecture(cand), known_architecture(ref)
    ref_type = b.get("model_type", "unknown")
    same_type = a.get("model_type") == b.get("model_type") and "model_type" in b
    verdict = _verdict(differ, fam_c.get("family"), fam_r.get("family"), same_type)
    modifications = [f"{k} {_short(v['reference'])}→{_short(v['candidate'])}"
                     for g in groups.values() for k, v in g.items()]
    if verdict == "same":
        summary = f"same architecture as the reference ({ref_type}, every compared field equal)"
    elif verdict == "same family, modified":
        renamed = "" if same_type else f" (renamed model_type {a.get('model_type')!r})"
        parts = []
        shown = 0
        for g, fields in groups.items():
            items = [f"{k} {_short(v['reference'])}→{_short(v['candidate'])}" for k, v in fields.items()]
            items = items[:max(0, 8 - shown)]
            shown += len(items)
            if items:
                parts.append(f"{g}: " + ", ".join(items))
        more = " …" if len(modifications) > shown else ""
        summary = f"architecture of {ref_type}{renamed} with modifications — " + "; ".join(parts) + more
    else:
        def name(fam: dict, cfg: dict) -> str:
            return str(cfg.get("model_type") or "unknown") + (f" ({fam['name']})" if fam.get("name") else "")
        summary = (f"different architectures: candidate {name(fam_c, a)}, reference {name(fam_r, b)}; "
                   f"{len(differ)} field{' differs' if len(differ) == 1 else 's differ'}")
    return {
        "available": True,
        "label": PRIOR_LABEL,
        "verdict": verdict,
        "summary": summary,
        "same_model_type": same_type,
        "same_class": a.get("architectures") == b.get("architectures") if "architectures" in a or
        "architectures" in b else None,
        "family": {"candidate": fam_c, "reference": fam_r},
        "same": same,
        "different": differ,
        "groups": groups,
        "modifications": modifications,
        "share_equal": round(len(same) / len(keys), 4) if keys else 0.0,
        "note": "Reusing a design is common and allowed; this section is a prior and never decides a verdict.",
    }
