"""The derivation fixtures must really be what their ground truth says (checks of the fixture, not of lineage verdicts).

Weight-level checks use the plain correlation of flattened tensors: copies of a parent tensor stay near 1 after the
brief training, independent tensors stay near 0.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    CLIPVisionModel,
    LlavaForConditionalGeneration,
    MixtralForCausalLM,
)

from lineage_derivations import (
    DERIVATIONS_FILE,
    EXTRA_TOKENS,
    LAYERWISE_SOURCES,
    MOE_EXPERTS,
    PARENT_A,
    PARENT_B,
    PATCHES,
    PRUNED_HIDDEN,
    PRUNED_INTERMEDIATE,
    REPLACED_VOCAB,
    UPSCALE_SOURCES,
    V_LAYERS,
    Derivations,
    build_derivations,
)
from lineage_zoo import LAYERS, Zoo
from simsa.lineage.model.adapters import map_architecture

CANDIDATES = {
    "width_pruned", "depth_upscaled", "depth_pruned", "moe_upcycled", "vocab_extended", "vocab_replaced",
    "merge_layerwise", "merge_average", "llava_reused_frozen", "llava_reused_tuned", "llava_independent",
}
REFERENCES = {PARENT_A, PARENT_B, "vision_ref", "vision_other"}
EXPECT_KEYS = {"kind", "layer_map", "new_layers", "derived_components", "independent_components"}
LLAVAS = ("llava_reused_frozen", "llava_reused_tuned", "llava_independent")


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(path / "model.safetensors", "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a mapping


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (a.norm() * b.norm()))


def _layer(sd: dict[str, torch.Tensor], i: int, prefix: str = "model.layers") -> torch.Tensor:
    """Every matrix of one layer, concatenated in name order (same names → same order in two models)."""
    return torch.cat([v.flatten() for k, v in sorted(sd.items()) if k.startswith(f"{prefix}.{i}.") and v.dim() == 2])


@pytest.fixture(scope="module")
def built(lineage_derivations: Derivations) -> Derivations:
    return lineage_derivations


@pytest.fixture(scope="module")
def parent_a(built: Derivations) -> dict[str, torch.Tensor]:
    return _tensors(built.parents[PARENT_A])


@pytest.fixture(scope="module")
def parent_b(built: Derivations) -> dict[str, torch.Tensor]:
    return _tensors(built.parents[PARENT_B])


def _ref(built: Derivations, name: str, ref: str = PARENT_A) -> dict:
    return built.expect[name]["references"][ref]


# --------------------------------------------------------------------------- manifest and loading


def test_manifest_states_ground_truth_for_every_candidate(built: Derivations, lineage_zoo: Zoo) -> None:
    assert set(built.models) == set(built.expect) == CANDIDATES
    assert set(built.parents) == REFERENCES
    assert built.parents[PARENT_A] == lineage_zoo.models[PARENT_A]
    assert built.models["depth_pruned"] == lineage_zoo.models["llama-s0-drop2"]
    for name, exp in built.expect.items():
        assert {"derivation", "family", "architecture", "references"} <= set(exp), name
        assert exp["references"] and set(exp["references"]) <= REFERENCES, name
        for ref, r in exp["references"].items():
            assert set(r) >= EXPECT_KEYS, (name, ref)
            assert r["kind"] in ("derived", "identical", "negative"), (name, ref)
            assert not set(r["derived_components"]) & set(r["independent_components"]), (name, ref)
            mapped = {c for c, _ in r["layer_map"]}
            assert not mapped & set(r["new_layers"]), (name, ref)
    names = [p.name for p in built.pairs]
    assert len(names) == len(set(names))
    assert {p.candidate for p in built.pairs} == CANDIDATES | {"vision_other"}
    for p in built.pairs:
        assert built.path(p.candidate).is_dir() and built.path(p.reference).is_dir(), p.name
        if p.kind == "negative":
            assert not p.expect["derived_components"], p.name
    on_disk = json.loads((built.root / DERIVATIONS_FILE).read_text())
    assert on_disk["pairs"] == [asdict(p) for p in built.pairs]
    assert on_disk["expect"] == built.expect


def _layer_counts(path: Path) -> dict[str, int]:
    cfg = json.loads((path / "config.json").read_text())
    if "vision_config" in cfg:
        return {"text": cfg["text_config"]["num_hidden_layers"], "vision": cfg["vision_config"]["num_hidden_layers"]}
    return {"vision" if cfg["model_type"] == "clip_vision_model" else "text": cfg["num_hidden_layers"]}


def test_layer_maps_fit_the_models(built: Derivations) -> None:
    for p in built.pairs:
        stack = "vision" if p.family in ("llava", "clip_vision") else "text"
        cand, ref = _layer_counts(built.path(p.candidate))[stack], _layer_counts(built.path(p.reference))[stack]
        assert all(0 <= c < cand and 0 <= r < ref for c, r in p.expect["layer_map"]), p.name
        assert all(0 <= c < cand for c in p.expect["new_layers"]), p.name
        if p.kind != "negative":  # every candidate layer is either mapped or new
            assert {c for c, _ in p.expect["layer_map"]} | set(p.expect["new_layers"]) == set(range(cand)), p.name


def test_every_model_loads_with_its_config_and_tokenizer(built: Derivations) -> None:
    for name in sorted(CANDIDATES | REFERENCES):
        path = built.path(name)
        for file in ("model.safetensors", "config.json"):
            assert (path / file).is_file(), (name, file)
        if name.startswith("vision_"):
            model = AutoModel.from_pretrained(path)
            assert isinstance(model, CLIPVisionModel), name
            continue
        tokenizer = AutoTokenizer.from_pretrained(path)
        config = AutoConfig.from_pretrained(path)
        vocab = config.get_text_config().vocab_size
        assert vocab == len(tokenizer), name
        if name.startswith("llava_"):
            model = LlavaForConditionalGeneration.from_pretrained(path)
        else:
            model = AutoModelForCausalLM.from_pretrained(path)
            assert not model.config.tie_word_embeddings, name
        assert type(model).__name__ == built.expect.get(name, {}).get("architecture", type(model).__name__), name


def test_shapes_and_configs_match_the_derivations(built: Derivations) -> None:
    cfg = {name: AutoConfig.from_pretrained(built.path(name)) for name in CANDIDATES}
    parent = AutoConfig.from_pretrained(built.parents[PARENT_A])
    w = cfg["width_pruned"]
    assert (w.hidden_size, w.intermediate_size) == (PRUNED_HIDDEN, PRUNED_INTERMEDIATE)
    assert (w.num_attention_heads, w.num_key_value_heads, w.head_dim) == (4, 2, 16)  # heads kept
    assert _tensors(built.models["width_pruned"])["model.layers.0.self_attn.q_proj.weight"].shape == (64, 48)
    assert cfg["depth_upscaled"].num_hidden_layers == len(UPSCALE_SOURCES) == 6
    assert cfg["depth_pruned"].num_hidden_layers == LAYERS - 1
    moe = cfg["moe_upcycled"]
    assert moe.model_type == "mixtral" and moe.num_local_experts == MOE_EXPERTS
    assert moe.intermediate_size == parent.intermediate_size and moe.hidden_size == parent.hidden_size
    assert moe.rope_parameters["rope_theta"] == parent.rope_parameters["rope_theta"]
    assert built.info["moe_upcycled"]["max_logit_gap_before_noise"] < 1e-4  # exact copy before the noise
    assert cfg["vocab_extended"].vocab_size == parent.vocab_size + EXTRA_TOKENS
    assert cfg["vocab_replaced"].vocab_size == REPLACED_VOCAB
    for name in ("merge_layerwise", "merge_average"):
        assert cfg[name].to_diff_dict() == parent.to_diff_dict()
    for name in LLAVAS:
        c = cfg[name]
        assert c.model_type == "llava" and c.vision_config.model_type == "clip_vision_model"
        assert c.vision_config.num_hidden_layers == V_LAYERS and c.text_config.hidden_size == 64


def test_training_lowered_the_loss(built: Derivations) -> None:
    for name, meta in built.info.items():
        assert meta["training"], name
        for run in meta["training"]:
            assert run["loss_end"] < run["loss_start"], (name, run)


def test_tokenizers(built: Derivations, lineage_zoo: Zoo) -> None:
    zoo_vocab = json.loads((lineage_zoo.root / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]
    ext = json.loads((built.models["vocab_extended"] / "tokenizer.json").read_text())["model"]["vocab"]
    assert len(ext) == len(zoo_vocab) + EXTRA_TOKENS
    assert all(ext[t] == i for t, i in zoo_vocab.items())  # every old token keeps its id
    assert built.info["vocab_extended"]["new_token_share_of_corpus"] > 0  # the new entries are really used
    rep = json.loads((built.models["vocab_replaced"] / "tokenizer.json").read_text())["model"]["vocab"]
    assert len(rep) == REPLACED_VOCAB and rep != zoo_vocab
    for name in ("width_pruned", "depth_upscaled", "moe_upcycled", "merge_layerwise", "merge_average"):
        assert (built.models[name] / "tokenizer.json").read_bytes() == (
            lineage_zoo.root / "tokenizer" / "tokenizer.json").read_bytes(), name
    llava = AutoTokenizer.from_pretrained(built.models["llava_reused_frozen"])
    assert llava.convert_tokens_to_ids("<image>") == len(zoo_vocab)


def test_adapters_map_every_tensor(built: Derivations) -> None:
    wanted = {
        "moe_upcycled": {"text.experts", "text.router", "text.attention"},
        "llava_reused_frozen": {"vision.attention", "vision.mlp", "vision.embedding", "text.attention",
                                "projector.projector"},
        "width_pruned": {"text.embedding", "text.attention", "text.mlp", "text.output_head"},
    }
    for name in sorted(CANDIDATES | REFERENCES):
        path = built.path(name)
        with safe_open(path / "model.safetensors", "pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
        amap = map_architecture(shapes, json.loads((path / "config.json").read_text()))
        assert not amap.unmapped, (name, amap.unmapped)
        assert wanted.get(name, set()) <= set(amap.names_by_component()), name
    width = map_architecture(
        {k: tuple(v.shape) for k, v in _tensors(built.models["width_pruned"]).items()},
        json.loads((built.models["width_pruned"] / "config.json").read_text()))
    assert width.stacks["text"].hidden_size == PRUNED_HIDDEN


# --------------------------------------------------------------------------- weight-level ground truth


def test_width_pruned_keeps_the_chosen_parent_coordinates(built: Derivations, parent_a: dict) -> None:
    child = _tensors(built.models["width_pruned"])
    ref = _ref(built, "width_pruned")
    keep, neurons = ref["kept_residual"], ref["kept_neurons"]
    assert len(keep) == PRUNED_HIDDEN and keep == sorted(set(keep))
    assert all(len(n) == PRUNED_INTERMEDIATE and n == sorted(set(n)) for n in neurons)
    emb = child["model.embed_tokens.weight"]
    assert _corr(emb, parent_a["model.embed_tokens.weight"][:, keep]) > 0.9
    assert abs(_corr(emb, parent_a["model.embed_tokens.weight"][:, keep[1:] + keep[:1]])) < 0.2
    for i in range(LAYERS):
        b = f"model.layers.{i}"
        assert _corr(child[f"{b}.self_attn.q_proj.weight"], parent_a[f"{b}.self_attn.q_proj.weight"][:, keep]) > 0.9
        assert _corr(child[f"{b}.self_attn.o_proj.weight"], parent_a[f"{b}.self_attn.o_proj.weight"][keep]) > 0.9
        down = parent_a[f"{b}.mlp.down_proj.weight"][keep][:, neurons[i]]
        assert _corr(child[f"{b}.mlp.down_proj.weight"], down) > 0.9, i


def test_depth_upscaled_layers_are_copies_of_their_sources(built: Derivations, parent_a: dict) -> None:
    child = _tensors(built.models["depth_upscaled"])
    for c, source in enumerate(UPSCALE_SOURCES):
        scores = [_corr(_layer(child, c), _layer(parent_a, r)) for r in range(LAYERS)]
        assert scores[source] > 0.9 and sorted(scores)[-2] < 0.3, (c, scores)
    assert _ref(built, "depth_upscaled")["layer_map"] == [[c, r] for c, r in enumerate(UPSCALE_SOURCES)]


def test_upcycled_experts_are_noisy_copies_of_the_dense_mlp(built: Derivations, parent_a: dict) -> None:
    child = _tensors(built.models["moe_upcycled"])
    model = MixtralForCausalLM.from_pretrained(built.models["moe_upcycled"])
    assert model.model.layers[0].mlp.experts.gate_up_proj.shape[0] == MOE_EXPERTS
    for i in range(LAYERS):
        moe, dense = f"model.layers.{i}.block_sparse_moe", f"model.layers.{i}.mlp"
        assert child[f"{moe}.gate.weight"].shape == (MOE_EXPERTS, 64)
        for e in range(MOE_EXPERTS):
            for w, d in (("w1", "gate_proj"), ("w3", "up_proj"), ("w2", "down_proj")):
                assert _corr(child[f"{moe}.experts.{e}.{w}.weight"], parent_a[f"{dense}.{d}.weight"]) > 0.9, (i, e, w)
            other = f"model.layers.{(i + 1) % LAYERS}.mlp.gate_proj.weight"
            assert abs(_corr(child[f"{moe}.experts.{e}.w1.weight"], parent_a[other])) < 0.2, (i, e)
        assert not torch.equal(child[f"{moe}.experts.0.w1.weight"], child[f"{moe}.experts.1.w1.weight"])
        q = f"model.layers.{i}.self_attn.q_proj.weight"
        assert _corr(child[q], parent_a[q]) > 0.9
    assert all(e == [i, x, i] for e, (i, x) in zip(_ref(built, "moe_upcycled")["expert_map"],
                                                   [(i, x) for i in range(LAYERS) for x in range(MOE_EXPERTS)],
                                                   strict=True))


def test_vocab_extended_keeps_old_rows_and_adds_mean_initialised_ones(built: Derivations, parent_a: dict) -> None:
    child = _tensors(built.models["vocab_extended"])
    old = parent_a["model.embed_tokens.weight"]
    emb = child["model.embed_tokens.weight"]
    assert emb.shape == (old.shape[0] + EXTRA_TOKENS, old.shape[1])
    assert _corr(emb[: old.shape[0]], old) > 0.9
    assert _corr(child["lm_head.weight"][: old.shape[0]], parent_a["lm_head.weight"]) > 0.9
    mean = old.mean(dim=0, keepdim=True)
    new_cos = torch.nn.functional.cosine_similarity(emb[old.shape[0]:], mean).mean()
    old_cos = torch.nn.functional.cosine_similarity(old, mean).mean()
    assert new_cos > old_cos + 0.2  # new rows still sit near the mean of the old ones
    for i in range(LAYERS):
        assert _corr(_layer(child, i), _layer(parent_a, i)) > 0.9


def test_vocab_replaced_keeps_layers_but_not_embeddings(built: Derivations, parent_a: dict,
                                                        lineage_zoo: Zoo) -> None:
    child = _tensors(built.models["vocab_replaced"])
    for i in range(LAYERS):
        assert _corr(_layer(child, i), _layer(parent_a, i)) > 0.9
    zoo_vocab = json.loads((lineage_zoo.root / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]
    rep = json.loads((built.models["vocab_replaced"] / "tokenizer.json").read_text())["model"]["vocab"]
    shared = sorted(set(rep) & set(zoo_vocab))
    assert len(shared) > 100  # many strings in common, yet their rows were freshly initialised
    rows_c = child["model.embed_tokens.weight"][[rep[t] for t in shared]]
    rows_p = parent_a["model.embed_tokens.weight"][[zoo_vocab[t] for t in shared]]
    assert abs(_corr(rows_c, rows_p)) < 0.1
    head_c = child["lm_head.weight"][[rep[t] for t in shared]]
    head_p = parent_a["lm_head.weight"][[zoo_vocab[t] for t in shared]]
    assert _corr(head_c, head_p) < 0.3  # heads share only frequency structure (two zoo seeds give about 0.12)


def test_layerwise_merge_takes_each_layer_from_its_parent(built: Derivations, parent_a: dict,
                                                          parent_b: dict) -> None:
    child = _tensors(built.models["merge_layerwise"])
    parents = {PARENT_A: parent_a, PARENT_B: parent_b}
    for c, (source, r) in enumerate(LAYERWISE_SOURCES):
        other = PARENT_B if source == PARENT_A else PARENT_A
        assert _corr(_layer(child, c), _layer(parents[source], r)) > 0.9, c
        assert abs(_corr(_layer(child, c), _layer(parents[other], c))) < 0.2, c
    assert _corr(child["model.embed_tokens.weight"], parent_a["model.embed_tokens.weight"]) > 0.9
    assert _corr(child["lm_head.weight"], parent_b["lm_head.weight"]) > 0.9
    assert _ref(built, "merge_layerwise", PARENT_A)["layer_map"] == [[0, 0], [1, 1]]
    assert _ref(built, "merge_layerwise", PARENT_B)["layer_map"] == [[2, 2], [3, 3]]


def test_average_merge_shows_both_parents_in_every_layer(built: Derivations, parent_a: dict,
                                                         parent_b: dict) -> None:
    child = _tensors(built.models["merge_average"])
    for i in range(LAYERS):
        ca, cb = _corr(_layer(child, i), _layer(parent_a, i)), _corr(_layer(child, i), _layer(parent_b, i))
        assert ca > 0.5 and cb > 0.5 and abs(ca - cb) < 0.15, (i, ca, cb)


def _vision(built: Derivations, name: str) -> dict[str, torch.Tensor]:
    """Vision-tower tensors under the standalone CLIPVisionModel names."""
    sd = _tensors(built.path(name))
    if not name.startswith("llava_"):
        return sd
    return {k.removeprefix("vision_tower."): v for k, v in sd.items() if k.startswith("vision_tower.")}


def test_llava_vision_towers(built: Derivations) -> None:
    ref, other = _vision(built, "vision_ref"), _vision(built, "vision_other")
    frozen, tuned, indep = (_vision(built, n) for n in LLAVAS)
    assert frozen.keys() == tuned.keys() == indep.keys() == ref.keys()
    assert all(torch.equal(frozen[k], v) for k, v in ref.items())
    changed = [k for k, v in ref.items() if not torch.equal(tuned[k], v)]
    assert len(changed) > len(ref) // 2  # most tensors moved ...
    assert built.info["llava_reused_tuned"]["vision_max_relative_change"] < 0.3  # ... a little
    assert sorted(set(ref) - set(changed)) == built.info["llava_reused_tuned"]["vision_unchanged"]
    for i in range(V_LAYERS):
        layer_ref = _layer(ref, i, "encoder.layers")
        assert _corr(_layer(tuned, i, "encoder.layers"), layer_ref) > 0.9
        assert abs(_corr(_layer(indep, i, "encoder.layers"), layer_ref)) < 0.1
        assert abs(_corr(_layer(other, i, "encoder.layers"), layer_ref)) < 0.1
    assert all(built.info[n]["training"][0]["loss_end"] < 6.0 for n in LLAVAS)  # text models trained


@torch.no_grad()
def test_llava_runs_on_an_image(built: Derivations) -> None:
    model = LlavaForConditionalGeneration.from_pretrained(built.models["llava_reused_tuned"]).eval()
    image_id = model.config.image_token_id
    ids = torch.cat([torch.full((1, PATCHES), image_id), torch.randint(7, 500, (1, 8))], dim=1)
    out = model(input_ids=ids, pixel_values=torch.randn(1, 3, 32, 32))
    assert out.logits.shape == (1, PATCHES + 8, model.config.text_config.vocab_size)


def test_second_build_reuses_the_cache(built: Derivations, lineage_zoo: Zoo) -> None:
    stamp = (built.root / DERIVATIONS_FILE).stat().st_mtime_ns
    messages: list[str] = []
    t0 = time.perf_counter()
    again = build_derivations(built.root, lineage_zoo, progress=messages.append)
    assert time.perf_counter() - t0 < 5.0
    assert (built.root / DERIVATIONS_FILE).stat().st_mtime_ns == stamp
    assert messages == [f"derivations: reusing {built.root / DERIVATIONS_FILE}"]
    assert again.models == built.models and again.parents == built.parents
    assert again.expect == built.expect and again.pairs == built.pairs
