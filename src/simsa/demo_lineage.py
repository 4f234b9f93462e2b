"""The demo's originality evidence, computed: tiny checkpoints, reference fingerprints, lineage and training evidence.

As the team cut in 2026 did, one demo team (halla) submits a model whose vision encoder is a frozen copy of a
"foreign" reference model's (`foreign-lab/vision-encoder-400m`); the others train every part from their own
initialisation. Each team's submission is a small LLaVA-style checkpoint: its tiny Korean language model (the one
the benchmarks ran) under `language_model.`, a CLIP-style vision tower under `vision_tower.` and a projector. Each
language model is trained with a training-evidence package recorded on the way (step 0, checkpoints, log, tokenizer,
data manifest, `evidence.toml`). The demo fingerprints the references into a registry, then runs `lineage scan`,
`lineage compare` against the foreign encoder and `evidence verify` for every team; the originality gate is decided
from those results (demo.py). Everything built here is kept in the demo cache under `VERSION`, so a second demo
reuses it. Torch and transformers come from the same optional dependencies the tiny benchmark models need.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from simsa.bench.tinymodels import TinySpec
    from simsa.program.schema import Program

VERSION = "demo-lineage-1"
FOREIGN = "foreign-lab/vision-encoder-400m"  # the reference halla's vision encoder is copied from
FOREIGN_TEXT = "foreign-lab/korean-lm-1b"  # a second reference nobody used: scan controls
FOREIGN_SEED = 4000
FOREIGN_TEXT_STEPS, FOREIGN_TEXT_SEED = 60, 4100
REUSED_BY = {"halla": FOREIGN}  # team → the reference whose vision encoder it reuses, frozen
VISION_SEEDS = {"baekdu": 4201, "halla": 4202, "jiri": 4203, "seorak": 4204, "taebaek": 4205}
IMAGE, PATCH, V_HIDDEN, V_FFN, V_LAYERS, V_HEADS = 32, 8, 64, 128, 2, 4
# A few steps only: enough to move norms and biases off their constant initial values, too few for towers trained on
# the same synthetic task to grow alike (after 40 steps their patch embeddings already share structure the lineage
# test sees: log10 p ≈ -2.5 for two independently initialised towers, "inconclusive").
V_CLASSES, V_BATCH, V_STEPS, V_LR = 12, 32, 10, 3e-3
INIT_STD = 0.02  # the Llama config's initializer_range: the initialisation every evidence package declares
Step = Callable[[str], None]


def root(cache: Path) -> Path:
    """Where this module keeps what it builds, inside the demo cache."""
    return cache / VERSION


def _quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


# --------------------------------------------------------------------------- language models with evidence


def save_points(steps: int) -> list[int]:
    """The steps a package keeps a checkpoint at: 0, 10, half-way and the end (three for the distance check)."""
    return sorted({0, *(s for s in (10, steps // 2, steps) if 0 < s <= steps)})


def _corpus_manifest(path: Path) -> None:
    from simsa.bench.tinymodels import korean_corpus

    texts = korean_corpus()
    line = {"source": "KoSBi sentences and contexts shipped with simsa (simsa.bench data/kosbi)", "texts": len(texts),
            "sha256": hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()}
    path.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")


def build_team_model(cache: Path, team: str, model_id: str, spec: TinySpec) -> Path:
    """The team's tiny language model (as the benchmarks run it) and, from the same training run, its
    training-evidence package; both reused from the cache when present."""
    from simsa.bench.tinymodels import build_tiny_model
    from simsa.evidence.manifest import Init, manifest_text

    out = cache / "models" / team
    pkg = evidence_dir(cache, team)
    marker = pkg / "EVIDENCE.json"
    stamp = {"version": VERSION, "name": spec.name, "checkpoints": save_points(spec.steps)}
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == stamp:
        return build_tiny_model(out, spec)
    shutil.rmtree(pkg, ignore_errors=True)
    (pkg / "checkpoints").mkdir(parents=True)
    keep = set(save_points(spec.steps))
    rows: list[dict] = []

    def trace(step: int, loss: float | None, model: Any) -> None:
        if loss is not None:
            rows.append({"step": step, "train/loss": round(loss, 5), "tokens": step * spec.batch * spec.seq_len})
        if step in keep:
            model.save_pretrained(str(pkg / "checkpoints" / f"step-{step}"), safe_serialization=True)

    _quiet()
    build_tiny_model(out, spec, trace=trace)
    (pkg / "logs").mkdir()
    with (pkg / "logs" / "train.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["step", "train/loss", "tokens"])
        writer.writeheader()
        writer.writerows(rows)
    (pkg / "tokenizer").mkdir()
    shutil.copyfile(out / "tokenizer.json", pkg / "tokenizer" / "tokenizer.json")
    _corpus_manifest(pkg / "data-manifest.jsonl")
    normal = Init(distribution="normal", std=INIT_STD)
    text = manifest_text(pkg, model=model_id, team=team, tokenizer="tokenizer/tokenizer.json", log="logs/train.csv",
                         log_format="csv", data_manifest="data-manifest.jsonl",
                         checkpoints=[(s, f"checkpoints/step-{s}") for s in sorted(keep)],
                         global_batch_size=spec.batch, sequence_length=spec.seq_len,
                         tokens=spec.steps * spec.batch * spec.seq_len,
                         init={k: normal for k in ("embedding", "attention", "mlp", "output_head")})
    (pkg / "evidence.toml").write_text(text, encoding="utf-8")
    marker.write_text(json.dumps(stamp) + "\n", encoding="utf-8")
    return out


def evidence_dir(cache: Path, team: str) -> Path:
    return root(cache) / "evidence" / team


# --------------------------------------------------------------------------- vision towers and submissions


def _vision_config() -> Any:
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=V_HIDDEN, intermediate_size=V_FFN, num_hidden_layers=V_LAYERS,
                            num_attention_heads=V_HEADS, image_size=IMAGE, patch_size=PATCH, projection_dim=V_HIDDEN)


def synthetic_images(rng: np.random.Generator, n: int) -> tuple[Any, Any]:
    """Noise images with one bright square; the label (quadrant × 3 + colour channel) says where and which colour.
    A task a tiny vision tower learns in a few steps (the lineage tests' towers are trained on it too)."""
    import torch

    pixels = rng.normal(0.0, 0.5, (n, 3, IMAGE, IMAGE)).astype(np.float32)
    labels = rng.integers(0, V_CLASSES, n)
    half, side = IMAGE // 2, 10
    for j, lab in enumerate(labels):
        quad, channel = divmod(int(lab), 3)
        y0 = (quad // 2) * half + int(rng.integers(0, half - side + 1))
        x0 = (quad % 2) * half + int(rng.integers(0, half - side + 1))
        pixels[j, channel, y0:y0 + side, x0:x0 + side] += 2.0
    return torch.from_numpy(pixels), torch.from_numpy(labels)


def build_vision_tower(out: Path, seed: int) -> Path:
    """A tiny CLIP vision encoder from its own seeded initialisation, briefly trained to classify synthetic images
    (so that its norms and biases move off their constant initial values, as a trained encoder's have)."""
    done = out / "simsa-vision.json"
    stamp = {"version": VERSION, "seed": seed, "steps": V_STEPS}
    if done.is_file() and json.loads(done.read_text(encoding="utf-8")) == stamp:
        return out
    import torch
    from transformers import CLIPVisionModel

    _quiet()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = CLIPVisionModel(_vision_config())
        probe = torch.nn.Linear(V_HIDDEN, V_CLASSES)
        params = [*model.parameters(), *probe.parameters()]
        opt = torch.optim.AdamW(params, lr=V_LR, weight_decay=0.01)
        rng = np.random.default_rng(seed + 1)
        model.train()
        for _ in range(V_STEPS):
            px, lab = synthetic_images(rng, V_BATCH)
            loss = torch.nn.functional.cross_entropy(probe(model(pixel_values=px).pooler_output), lab)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        model.eval()
        shutil.rmtree(out, ignore_errors=True)
        model.save_pretrained(str(out), safe_serialization=True)
    finally:
        torch.set_num_threads(threads)
    done.write_text(json.dumps(stamp), encoding="utf-8")
    return out


def _tensors(directory: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(directory / "model.safetensors"))


def build_submission(out: Path, text_model: Path, vision: Path, seed: int) -> Path:
    """The checkpoint a team submits for the originality check: its language model, a vision tower and a fresh
    projector, laid out as LLaVA stores them (`language_model.`, `vision_tower.`, `multi_modal_projector.`)."""
    from safetensors.numpy import save_file

    text_config = json.loads((text_model / "config.json").read_text(encoding="utf-8"))
    vision_config = json.loads((vision / "config.json").read_text(encoding="utf-8"))
    tensors = {f"language_model.{k}": v for k, v in _tensors(text_model).items()}
    tensors |= {f"vision_tower.{k}": v for k, v in _tensors(vision).items()}
    rng = np.random.default_rng(seed)
    hidden = int(text_config["hidden_size"])
    tensors |= {"multi_modal_projector.linear_1.weight": rng.normal(0, INIT_STD, (hidden, V_HIDDEN)),
                "multi_modal_projector.linear_1.bias": np.zeros(hidden),
                "multi_modal_projector.linear_2.weight": rng.normal(0, INIT_STD, (hidden, hidden)),
                "multi_modal_projector.linear_2.bias": np.zeros(hidden)}
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
              str(out / "model.safetensors"))
    config = {"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"], "text_config": text_config,
              "vision_config": vision_config, "tie_word_embeddings": False}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (text_model / name).is_file():
            shutil.copyfile(text_model / name, out / name)
    return out


