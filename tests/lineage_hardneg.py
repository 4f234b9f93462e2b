"""Hard negatives for calibrating the lineage test: many independently initialised, longer-trained tiny models.

The lineage zoo (``lineage_zoo``) has a handful of hard negatives per family, enough to see gross miscalibration but
not to support a 10⁻⁶ verdict threshold or to check each component's p-values at α = 0.001. This module builds, for
each family (dense decoder, MoE, encoder) and each residual width, a group of models that share the zoo's tokenizer
and training data but were initialised independently — with different seeds *and* different initialisation schemes,
so the null is not only "same recipe, other seed" — and trained several times longer than the zoo's models. Every
pair within a group is a hard negative: the lineage test must never call one ``derived``.

Initialisation schemes (cycled over a group's models; applied with torch to the fresh model, seeded, before training;
1-D parameters keep the library's init: norm gains 1, biases 0; the padding token's embedding row stays 0):

- ``normal``: N(0, σ²) with σ = the config's ``initializer_range`` (0.02, the Hugging Face default);
- ``truncated_normal``: N(0, σ²) truncated at ±2σ;
- ``uniform``: U(−√3·σ, √3·σ), the same variance as ``normal``;
- ``mup``: µP-style — hidden matrices (attention, MLP, experts, router, BERT's MLM transform) N(0, 1/fan_in), the
  untied output head N(0, 1/fan_in²), embeddings N(0, (0.02·√(64/width))²). Only the initialisation follows µP; the
  optimiser is the zoo's AdamW for every model.

Models are cached under the root: each model directory carries its own ``hardneg.json`` (written last), so an
interrupted build resumes, and ``HARDNEG.json`` lists the whole set; both carry ``HARDNEG_VERSION`` (bump it when the
recipe changes). Importable as ``tests.lineage_hardneg`` (by the benches) and as ``lineage_hardneg`` (by pytest); it
must not import pytest.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from simsa.errors import InputError

if __package__:
    from . import lineage_zoo as lz
else:
    import lineage_zoo as lz

HARDNEG_VERSION = "lineage-hardneg-1"
HARDNEG_FILE = "HARDNEG.json"
MODEL_FILE = "hardneg.json"

FAMILIES = ("llama", "moe", "bert")
FAMILY_LABELS = {"llama": "dense decoder", "moe": "moe", "bert": "encoder"}
WIDTHS = (64, 128)
MODELS_PER_GROUP = 9
STEPS = 400  # 600 would take ~38 min for the full set on one core (measured per-step cost); 400 keeps it near 25
LR = lz.BASE_LR
INITS = ("normal", "truncated_normal", "uniform", "mup")
MUP_BASE_WIDTH = 64

Progress = Callable[[str, int, int], None]  # (message, models done, models in all)


@dataclass(frozen=True)
class HardNegPair:
    """Two independently initialised models of one (family, width) group: a hard negative."""

    name: str
    family: str
    width: int
    candidate: str
    reference: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HardNegZoo:
    """The built hard negatives: model directories by name, their build facts, and every within-group pair."""

    root: Path
    models: dict[str, Path]
    info: dict[str, dict[str, Any]]
    pairs: tuple[HardNegPair, ...]
    recipe: dict[str, Any]
    build_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"version": HARDNEG_VERSION, "recipe": self.recipe, "build_seconds": self.build_seconds,
                "models": self.info, "pairs": [p.to_dict() for p in self.pairs]}


# --------------------------------------------------------------------------- configuration and initialisation


def model_config(family: str, sp: Any, width: int) -> Any:
    """The zoo's config for ``family`` at residual width ``width`` (heads kept, so head_dim = width / heads).

    MLP widths scale with the residual width (dense: 2·width; MoE experts: width / 4) so both widths have the same
    shape ratios.
    """
    if width % lz.HEADS:
        raise InputError(f"width {width} is not a multiple of the {lz.HEADS} attention heads")
    base = lz._config(family, sp)
    fields = base.to_dict()
    fields.update(hidden_size=width, intermediate_size=2 * width)
    if family in ("llama", "moe"):
        fields["head_dim"] = width // lz.HEADS
    if family == "moe":
        fields["moe_intermediate_size"] = width // 4
    return type(base).from_dict(fields)


def _role(name: str) -> str:
    """Which part of the network a (≥ 2-D) parameter is: its µP-style scaling depends on it."""
    if "embed" in name:
        return "embedding"
    if name.startswith("lm_head."):
        return "head"
    return "hidden"


def init_std(scheme: str, role: str, fan_in: int, width: int, sigma: float) -> float:
    """The standard deviation ``scheme`` gives a parameter (before truncation for ``truncated_normal``)."""
    if scheme in ("normal", "truncated_normal", "uniform"):
        return sigma
    if scheme == "mup":
        if role == "embedding":
            return 0.02 * math.sqrt(MUP_BASE_WIDTH / width)
        if role == "head":
            return 1.0 / fan_in
        return 1.0 / math.sqrt(fan_in)
    raise InputError(f"unknown initialisation {scheme!r}; known: {', '.join(INITS)}")


@torch.no_grad()
def initialise(model: PreTrainedModel, scheme: str, seed: int) -> dict[str, float]:
    """Re-draw every ≥ 2-D parameter of ``model`` under ``scheme`` from a generator seeded by ``seed``.

    Returns the std each role was drawn with (recorded in the manifest).
    """
    gen = torch.Generator().manual_seed(seed)
    sigma = float(getattr(model.config, "initializer_range", 0.02))
    width = int(model.config.hidden_size)
    used: dict[str, float] = {}
    for name, p in model.named_parameters():
        if p.ndim < 2:
            continue
        role = _role(name)
        std = init_std(scheme, role, int(p.shape[-1]), width, sigma)
        if scheme == "truncated_normal":
            torch.nn.init.trunc_normal_(p, 0.0, std, -2.0 * std, 2.0 * std, generator=gen)
        elif scheme == "uniform":
            bound = math.sqrt(3.0) * std
            torch.nn.init.uniform_(p, -bound, bound, generator=gen)
        else:
            torch.nn.init.normal_(p, 0.0, std, generator=gen)
        used.setdefault(role, round(std, 6))
    emb = model.get_input_embeddings()
    if getattr(emb, "padding_idx", None) is not None:
        emb.weight[emb.padding_idx].zero_()
    return used


# --------------------------------------------------------------------------- the set of models


def model_seed(name: str) -> int:
    """A seed fixed by the model's name alone, so adding families or widths never changes another model."""
    return zlib.crc32(f"{HARDNEG_VERSION}|{name}".encode()) % (2**31 - 2)


