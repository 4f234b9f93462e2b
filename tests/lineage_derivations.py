"""Tiny models made by the derivations the lineage test must detect *and localise*, built on the lineage zoo.

The zoo (``lineage_zoo``) covers hard negatives and same-shape derivations. This module adds the derivations that
change a model's shape or mix parents: Minitron-style width pruning, SOLAR-style depth up-scaling, sparse upcycling
of a dense model into a mixture of experts, vocabulary extension and replacement, layer-wise and averaging merges,
and llava-style multimodal models that reuse (or do not reuse) a vision tower. Every model carries a ground truth
(``Derivations.expect``): which reference it descends from, which of its layers come from which reference layers,
which components are new.

Everything is built on CPU with one torch thread from fixed seeds, reusing the zoo's corpora, tokenizer and
training loop, and cached on disk like the zoo (``DERIVATIONS.json`` is written last; bump DERIVATIONS_VERSION when
the recipe changes). Importable as ``tests.lineage_derivations`` and as ``lineage_derivations`` (pytest); it must
not import pytest.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    MixtralConfig,
    MixtralForCausalLM,
    PreTrainedModel,
)

from simsa.demo_lineage import synthetic_images

if __package__:
    from . import lineage_zoo as lz
else:
    import lineage_zoo as lz

DERIVATIONS_VERSION = "lineage-derivations-2"
DERIVATIONS_FILE = "DERIVATIONS.json"
# Set to a directory to keep one build across test sessions (bump DERIVATIONS_VERSION when the recipe changes).
DERIVATIONS_DIR_ENV = "SIMSA_LINEAGE_DERIVATIONS_DIR"

# References from the zoo (two independent llama parents trained the zoo's way, and its depth-pruned llama).
PARENT_A = "llama-s0"
PARENT_B = "llama-s1"
ZOO_DEPTH_PRUNED = f"llama-s0-drop{lz.DROPPED_LAYER}"

LLAMA_COMPONENTS = list(lz.COMPONENTS["llama"])
VISION_COMPONENTS = ["vision.embedding", "vision.attention", "vision.mlp"]

# Width pruning (Minitron): residual width and MLP neurons kept, by activation importance.
PRUNED_HIDDEN = 48
PRUNED_INTERMEDIATE = 96
CALIBRATION_BATCHES = 4
# Depth up-scaling (SOLAR): candidate layer i is a copy of parent layer UPSCALE_SOURCES[i].
UPSCALE_SOURCES = [0, 1, 2, 1, 2, 3]
# Sparse upcycling into Mixtral: every expert starts as the dense MLP plus noise of this std relative to the weight's.
MOE_EXPERTS = 8
MOE_TOP_K = 2
UPCYCLE_NOISE = 0.05
# Vocabulary extension: EXTRA_TOKENS more BPE merges learnt on corpus A after the zoo's; new rows = mean + noise.
EXTRA_TOKENS = 64
NEW_ROW_NOISE = 0.1  # std of the noise relative to the per-coordinate std of the old rows
# Vocabulary replacement: a different BPE (corpus B, other size); embeddings first, then everything.
REPLACED_VOCAB = 448
# Layer-wise merge: candidate layer i from (parent, parent layer).
LAYERWISE_SOURCES = [(PARENT_A, 0), (PARENT_A, 1), (PARENT_B, 2), (PARENT_B, 3)]

STEPS = lz.CONTINUE_STEPS  # 100 continued-training steps after a derivation
MERGE_STEPS = lz.DROP_STEPS  # 50: "a few steps" after a layer-wise merge
LR = lz.CONTINUE_LR

# Vision (CLIP vision tower, as in llava-1.5) and llava.
IMAGE = 32
PATCH = 8
PATCHES = (IMAGE // PATCH) ** 2
V_LAYERS = 4
V_CLASSES = 12  # bright square in one of 4 quadrants x one of 3 colour channels
V_BATCH = 32
V_STEPS = 150
V_LR = 3e-3
IMAGE_TOKEN = "<image>"
LLAVA_TEXT_STEPS = 60
LLAVA_STEPS = 40
LLAVA_BATCH = 8
SEQ_TEXT = 32  # text tokens after the image tokens (class word + corpus window)
LLAVA_VISION_TUNE_LR = 2e-4  # llava_reused_tuned: lower lr for the copied tower, as in LLaVA-NeXT-style tuning


@dataclass
class Derivations:
    """The built derivations.

    ``models``: candidate name → model directory (``depth_pruned`` points into the zoo). ``parents``: reference
    name → directory (``llama-s0``, ``llama-s1`` from the zoo; ``vision_ref``, ``vision_other`` built here).
    ``expect``: candidate name → ground truth, with ``references`` (reference name → what comparing with it must
    find; the zoo's four keys ``layer_map``, ``new_layers``, ``derived_components``, ``independent_components``
    plus ``kind`` and derivation-specific facts). ``pairs``: the same as zoo ``Pair`` objects (``check_pair``
    from ``lineage_validity`` reads them), with ``vision_other~vision_ref`` added as a hard negative.
    """

    root: Path
    models: dict[str, Path]
    parents: dict[str, Path]
    expect: dict[str, dict[str, Any]]
    pairs: list[lz.Pair] = field(default_factory=list)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    build_seconds: float = 0.0

    def path(self, name: str) -> Path:
        """Directory of a candidate or a reference."""
        return self.models[name] if name in self.models else self.parents[name]


# --------------------------------------------------------------------------- ground truth


def _ref(kind: str, *, layer_map: list[list[int]] | None = None, new_layers: list[int] | None = None,
         derived: list[str] | None = None, independent: list[str] | None = None, **facts: Any) -> dict[str, Any]:
    return {"kind": kind, **lz._expect(layer_map=layer_map, new_layers=new_layers, derived=derived,
                                        independent=independent), **facts}


def _identity(n: int = lz.LAYERS) -> list[list[int]]:
    return [[i, i] for i in range(n)]


def _pairs(expect: dict[str, dict[str, Any]]) -> list[lz.Pair]:
    pairs = [
        lz.Pair(f"{cand}~{ref}", e["family"], cand, ref, r["kind"], e["derivation"],
                {k: v for k, v in r.items() if k != "kind"})
        for cand, e in expect.items() for ref, r in e["references"].items()
    ]
    pairs.append(lz.Pair("vision_other~vision_ref", "clip_vision", "vision_other", "vision_ref", "negative", "seed",
                         lz._expect(new_layers=list(range(V_LAYERS)), independent=list(VISION_COMPONENTS))))
    return pairs


# --------------------------------------------------------------------------- width pruning (Minitron)


def _calibration(data: lz.ZooData) -> list[dict[str, torch.Tensor]]:
    rng = np.random.default_rng(7000)
    return [lz._batch("llama", data.corpora["A"].train, rng, data.specials) for _ in range(CALIBRATION_BATCHES)]


@torch.no_grad()
def _importance(model: LlamaForCausalLM, batches: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, list]:
    """Minitron activation importance: residual channel = summed mean |output| of every RMSNorm (the layers'
    inputs and the head's); MLP neuron = mean |input of down_proj|."""
    inner = model.model
    norms = [m for layer in inner.layers for m in (layer.input_layernorm, layer.post_attention_layernorm)]
    norms.append(inner.norm)
    residual = torch.zeros(model.config.hidden_size)
    neurons = [torch.zeros(model.config.intermediate_size) for _ in inner.layers]
    hooks = []

    def on_norm(_m: Any, _inp: Any, out: torch.Tensor) -> None:
        residual.add_(out.abs().mean(dim=(0, 1)))

    def on_down(i: int) -> Callable[..., None]:
        def hook(_m: Any, inp: tuple[torch.Tensor, ...]) -> None:
            neurons[i].add_(inp[0].abs().mean(dim=(0, 1)))
        return hook

    for m in norms:
        hooks.append(m.register_forward_hook(on_norm))
    for i, layer in enumerate(inner.layers):
        hooks.append(layer.mlp.down_proj.register_forward_pre_hook(on_down(i)))
    try:
        model.eval()
        for b in batches:
            model(input_ids=b["input_ids"])
    finally:
        for h in hooks:
            h.remove()
    return residual, neurons


def _top_sorted(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest scores, in their original order."""
    return torch.sort(torch.topk(scores, k).indices).values


def _width_pruned(parent: LlamaForCausalLM, sp: Any, batches: list[dict[str, torch.Tensor]]
                  ) -> tuple[LlamaForCausalLM, list[int], list[list[int]]]:
    residual, neurons = _importance(parent, batches)
    keep = _top_sorted(residual, PRUNED_HIDDEN)
    kept_neurons = [_top_sorted(n, PRUNED_INTERMEDIATE) for n in neurons]
    src = parent.state_dict()
    sd: dict[str, torch.Tensor] = {
        "model.embed_tokens.weight": src["model.embed_tokens.weight"][:, keep],
        "lm_head.weight": src["lm_head.weight"][:, keep],
        "model.norm.weight": src["model.norm.weight"][keep],
    }
    for i, nk in enumerate(kept_neurons):
        b = f"model.layers.{i}"
        for n in ("input_layernorm", "post_attention_layernorm"):
            sd[f"{b}.{n}.weight"] = src[f"{b}.{n}.weight"][keep]
        for x in "qkv":  # heads kept: only the residual (input) columns go
            sd[f"{b}.self_attn.{x}_proj.weight"] = src[f"{b}.self_attn.{x}_proj.weight"][:, keep]
        sd[f"{b}.self_attn.o_proj.weight"] = src[f"{b}.self_attn.o_proj.weight"][keep]
        for x in ("gate_proj", "up_proj"):
            sd[f"{b}.mlp.{x}.weight"] = src[f"{b}.mlp.{x}.weight"][nk][:, keep]
        sd[f"{b}.mlp.down_proj.weight"] = src[f"{b}.mlp.down_proj.weight"][keep][:, nk]
    config = lz._config("llama", sp)
    config.hidden_size, config.intermediate_size = PRUNED_HIDDEN, PRUNED_INTERMEDIATE
    child = LlamaForCausalLM(config)
    child.load_state_dict({k: v.clone() for k, v in sd.items()}, strict=True)
    child.eval()
    return child, keep.tolist(), [n.tolist() for n in kept_neurons]


# --------------------------------------------------------------------------- depth up-scaling (SOLAR)


def _depth_upscaled(parent: LlamaForCausalLM, sp: Any) -> LlamaForCausalLM:
    src = parent.state_dict()
    sd: dict[str, torch.Tensor] = {}
    for key, value in src.items():
        if lz._layer_of(key) is None:
            sd[key] = value.clone()
    for new, old in enumerate(UPSCALE_SOURCES):
        for key, value in src.items():
            if lz._layer_of(key) == old:
                sd[key.replace(f"layers.{old}.", f"layers.{new}.", 1)] = value.clone()
    child = LlamaForCausalLM(lz._config("llama", sp, len(UPSCALE_SOURCES)))
    child.load_state_dict(sd, strict=True)
    child.eval()
    return child


# --------------------------------------------------------------------------- sparse upcycling


def _mixtral_config(parent: LlamaForCausalLM) -> MixtralConfig:
    pc = parent.config
    return MixtralConfig(
        vocab_size=pc.vocab_size,
        hidden_size=pc.hidden_size,
        intermediate_size=pc.intermediate_size,  # every expert as wide as the dense MLP
        num_hidden_layers=pc.num_hidden_layers,
        num_attention_heads=pc.num_attention_heads,
        num_key_value_heads=pc.num_key_value_heads,
        head_dim=pc.head_dim,
        max_position_embeddings=pc.max_position_embeddings,
        rms_norm_eps=pc.rms_norm_eps,
        rope_parameters=dict(pc.rope_parameters),  # Mixtral's default theta differs: keep the parent's
        num_local_experts=MOE_EXPERTS,
        num_experts_per_tok=MOE_TOP_K,
        output_router_logits=True,  # train with the load-balancing loss, as upcycled models are
        router_aux_loss_coef=0.01,
        sliding_window=None,
        tie_word_embeddings=False,
        bos_token_id=pc.bos_token_id,
        eos_token_id=pc.eos_token_id,
        pad_token_id=pc.pad_token_id,
    )


def _upcycled(parent: LlamaForCausalLM, seed: int, probe: dict[str, torch.Tensor]) -> tuple[MixtralForCausalLM, float]:
    """Attention, norms, embeddings and head copied; experts = dense MLP (+ noise); router fresh.

    Returns the model and the largest logit difference from the parent *before* the noise (function preserved)."""
    torch.manual_seed(seed)
    child = MixtralForCausalLM(_mixtral_config(parent))
    child.eval()
    src = parent.state_dict()
    sd = {k: v.detach().clone() for k, v in child.state_dict().items()}
    for key, value in src.items():
        if ".mlp." not in key:
            sd[key] = value.clone()
    for i in range(parent.config.num_hidden_layers):
        b = f"model.layers.{i}.mlp"
        gate_up = torch.cat([src[f"{b}.gate_proj.weight"], src[f"{b}.up_proj.weight"]], dim=0)
        sd[f"{b}.experts.gate_up_proj"] = gate_up.unsqueeze(0).repeat(MOE_EXPERTS, 1, 1)
        sd[f"{b}.experts.down_proj"] = src[f"{b}.down_proj.weight"].unsqueeze(0).repeat(MOE_EXPERTS, 1, 1)
    child.load_state_dict(sd, strict=True)
    with torch.no_grad():
        gap = float((child(**probe).logits - parent(**probe).logits).abs().max())
        gen = torch.Generator().manual_seed(seed + 1)
        for i in range(parent.config.num_hidden_layers):
            experts = child.model.layers[i].mlp.experts
            for w in (experts.gate_up_proj, experts.down_proj):
                scale = UPCYCLE_NOISE * w[0].std()
                w.add_(torch.randn(w.shape, generator=gen) * scale)
    return child, gap


# --------------------------------------------------------------------------- vocabulary changes


def _resized(parent: LlamaForCausalLM, sp: Any, vocab: int, seed: int) -> LlamaForCausalLM:
    """Parent with embedding and head grown to ``vocab`` rows; new rows = mean of old rows + scaled noise."""
    old = parent.config.vocab_size
    gen = torch.Generator().manual_seed(seed)
    sd = {k: v.detach().clone() for k, v in parent.state_dict().items()}
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        w = sd[key]
        noise = torch.randn((vocab - old, w.shape[1]), generator=gen) * w.std(dim=0) * NEW_ROW_NOISE
        sd[key] = torch.cat([w, w.mean(dim=0) + noise])
    child = LlamaForCausalLM(lz._config("llama", dataclasses.replace(sp, vocab=vocab)))
    child.load_state_dict(sd, strict=True)
    child.eval()
    return child


def _new_vocabulary(parent: LlamaForCausalLM, sp: Any, seed: int) -> LlamaForCausalLM:
    """Parent's layers and final norm in a model with freshly initialised embedding and head for ``sp.vocab``."""
    torch.manual_seed(seed)
    child = LlamaForCausalLM(lz._config("llama", sp))
    sd = {k: v.detach().clone() for k, v in child.state_dict().items()}
    for key, value in parent.state_dict().items():
        if key not in ("model.embed_tokens.weight", "lm_head.weight"):
            sd[key] = value.detach().clone()
    child.load_state_dict(sd, strict=True)
    child.eval()
    return child


def _set_trainable(model: PreTrainedModel, only: tuple[str, ...] | None) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_(only is None or name.startswith(only))


# --------------------------------------------------------------------------- merges


def _layerwise_merge(parents: dict[str, LlamaForCausalLM], sp: Any) -> LlamaForCausalLM:
    """Embeddings and the first layers from one parent, the last layers, final norm and head from the other."""
    a, b = parents[LAYERWISE_SOURCES[0][0]].state_dict(), parents[LAYERWISE_SOURCES[-1][0]].state_dict()
    sd: dict[str, torch.Tensor] = {"model.embed_tokens.weight": a["model.embed_tokens.weight"].clone()}
    for key in ("model.norm.weight", "lm_head.weight"):
        sd[key] = b[key].clone()
    for new, (name, old) in enumerate(LAYERWISE_SOURCES):
        for key, value in parents[name].state_dict().items():
            if lz._layer_of(key) == old:
                sd[key.replace(f"layers.{old}.", f"layers.{new}.", 1)] = value.clone()
    child = LlamaForCausalLM(lz._config("llama", sp))
    child.load_state_dict(sd, strict=True)
    child.eval()
    return child


def _average_merge(a: LlamaForCausalLM, b: LlamaForCausalLM) -> LlamaForCausalLM:
    sb = b.state_dict()
    child = copy.deepcopy(a)
    child.load_state_dict({k: 0.5 * v + 0.5 * sb[k] for k, v in a.state_dict().items()}, strict=True)
    return child


# --------------------------------------------------------------------------- vision and llava


def _vision_config() -> CLIPVisionConfig:
    return CLIPVisionConfig(
        hidden_size=lz.HIDDEN,
        intermediate_size=128,
        num_hidden_layers=V_LAYERS,
        num_attention_heads=lz.HEADS,
        image_size=IMAGE,
        patch_size=PATCH,
        projection_dim=lz.HIDDEN,
    )


def _fresh_vision(seed: int) -> CLIPVisionModel:
    torch.manual_seed(seed)
    model = CLIPVisionModel(_vision_config())
    model.eval()
    return model


def _train_vision(model: CLIPVisionModel, seed: int) -> dict[str, Any]:
    """Image classification through the pooled CLS token with a throw-away linear probe (not saved)."""
    torch.manual_seed(seed)
    probe = torch.nn.Linear(lz.HIDDEN, V_CLASSES)
    eval_rng = np.random.default_rng(424242)
    evals = [synthetic_images(eval_rng, 64) for _ in range(4)]

    @torch.no_grad()
    def measure() -> tuple[float, float]:
        model.eval()
        losses, hits = [], 0
        for px, lab in evals:
            logits = probe(model(pixel_values=px).pooler_output)
            losses.append(float(torch.nn.functional.cross_entropy(logits, lab)))
            hits += int((logits.argmax(-1) == lab).sum())
        return float(np.mean(losses)), hits / (64 * len(evals))

    loss_start, acc_start = measure()
    params = [*model.parameters(), *probe.parameters()]
    opt = torch.optim.AdamW(params, lr=V_LR, weight_decay=0.01, betas=(0.9, 0.95))
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    model.train()
    for step in range(V_STEPS):
        for g in opt.param_groups:
            g["lr"] = V_LR * min(1.0, (step + 1) / (V_STEPS // 10))
        px, lab = synthetic_images(rng, V_BATCH)
        loss = torch.nn.functional.cross_entropy(probe(model(pixel_values=px).pooler_output), lab)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - t0
    loss_end, acc_end = measure()
    return {"objective": "synthetic image classification", "steps": V_STEPS, "lr": V_LR, "data_seed": seed,
            "loss_start": round(loss_start, 4), "loss_end": round(loss_end, 4),
            "accuracy_start": round(acc_start, 3), "accuracy_end": round(acc_end, 3), "seconds": round(seconds, 2)}


def _llava_config(text_config: Any, image_token_id: int) -> LlavaConfig:
    return LlavaConfig(
        vision_config=_vision_config(),
        text_config=text_config,
        image_token_id=image_token_id,
        image_seq_length=PATCHES,
        vision_feature_layer=-2,  # llava-1.5: penultimate vision layer, CLS dropped
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )


def _class_tokens(tok: Tokenizer) -> list[int]:
    """One whole-word token per image class, for the captions."""
    words = sorted((i, t) for t, i in tok.get_vocab().items() if t.endswith(lz.EOW) and len(t) >= 6)
    return [i for i, _ in words[:V_CLASSES]]


def _llava_batch(rng: np.random.Generator, stream: np.ndarray, image_id: int, class_ids: list[int],
                 ) -> dict[str, torch.Tensor]:
    """Image tokens, then a caption: the class word and a window of corpus A (loss on the caption only)."""
    px, lab = synthetic_images(rng, LLAVA_BATCH)
    starts = rng.integers(0, len(stream) - (SEQ_TEXT - 1), LLAVA_BATCH)
    text = np.stack([np.concatenate([[class_ids[int(c)]], stream[s:s + SEQ_TEXT - 1]]) for c, s in zip(lab, starts,
                                                                                                     strict=True)])
    ids = torch.cat([torch.full((LLAVA_BATCH, PATCHES), image_id), torch.from_numpy(text)], dim=1)
    labels = ids.clone()
    labels[:, :PATCHES] = -100
    return {"input_ids": ids, "pixel_values": px, "labels": labels}


def _train_llava(model: LlavaForConditionalGeneration, stream: np.ndarray, image_id: int, class_ids: list[int],
                 *, vision_lr: float | None, seed: int) -> dict[str, Any]:
    """Captioning on synthetic images; ``vision_lr`` None keeps the vision tower frozen."""
    eval_rng = np.random.default_rng(424242)
    evals = [_llava_batch(eval_rng, stream, image_id, class_ids) for _ in range(2)]

    @torch.no_grad()
    def measure() -> float:
        model.eval()
        return float(np.mean([float(model(**b).loss) for b in evals]))

    loss_start = measure()
    tower = model.model.vision_tower
    tower_ids = {id(p) for p in tower.parameters()}
    for p in tower.parameters():
        p.requires_grad_(vision_lr is not None)
    rest = [p for p in model.parameters() if id(p) not in tower_ids]
    groups = [{"params": rest, "lr": LR}]
    if vision_lr is not None:
        groups.append({"params": list(tower.parameters()), "lr": vision_lr})
    opt = torch.optim.AdamW(groups, weight_decay=0.01, betas=(0.9, 0.95))
    base = [g["lr"] for g in opt.param_groups]
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    model.train()
    for step in range(LLAVA_STEPS):
        for g, lr in zip(opt.param_groups, base, strict=True):
            g["lr"] = lr * min(1.0, (step + 1) / (LLAVA_STEPS // 10))
        loss = model(**_llava_batch(rng, stream, image_id, class_ids)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - t0
    for p in tower.parameters():
        p.requires_grad_(True)
    return {"objective": "synthetic captioning", "steps": LLAVA_STEPS, "lr": LR, "vision_lr": vision_lr,
            "data_seed": seed, "loss_start": round(loss_start, 4), "loss_end": round(measure(), 4),
            "seconds": round(seconds, 2)}


def _llava(text: LlamaForCausalLM, vision: CLIPVisionModel, image_id: int, seed: int) -> LlavaForConditionalGeneration:
    """A llava whose projector is fresh (seeded) and whose towers are copies of ``text`` and ``vision``."""
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(_llava_config(text.config, image_id))
    model.model.vision_tower.load_state_dict(vision.state_dict(), strict=True)
    model.model.language_model.load_state_dict(text.model.state_dict(), strict=True)
    model.lm_head.load_state_dict(text.lm_head.state_dict(), strict=True)
    model.eval()
    return model


def _vision_change(model: LlavaForConditionalGeneration, ref: CLIPVisionModel) -> dict[str, Any]:
    """How far each vision tensor of a llava moved from the reference tower (relative Frobenius norm)."""
    mine, theirs = model.model.vision_tower.state_dict(), ref.state_dict()
    rel = {k: float((mine[k] - v).norm() / v.norm().clamp_min(1e-12)) for k, v in theirs.items()}
    unchanged = sorted(k for k, r in rel.items() if r == 0.0)
    return {"vision_tensors": len(rel), "vision_unchanged": unchanged,
            "vision_max_relative_change": round(max(rel.values()), 4)}


# --------------------------------------------------------------------------- building


def derivations_root(basetemp: Path) -> Path:
    """Where a test session keeps the derivations: one fixed path, so every fixture that asks shares one build."""
    override = os.environ.get(DERIVATIONS_DIR_ENV, "").strip()
    return Path(override) if override else Path(basetemp) / "lineage-derivations"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _zoo_stamp(zoo: lz.Zoo) -> dict[str, str]:
    """Hashes of the zoo files the derivations are built from (a rebuilt, different zoo invalidates the cache)."""
    stamp = {name: _sha256(zoo.models[name] / "model.safetensors") for name in (PARENT_A, PARENT_B, ZOO_DEPTH_PRUNED)}
    stamp["tokenizer"] = _sha256(zoo.root / "tokenizer" / "tokenizer.json")
    return stamp


def _from_manifest(root: Path, data: dict[str, Any], zoo: lz.Zoo) -> Derivations:
    metas = {name: data["models"][name] for name in data["expect"]}
    models = {name: (zoo.models[meta["zoo_model"]] if meta.get("zoo_model") else root / meta["path"])
              for name, meta in metas.items()}
    parents = {name: (zoo.models[name] if name in zoo.models else root / rel) for name, rel in data["parents"].items()}
    return Derivations(root=root, models=models, parents=parents, expect=data["expect"],
                       pairs=[lz.Pair(**p) for p in data["pairs"]], info=data["models"],
                       build_seconds=float(data.get("build_seconds", 0.0)))


def _load_manifest(root: Path, zoo: lz.Zoo) -> Derivations | None:
    path = root / DERIVATIONS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("version") != DERIVATIONS_VERSION or data.get("zoo_stamp") != _zoo_stamp(zoo):
        return None
    try:
        built = _from_manifest(root, data, zoo)
    except KeyError:
        return None
    if not all((p / "model.safetensors").is_file() for p in [*built.models.values(), *built.parents.values()]):
        return None
    return built


def build_derivations(root: Path, zoo: lz.Zoo | None = None, *,
                      progress: Callable[[str], None] | None = None) -> Derivations:
    """Build (or reuse) the derivations under ``root`` on top of ``zoo``.

    Without a zoo, the zoo is built (or reused) under ``$SIMSA_LINEAGE_ZOO_DIR`` or ``root/zoo``. DERIVATIONS.json
    is written last, so a partial build is redone; it records hashes of the zoo files used, so a different zoo
    invalidates the cache.
    """
    root = Path(root)
    if zoo is None:
        zoo_dir = os.environ.get(lz.ZOO_DIR_ENV, "").strip()
        zoo = lz.build_zoo(Path(zoo_dir) if zoo_dir else root / "zoo", progress=progress)
    cached = _load_manifest(root, zoo)
    if cached is not None:
        if progress:
            progress(f"derivations: reusing {root / DERIVATIONS_FILE}")
        return cached
    with lz._quiet_and_threads():
        return _build(root, zoo, progress or (lambda _msg: None))


def _build(root: Path, zoo: lz.Zoo, say: Callable[[str], None]) -> Derivations:
    t_all = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    (root / DERIVATIONS_FILE).unlink(missing_ok=True)
    for sub in ("models", "tokenizers"):
        if (root / sub).exists():
            shutil.rmtree(root / sub)
        (root / sub).mkdir()
    models_dir, tok_dir = root / "models", root / "tokenizers"

    data = lz.zoo_data(zoo.root)
    sp = data.specials
    zoo_tok = zoo.root / "tokenizer" / "tokenizer.json"
    parents = {name: LlamaForCausalLM.from_pretrained(zoo.models[name]).eval() for name in (PARENT_A, PARENT_B)}
    parent_a = parents[PARENT_A]

    models: dict[str, Path] = {}
    info: dict[str, dict[str, Any]] = {}
    expect: dict[str, dict[str, Any]] = {}
    ref_paths: dict[str, Path] = {PARENT_A: zoo.models[PARENT_A], PARENT_B: zoo.models[PARENT_B]}
    clock = [time.perf_counter()]

    def save_tokenizer(name: str, tok: Tokenizer) -> Path:
        path = tok_dir / name / "tokenizer.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tok.save(str(path))
        return path

    def save(name: str, model: PreTrainedModel, tokenizer: Path | None, meta: dict[str, Any],
             exp: dict[str, Any] | None) -> None:
        out = models_dir / name
        model.save_pretrained(out, safe_serialization=True)
        if tokenizer is not None:
            shutil.copyfile(tokenizer, out / "tokenizer.json")
            (out / "tokenizer_config.json").write_text(json.dumps(lz._tokenizer_config(), indent=2) + "\n")
        seconds = round(time.perf_counter() - clock[0], 2)
        clock[0] = time.perf_counter()
        cfg = model.config
        layers = getattr(cfg, "num_hidden_layers", None) or cfg.get_text_config().num_hidden_layers
        info[name] = {"path": os.path.relpath(out, root), "architecture": type(model).__name__, "layers": layers,
                      "build_seconds": seconds, **meta}
        if exp is not None:
            models[name] = out
            expect[name] = exp
        else:
            ref_paths[name] = out
        say(f"derivations: {name} built in {seconds:.1f}s")

    def train(model: PreTrainedModel, name: str, corpus: lz._Corpus, specials: Any, steps: int, lr: float,
              seed: int) -> dict[str, Any]:
        stats = lz._train(model, "llama", corpus, specials, steps=steps, lr=lr, seed=seed)
        say(f"derivations: {name}: {steps} steps on {corpus.name}, loss {stats['loss_start']:.3f} -> "
            f"{stats['loss_end']:.3f} ({stats['seconds']:.1f}s)")
        return stats

    all_llama = list(LLAMA_COMPONENTS)
    ref_meta = {"parent": PARENT_A}

    # 1. Width pruning (Minitron): residual 64 -> 48, MLP 128 -> 96, heads kept; then healed.
    name = "width_pruned"
    child, keep, kept_neurons = _width_pruned(parent_a, sp, _calibration(data))
    stats = train(child, name, data.corpora["A"], sp, STEPS, LR, 8001)
    save(name, child, zoo_tok, {"derivation": "width-pruned", **ref_meta, "training": [stats]}, {
        "derivation": "width-pruned", "family": "llama", "architecture": "LlamaForCausalLM",
        "hidden_size": [lz.HIDDEN, PRUNED_HIDDEN], "intermediate_size": [128, PRUNED_INTERMEDIATE],
        "references": {PARENT_A: _ref(
            "derived", layer_map=_identity(), derived=all_llama,
            kept_residual=keep,  # candidate residual coordinate i is parent coordinate kept_residual[i]
            kept_neurons=kept_neurons,  # per layer: candidate neuron j is parent neuron kept_neurons[layer][j]
            heads_kept=True)},
    })

    # 2. Depth up-scaling (SOLAR): layers [0,1,2] + [1,2,3].
    name = "depth_upscaled"
    child = _depth_upscaled(parent_a, sp)
    stats = train(child, name, data.corpora["A"], sp, STEPS, LR, 8002)
    save(name, child, zoo_tok, {"derivation": "depth-upscaled", **ref_meta, "training": [stats]}, {
        "derivation": "depth-upscaled", "family": "llama", "architecture": "LlamaForCausalLM",
        "references": {PARENT_A: _ref("derived", layer_map=[[c, r] for c, r in enumerate(UPSCALE_SOURCES)],
                                      derived=all_llama, layer_sources=list(UPSCALE_SOURCES))},
    })

    # 3. Depth pruning: the zoo's layer-dropped llama (layer 2 removed, healed 50 steps).
    name = "depth_pruned"
    zoo_pair = next(p for p in zoo.pairs if p.candidate == ZOO_DEPTH_PRUNED and p.reference == PARENT_A)
    models[name] = zoo.models[ZOO_DEPTH_PRUNED]
    info[name] = {"zoo_model": ZOO_DEPTH_PRUNED, "architecture": "LlamaForCausalLM", "layers": lz.LAYERS - 1,
                  "derivation": "depth-pruned", **ref_meta, "dropped_layer": lz.DROPPED_LAYER, "build_seconds": 0.0,
                  "training": zoo.info[ZOO_DEPTH_PRUNED]["training"]}
    expect[name] = {"derivation": "depth-pruned", "family": "llama", "architecture": "LlamaForCausalLM",
                    "zoo_model": ZOO_DEPTH_PRUNED,
                    "references": {PARENT_A: {"kind": zoo_pair.kind, **zoo_pair.expect,
                                              "dropped_layer": lz.DROPPED_LAYER}}}
    clock[0] = time.perf_counter()

    # 4. Sparse upcycling into Mixtral: experts = dense MLP + noise, router fresh.
    name = "moe_upcycled"
    probe = _calibration(data)[0]
    child, gap = _upcycled(parent_a, 8004, {"input_ids": probe["input_ids"]})
    stats = train(child, name, data.corpora["A"], sp, STEPS, LR, 8005)
    save(name, child, zoo_tok, {"derivation": "moe-upcycled", **ref_meta, "experts": MOE_EXPERTS,
                                "top_k": MOE_TOP_K, "noise": UPCYCLE_NOISE, "max_logit_gap_before_noise": gap,
                                "training": [stats]}, {
        "derivation": "moe-upcycled", "family": "mixtral", "architecture": "MixtralForCausalLM",
        "experts": MOE_EXPERTS,
        "references": {PARENT_A: _ref(
            "derived", layer_map=_identity(),
            derived=["text.embedding", "text.attention", "text.experts", "text.output_head"],
            # candidate component -> parent component it was initialised from
            component_map={"text.experts": "text.mlp"},
            # [candidate layer, expert, parent layer]: every expert is a (noisy) copy of that layer's dense MLP
            expert_map=[[i, e, i] for i in range(lz.LAYERS) for e in range(MOE_EXPERTS)],
            new_components=["text.router"])},
    })

    # 5. Vocabulary extension: 64 more BPE merges (real new entries); new rows = mean of old rows + noise.
    name = "vocab_extended"
    ext_tok = lz._train_tokenizer(data.sentences["A"]["train"], sp.vocab + EXTRA_TOKENS)
    old_vocab, new_vocab = data.tokenizer.get_vocab(), ext_tok.get_vocab()
    assert all(new_vocab.get(t) == i for t, i in old_vocab.items()), "extension must keep every old token id"
    ext_sp = lz.specials_of(ext_tok)
    assert ext_sp.vocab == sp.vocab + EXTRA_TOKENS
    ext_corpora = lz.tokenize_corpora(ext_tok, data.sentences)
    new_share = float((ext_corpora["A"].train >= sp.vocab).mean())
    child = _resized(parent_a, sp, ext_sp.vocab, 8006)
    stats = train(child, name, ext_corpora["A"], ext_sp, STEPS, LR, 8007)
    save(name, child, save_tokenizer("extended", ext_tok),
         {"derivation": "vocab-extended", **ref_meta, "new_token_share_of_corpus": round(new_share, 4),
          "training": [stats]}, {
        "derivation": "vocab-extended", "family": "llama", "architecture": "LlamaForCausalLM",
        "references": {PARENT_A: _ref(
            "derived", layer_map=_identity(), derived=all_llama,
            shared_tokens=sp.vocab,  # ids 0..shared_tokens-1: same strings, same ids, rows from the parent
            new_tokens=EXTRA_TOKENS,  # ids shared_tokens.. : new BPE entries, rows new
            new_token_ids=[sp.vocab, ext_sp.vocab])},
    })

    # 6. Vocabulary replacement: other BPE (corpus B, 448 entries); fresh embedding and head; layers kept.
    name = "vocab_replaced"
    rep_tok = lz._train_tokenizer(data.sentences["B"]["train"], REPLACED_VOCAB)
    rep_sp = lz.specials_of(rep_tok)
    rep_corpora = lz.tokenize_corpora(rep_tok, data.sentences)
    shared = sorted(set(rep_tok.get_vocab()) & set(old_vocab))
    same_id = sum(rep_tok.token_to_id(t) == old_vocab[t] for t in shared)
    child = _new_vocabulary(parent_a, rep_sp, 8008)
    _set_trainable(child, ("model.embed_tokens.", "lm_head."))
    stage1 = train(child, f"{name} (embeddings only)", rep_corpora["B"], rep_sp, STEPS, lz.BASE_LR, 8009)
    _set_trainable(child, None)
    stage2 = train(child, name, rep_corpora["B"], rep_sp, STEPS, LR, 8010)
    save(name, child, save_tokenizer("replaced", rep_tok),
         {"derivation": "vocab-replaced", **ref_meta, "vocab_size": rep_sp.vocab, "training": [stage1, stage2]}, {
        "derivation": "vocab-replaced", "family": "llama", "architecture": "LlamaForCausalLM",
        "vocab_size": rep_sp.vocab,
        "references": {PARENT_A: _ref(
            "derived", layer_map=_identity(), derived=["text.attention", "text.mlp"],
            independent=["text.embedding", "text.output_head"],
            # token strings both vocabularies have (rows freshly initialised anyway), and how many keep their id
            shared_token_strings=len(shared), shared_tokens_same_id=same_id)},
    })

    # 7. Layer-wise merge (frankenmerge) of two independent parents.
    name = "merge_layerwise"
    child = _layerwise_merge(parents, sp)
    stats = train(child, name, data.corpora["A"], sp, MERGE_STEPS, LR, 8011)
    a_layers = [[c, r] for c, (p, r) in enumerate(LAYERWISE_SOURCES) if p == PARENT_A]
    b_layers = [[c, r] for c, (p, r) in enumerate(LAYERWISE_SOURCES) if p == PARENT_B]
    save(name, child, zoo_tok, {"derivation": "merge-layerwise", "parents": [PARENT_A, PARENT_B],
                                "training": [stats]}, {
        "derivation": "merge-layerwise", "family": "llama", "architecture": "LlamaForCausalLM",
        "layer_sources": [[c, p, r] for c, (p, r) in enumerate(LAYERWISE_SOURCES)],
        "references": {
            PARENT_A: _ref("derived", layer_map=a_layers, new_layers=[c for c, _ in b_layers],
                           derived=["text.embedding", "text.attention", "text.mlp"],
                           independent=["text.output_head"]),
            PARENT_B: _ref("derived", layer_map=b_layers, new_layers=[c for c, _ in a_layers],
                           derived=["text.attention", "text.mlp", "text.output_head"],
                           independent=["text.embedding"]),
        },
    })

    # 8. 50/50 linear average of every tensor of two independent parents.
    name = "merge_average"
    child = _average_merge(parent_a, parents[PARENT_B])
    stats = train(child, name, data.corpora["A"], sp, STEPS, LR, 8012)
    save(name, child, zoo_tok, {"derivation": "merge-average", "parents": [PARENT_A, PARENT_B],
                                "weights": [0.5, 0.5], "training": [stats]}, {
        "derivation": "merge-average", "family": "llama", "architecture": "LlamaForCausalLM",
        "weights": {PARENT_A: 0.5, PARENT_B: 0.5},
        "references": {p: _ref("derived", layer_map=_identity(), derived=all_llama, weight=0.5)
                       for p in (PARENT_A, PARENT_B)},
    })

    # 9. Vision references and llava candidates.
    vision_ref = _fresh_vision(9000)
    stats = _train_vision(vision_ref, 9001)
    save("vision_ref", vision_ref, None, {"derivation": "base", "family": "clip_vision", "seed": 9000,
                                          "training": [stats]}, None)
    vision_other = _fresh_vision(9100)
    stats = _train_vision(vision_other, 9101)
    save("vision_other", vision_other, None, {"derivation": "base", "family": "clip_vision", "seed": 9100,
                                              "training": [stats]}, None)

    llava_tok = Tokenizer.from_str(data.tokenizer.to_str())
    llava_tok.add_special_tokens([IMAGE_TOKEN])
    image_id = llava_tok.token_to_id(IMAGE_TOKEN)
    assert image_id == sp.vocab
    llava_tok_path = save_tokenizer("llava", llava_tok)
    llava_sp = dataclasses.replace(sp, vocab=sp.vocab + 1)
    class_ids = _class_tokens(data.tokenizer)
    stream = data.corpora["A"].train
    not_text = {"independent": list(VISION_COMPONENTS), "new_layers": list(range(V_LAYERS)), "stack": "vision"}
    variants = [  # name, derivation, kind vs vision_ref, vision tower, vision lr (None: frozen), seed
        ("llava_reused_frozen", "vision-reused-frozen", "derived", vision_ref, None, 9200),
        ("llava_reused_tuned", "vision-reused-tuned", "derived", vision_ref, LLAVA_VISION_TUNE_LR, 9300),
        ("llava_independent", "vision-independent", "negative", _fresh_vision(9400), LR, 9500),
    ]
    for name, derivation, kind, tower, vision_lr, seed in variants:
        text = lz._fresh("llama", llava_sp, seed)  # a fresh, independent llama per candidate (not a zoo parent)
        text_stats = train(text, f"{name} (text model)", data.corpora["A"], llava_sp, LLAVA_TEXT_STEPS, lz.BASE_LR,
                           seed + 1)
        model = _llava(text, tower, image_id, seed + 2)
        mm_stats = _train_llava(model, stream, image_id, class_ids, vision_lr=vision_lr, seed=seed + 3)
        say(f"derivations: {name}: {LLAVA_STEPS} captioning steps, loss {mm_stats['loss_start']:.3f} -> "
            f"{mm_stats['loss_end']:.3f} ({mm_stats['seconds']:.1f}s)")
        change = _vision_change(model, vision_ref)
        if kind == "negative":
            vs_ref = _ref(kind, **not_text)
        else:
            vs_ref = _ref(kind, layer_map=_identity(V_LAYERS), derived=list(VISION_COMPONENTS), stack="vision")
        save(name, model, llava_tok_path, {"derivation": derivation, "family": "llava", "text_seed": seed,
                                           "vision_from": None if kind == "negative" else "vision_ref",
                                           "vision_layers": V_LAYERS, **change,
                                           "training": [text_stats, mm_stats]}, {
            "derivation": derivation, "family": "llava", "architecture": "LlavaForConditionalGeneration",
            # stacks with no counterpart in the references: the text model and projector are new in every llava
            "candidate_only_components": ["text.*", "projector.projector"],
            "references": {"vision_ref": vs_ref, "vision_other": _ref("negative", **not_text)},
        })

    seconds = round(time.perf_counter() - t_all, 1)
    pairs = _pairs(expect)
    manifest = {
        "version": DERIVATIONS_VERSION,
        "build_seconds": seconds,
        "build_threads": torch.get_num_threads(),
        "zoo_root": str(zoo.root),
        "zoo_stamp": _zoo_stamp(zoo),
        "parents": {n: (n if n in zoo.models else os.path.relpath(p, root)) for n, p in ref_paths.items()},
        "models": info,
        "expect": expect,
        "pairs": [asdict(p) for p in pairs],
    }
    tmp = root / (DERIVATIONS_FILE + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(root / DERIVATIONS_FILE)
    say(f"derivations: built {len(info)} models, {len(pairs)} pairs in {seconds}s")
    return Derivations(root=root, models=models, parents=ref_paths, expect=expect, pairs=pairs, info=info,
                       build_seconds=seconds)


if __name__ == "__main__":
    import sys
    import tempfile

    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "simsa-lineage-derivations"
    built = build_derivations(base, progress=print)
    print(f"{len(built.models)} candidates, {len(built.pairs)} pairs, {built.build_seconds}s")