@dataclass(frozen=True)
class References:
    """The foreign reference models (directories named as on the hub) and the registry of their fingerprints."""

    vision: Path
    text: Path
    registry: Path


def build_references(cache: Path) -> References:
    """Both foreign references, and a registry holding their fingerprints (built once, then reused)."""
    from simsa.bench.tinymodels import TinySpec, build_tiny_model

    base = root(cache) / "references"
    vision = build_vision_tower(base / FOREIGN, FOREIGN_SEED)
    _quiet()
    text = build_tiny_model(base / FOREIGN_TEXT, TinySpec(steps=FOREIGN_TEXT_STEPS, seed=FOREIGN_TEXT_SEED))
    registry = root(cache) / "registry"
    stamp = json.dumps({"version": VERSION, "vision": json.loads((vision / "simsa-vision.json").read_text()),
                        "text": json.loads((text / "simsa-tiny.json").read_text())["name"]}, sort_keys=True)
    done = registry / "DONE.json"
    if not (done.is_file() and done.read_text(encoding="utf-8") == stamp):
        from simsa.lineage.compare.sides import open_side
        from simsa.lineage.fingerprints.build import build_fingerprint
        from simsa.lineage.fingerprints.registry import Registry

        shutil.rmtree(registry, ignore_errors=True)
        reg = Registry.open(registry, create=True, label="simsa demo: foreign reference models")
        for name, path in ((FOREIGN, vision), (FOREIGN_TEXT, text)):
            side = open_side(path)
            try:
                reg.add(build_fingerprint(side, name=name), name)
            finally:
                side.ckpt.close()
        done.write_text(stamp, encoding="utf-8")
    return References(vision=vision, text=text, registry=registry)