def model_names(family: str, width: int, count: int) -> list[tuple[str, str]]:
    """(name, initialisation) of a group's models; initialisations cycle over ``INITS``."""
    return [(f"{family}-w{width}-{i:02d}-{INITS[i % len(INITS)]}", INITS[i % len(INITS)]) for i in range(count)]


def group_pairs(family: str, width: int, names: list[str]) -> list[HardNegPair]:
    """Every pair of a group, later model as candidate."""
    return [HardNegPair(f"{b}~{a}", family, width, b, a) for a, b in itertools.combinations(names, 2)]


def _recipe(families: tuple[str, ...], widths: tuple[int, ...], models_per_group: int, steps: int) -> dict[str, Any]:
    return {"version": HARDNEG_VERSION, "families": list(families), "widths": list(widths),
            "models_per_group": models_per_group, "steps": steps, "lr": LR}


def _model_key(family: str, width: int, scheme: str, seed: int, steps: int) -> dict[str, Any]:
    return {"version": HARDNEG_VERSION, "family": family, "width": width, "init": scheme, "seed": seed,
            "steps": steps, "lr": LR}


def _check(families: tuple[str, ...], widths: tuple[int, ...], models_per_group: int, steps: int) -> None:
    unknown = [f for f in families if f not in lz._MODEL_CLASSES]
    if unknown:
        raise InputError(f"unknown families {unknown}; known: {', '.join(lz._MODEL_CLASSES)}")
    if not families or not widths:
        raise InputError("at least one family and one width are needed")
    if models_per_group < 2:
        raise InputError(f"a group needs at least 2 models to form a pair, not {models_per_group}")
    if steps < 1:
        raise InputError(f"steps must be at least 1, not {steps}")