def model_name(program: Program, team: str) -> str:
    """The team's declared model (`org/name`), the name its submission directory carries."""
    models = program.team(team).models
    return models[0] if models else team


def build_submissions(cache: Path, program: Program, teams: list[str], refs: References) -> dict[str, Path]:
    """team → its submitted checkpoint; halla's vision tower is the foreign encoder, copied unchanged."""
    out: dict[str, Path] = {}
    for team in teams:
        vision = refs.vision if team in REUSED_BY else build_vision_tower(
            root(cache) / "vision" / team, VISION_SEEDS.get(team, 4300 + len(out)))
        text = cache / "models" / team
        target = root(cache) / "submissions" / team / model_name(program, team).split("/")[-1]
        marker = target / "simsa-submission.json"
        stamp = {"version": VERSION, "text": json.loads((text / "simsa-tiny.json").read_text())["name"],
                 "vision": json.loads((vision / "simsa-vision.json").read_text()),
                 "vision_path": vision.relative_to(root(cache)).as_posix()}
        if not (marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == stamp):
            build_submission(target, text, vision, seed=VISION_SEEDS.get(team, 0) + 1)
            marker.write_text(json.dumps(stamp), encoding="utf-8")
        out[team] = target
    return out


# --------------------------------------------------------------------------- the checks, as a reviewer runs them


@dataclass(frozen=True)
class TeamEvidence:
    """One team's computed originality evidence: the files written, and what they say in brief."""

    team: str
    submission: Path
    compare_json: Path
    compare_html: Path
    scan_json: Path
    verify_json: Path
    verify_html: Path
    verdict: str  # the comparison's overall verdict against the foreign encoder
    scan_derived: tuple[str, ...]  # references the scan finds the submission derived from
    evidence_ok: bool

    def files(self) -> dict[str, str]:
        return {f"lineage_compare:{self.team}": str(self.compare_json),
                f"lineage_report:{self.team}": str(self.compare_html),
                f"lineage_scan:{self.team}": str(self.scan_json),
                f"evidence_verify:{self.team}": str(self.verify_json),
                f"evidence_report:{self.team}": str(self.verify_html)}


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


OUTPUTS = ("lineage-scan.json", "lineage-compare.json", "lineage-compare.html", "evidence-verify.json",
           "evidence-verify.html")


def _run_checks(submission: Path, package: Path, refs: References, out: Path) -> None:
    """`lineage scan` against the registry, `lineage compare` against the foreign encoder and `evidence verify` of
    the package (its early checkpoints scanned against the registry too), each saved in `out` as the CLI saves it."""
    from simsa.lineage.compare.result import compare_paths
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.fingerprints.registry import Registry
    from simsa.lineage.fingerprints.scan import scan
    from simsa.report.evidence_report import render_evidence_html
    from simsa.report.lineage_report import render_lineage_html
    from simsa.services.training_evidence import verify_package

    out.mkdir(parents=True, exist_ok=True)
    side = open_side(submission)
    try:
        scanned = scan(side, Registry.open(refs.registry))
    finally:
        side.ckpt.close()
    # Paths as a reviewer working in the demo's lineage folder types them (the CLI records what it was given).
    candidate, reference = (p.relative_to(refs.registry.parent).as_posix() for p in (submission, refs.vision))
    scanned["candidate"]["path"] = candidate
    _write_json(out / "lineage-scan.json", scanned)
    compared: dict[str, Any] = dict(compare_paths(submission, refs.vision))  # the CLI's default settings
    compared["candidate"]["path"], compared["reference"]["path"] = candidate, reference
    _write_json(out / "lineage-compare.json", compared)
    (out / "lineage-compare.html").write_text(render_lineage_html(compared), encoding="utf-8")
    verified = verify_package(package, registry=refs.registry).to_dict()
    _write_json(out / "evidence-verify.json", verified)
    (out / "evidence-verify.html").write_text(render_evidence_html(verified), encoding="utf-8")


def check_team(cache: Path, team: str, submission: Path, refs: References, out: Path, step: Step) -> TeamEvidence:
    """The team's scan, comparison and verification, written to `out`; run once per input and then copied from the
    cache (they are deterministic: seeded sampling on unchanged files)."""
    package = evidence_dir(cache, team)
    key = {"version": VERSION, "submission": json.loads((submission / "simsa-submission.json").read_text()),
           "evidence": json.loads((package / "EVIDENCE.json").read_text()),
           "references": json.loads((refs.registry / "DONE.json").read_text())}
    kept = root(cache) / "checks" / team
    reused = (kept / "KEY.json").is_file() and json.loads((kept / "KEY.json").read_text()) == key
    step(f"Originality, team {team}: lineage scan against the registry, lineage compare against {FOREIGN}, "
         "evidence verify of its training-evidence package" + (" (results kept in the demo cache)" if reused else ""))
    if not reused:
        shutil.rmtree(kept, ignore_errors=True)
        _run_checks(submission, package, refs, kept)
        (kept / "KEY.json").write_text(json.dumps(key), encoding="utf-8")
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        shutil.copyfile(kept / name, out / name)
    compared = json.loads((out / "lineage-compare.json").read_text(encoding="utf-8"))
    scanned = json.loads((out / "lineage-scan.json").read_text(encoding="utf-8"))
    verified = json.loads((out / "evidence-verify.json").read_text(encoding="utf-8"))
    evidence = TeamEvidence(team=team, submission=submission, compare_json=out / "lineage-compare.json",
                            compare_html=out / "lineage-compare.html", scan_json=out / "lineage-scan.json",
                            verify_json=out / "evidence-verify.json", verify_html=out / "evidence-verify.html",
                            verdict=str(compared["verdict"]), scan_derived=tuple(scanned.get("derived") or ()),
                            evidence_ok=bool(verified["ok"]))
    return evidence


def originality_evidence(cache: Path, program: Program, teams: list[str], workdir: Path,
                         step: Step) -> dict[str, TeamEvidence]:
    """Build (or reuse) the references and submissions, then check every team; team → its evidence."""
    step(f"Originality: fingerprinting the foreign reference models ({FOREIGN}, {FOREIGN_TEXT}) into a registry")
    refs = build_references(cache)
    copied = ", ".join(f"{t} reuses {r}'s vision encoder unchanged" for t, r in REUSED_BY.items() if t in teams)
    step(f"Originality: assembling each team's submitted checkpoint (language model, vision tower, projector; "
         f"{copied or 'every part trained from its own initialisation'})")
    submissions = build_submissions(cache, program, teams, refs)
    return {team: check_team(cache, team, submissions[team], refs, workdir / "originality" / team, step)
            for team in teams}