def _load_manifest(root: Path, recipe: dict[str, Any]) -> HardNegZoo | None:
    try:
        data = json.loads((root / HARDNEG_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("version") != HARDNEG_VERSION or data.get("recipe") != recipe:
        return None
    models = {name: root / meta["path"] for name, meta in data["models"].items()}
    if not all((p / "model.safetensors").is_file() for p in models.values()):
        return None
    return HardNegZoo(root, models, data["models"], tuple(HardNegPair(**p) for p in data["pairs"]), recipe,
                      float(data.get("build_seconds", 0.0)))


def _cached_model(out: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        meta = json.loads((out / MODEL_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("key") != key or not (out / "model.safetensors").is_file():
        return None
    return meta


def build_hardneg(root: Path, *, families: tuple[str, ...] = FAMILIES, widths: tuple[int, ...] = WIDTHS,
                  models_per_group: int = MODELS_PER_GROUP, steps: int = STEPS,
                  progress: Progress | None = None) -> HardNegZoo:
    """Build (or reuse) the hard negatives under ``root``; models already built with the same recipe are kept."""
    families, widths = tuple(families), tuple(int(w) for w in widths)
    _check(families, widths, models_per_group, steps)
    root = Path(root)
    recipe = _recipe(families, widths, models_per_group, steps)
    cached = _load_manifest(root, recipe)
    say = progress or (lambda _msg, _done, _total: None)
    total = len(families) * len(widths) * models_per_group
    if cached is not None:
        say(f"hard negatives: reusing {root / HARDNEG_FILE}", total, total)
        return cached
    with lz._quiet_and_threads():
        return _build(root, recipe, families, widths, models_per_group, steps, say, total)


def _build(root: Path, recipe: dict[str, Any], families: tuple[str, ...], widths: tuple[int, ...],
           models_per_group: int, steps: int, say: Progress, total: int) -> HardNegZoo:
    t0 = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    (root / HARDNEG_FILE).unlink(missing_ok=True)
    data = lz.zoo_data()
    tok_dir = root / "tokenizer"
    tok_dir.mkdir(exist_ok=True)
    data.tokenizer.save(str(tok_dir / "tokenizer.json"))
    sp = data.specials
    corpus = data.corpora["A"]
    models: dict[str, Path] = {}
    info: dict[str, dict[str, Any]] = {}
    pairs: list[HardNegPair] = []
    done = 0
    say(f"hard negatives: {total} models, tokenizer vocab {sp.vocab}, corpus A {len(corpus.train)} tokens", 0, total)
    for family in families:
        for width in widths:
            names = model_names(family, width, models_per_group)
            for name, scheme in names:
                out = root / "models" / name
                seed = model_seed(name)
                key = _model_key(family, width, scheme, seed, steps)
                meta = _cached_model(out, key)
                if meta is None:
                    meta = _train_one(out, tok_dir, family, width, scheme, seed, steps, sp, corpus, key)
                    msg = (f"{name}: loss {meta['training']['loss_start']:.3f} -> {meta['training']['loss_end']:.3f} "
                           f"({meta['training']['seconds']:.1f}s)")
                else:
                    msg = f"{name}: reused"
                meta = {**meta, "path": os.path.relpath(out, root)}
                models[name], info[name] = out, meta
                done += 1
                say(msg, done, total)
            pairs.extend(group_pairs(family, width, [n for n, _ in names]))
    seconds = round(time.perf_counter() - t0, 1)
    zoo = HardNegZoo(root, models, info, tuple(pairs), recipe, seconds)
    manifest = {**zoo.to_dict(), "build_threads": torch.get_num_threads(),
                "tokenizer": {"path": "tokenizer/tokenizer.json", "vocab_size": sp.vocab}}
    tmp = root / (HARDNEG_FILE + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(root / HARDNEG_FILE)
    return zoo


def _train_one(out: Path, tok_dir: Path, family: str, width: int, scheme: str, seed: int, steps: int, sp: Any,
               corpus: Any, key: dict[str, Any]) -> dict[str, Any]:
    """Initialise, train and save one model; its ``hardneg.json`` is written last."""
    if out.exists():
        shutil.rmtree(out)
    torch.manual_seed(seed)
    model = lz._MODEL_CLASSES[family](model_config(family, sp, width))
    stds = initialise(model, scheme, seed)
    stats = lz._train(model, family, corpus, sp, steps=steps, lr=LR, seed=seed + 1)
    model.save_pretrained(out, safe_serialization=True)
    shutil.copyfile(tok_dir / "tokenizer.json", out / "tokenizer.json")
    (out / "tokenizer_config.json").write_text(json.dumps(lz._tokenizer_config(), indent=2) + "\n")
    meta = {"key": key, "family": family, "family_label": FAMILY_LABELS.get(family, family), "width": width,
            "init": scheme, "init_std": stds, "seed": seed, "architecture": type(model).__name__,
            "layers": model.config.num_hidden_layers, "parameters": sum(p.numel() for p in model.parameters()),
            "training": stats}
    (out / MODEL_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


if __name__ == "__main__":
    import sys
    import tempfile

    default = Path(tempfile.gettempdir()) / "simsa-lineage-hardneg"
    zoo = build_hardneg(Path(sys.argv[1]) if len(sys.argv) > 1 else default,
                        progress=lambda msg, done, total: print(f"[{done}/{total}] {msg}", flush=True))
    print(f"{len(zoo.models)} models, {len(zoo.pairs)} pairs, {zoo.build_seconds}s")
