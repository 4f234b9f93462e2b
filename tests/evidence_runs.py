"""Training-evidence packages of tiny Llama runs trained on CPU: one honest run from scratch and the forgeries
`simsa evidence verify` must catch.

Every package is what a team would submit: checkpoints (`save_pretrained`, safetensors) at steps 0, 10, 40, 80 and
120, the training log as CSV (step, loss, learning rate, tokens), the tokenizer, a data manifest and `evidence.toml`
with the sha256 of each. The runs use the lineage zoo's tokenizer and synthetic corpus (seeded, no downloads).

Forgeries:
* ``cpt`` — continued pre-training of a trained parent, presented as from scratch (step 0 is the parent);
* ``swapped`` — the honest run with its step-80 checkpoint replaced by another run's, hashes updated;
* ``edited-log`` — the honest run's log with its first loss edited, the manifest left as it was;
* ``cpt-edited-log`` — the continued pre-training with its first loss edited to ln V and the manifest re-hashed;
* ``renoised`` — step 0 is the parent's weights plus fresh normal noise of the declared std, then trained.

Importable as ``evidence_runs`` by pytest; it must not import pytest.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lineage_zoo import BATCH, SEQ_LEN, _batch, _fresh, _quiet_and_threads, zoo_data
from simsa.evidence.manifest import Init, manifest_text

VERSION = "evidence-runs-2"
STEPS = 120
SAVE_AT = (0, 10, 40, 80, 120)
PARENT_STEPS = 150
LR = 3e-3
INIT_STD = 0.02  # the Llama config's initializer_range
FORGERIES = ("cpt", "swapped", "edited-log", "cpt-edited-log", "renoised")


@dataclass(frozen=True)
class Runs:
    root: Path
    parent: Path  # the trained parent model (a suspected parent for --parent)

    def package(self, name: str) -> Path:
        return self.root / name


def _train(model: torch.nn.Module, corpus: np.ndarray, sp, seed: int, steps: int, save: Callable[[int], None],
           log: list[dict]) -> None:
    """AdamW with warm-up and cosine decay, logging each step's loss before the update and the tokens after it."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.1 + 0.45 * (1 + math.cos(math.pi * (s - warmup) /
                                                                                       max(1, steps - warmup))))
    save(0)
    model.train()
    for step in range(1, steps + 1):
        loss = model(**_batch("llama", corpus, rng, sp)).loss
        log.append({"step": step, "train/loss": round(loss.item(), 5), "lr": opt.param_groups[0]["lr"],
                    "tokens": step * BATCH * SEQ_LEN})
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step in SAVE_AT:
            model.eval()
            save(step)
            model.train()
    model.eval()


def _write_log(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["step", "train/loss", "lr", "tokens"])
        writer.writeheader()
        writer.writerows(rows)


def write_manifest(pkg: Path, model: str, steps: list[int]) -> None:
    """`evidence.toml` with the sha256 of every file as they are now (a forger re-hashes after editing)."""
    normal = Init(distribution="normal", std=INIT_STD)
    text = manifest_text(pkg, model=model, team="baekdu", tokenizer="tokenizer/tokenizer.json", log="logs/train.csv",
                         log_format="csv", data_manifest="data-manifest.jsonl",
                         checkpoints=[(s, f"checkpoints/step-{s}") for s in steps], global_batch_size=BATCH,
                         sequence_length=SEQ_LEN, tokens=steps[-1] * BATCH * SEQ_LEN,
                         init={k: normal for k in ("embedding", "attention", "mlp", "output_head")})
    (pkg / "evidence.toml").write_text(text, encoding="utf-8")


def _package(pkg: Path, data, model: torch.nn.Module, seed: int, *, name: str) -> None:
    """Train ``model`` for STEPS steps into the package ``pkg``, saving its checkpoints, log and manifest."""
    (pkg / "checkpoints").mkdir(parents=True)
    (pkg / "logs").mkdir()
    (pkg / "tokenizer").mkdir()
    data.tokenizer.save(str(pkg / "tokenizer" / "tokenizer.json"))
    corpus = data.corpora["A"]
    lines = [json.dumps({"source": "corpus-A", "sentences": len(data.sentences["A"]["train"]),
                         "sha256": hashlib.sha256("\n".join(data.sentences["A"]["train"]).encode()).hexdigest()})]
    (pkg / "data-manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows: list[dict] = []

    def save(step: int) -> None:
        model.save_pretrained(str(pkg / "checkpoints" / f"step-{step}"), safe_serialization=True)

    _train(model, corpus.train, data.specials, seed, STEPS, save, rows)
    _write_log(pkg / "logs" / "train.csv", rows)
    write_manifest(pkg, name, list(SAVE_AT))


def _edit_first_loss(pkg: Path, value: float) -> None:
    path = pkg / "logs" / "train.csv"
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    rows[0]["train/loss"] = f"{value:.5f}"
    _write_log(path, rows)


def build_runs(root: Path) -> Runs:
    """Build (or reuse) every package under ``root``; a marker file is written last, so a partial build is redone."""
    marker = root / "RUNS.json"
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")).get("version") == VERSION:
        return Runs(root, root / "parent")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    data = zoo_data()
    sp = data.specials
    with _quiet_and_threads():
        parent = _fresh("llama", sp, seed=202)
        _train(parent, data.corpora["A"].train, sp, 202, PARENT_STEPS, lambda _s: None, [])
        parent.save_pretrained(str(root / "parent"), safe_serialization=True)

        _package(root / "honest", data, _fresh("llama", sp, seed=101), 101, name="jiri-tiny")
        _package(root / "other-run", data, _fresh("llama", sp, seed=303), 303, name="another-run")

        cpt = _fresh("llama", sp, seed=0)
        cpt.load_state_dict(parent.state_dict())
        _package(root / "cpt", data, cpt, 404, name="jiri-tiny")

        renoised = _fresh("llama", sp, seed=0)
        gen = torch.Generator().manual_seed(505)
        with torch.no_grad():
            state = {k: v.clone() for k, v in parent.state_dict().items()}
            for v in state.values():
                if v.ndim == 2:  # the weight matrices; norm gains stay the exact ones the parent has
                    v.add_(torch.randn(v.shape, generator=gen) * INIT_STD)
        renoised.load_state_dict(state)
        _package(root / "renoised", data, renoised, 505, name="jiri-tiny")

    swapped = root / "swapped"
    shutil.copytree(root / "honest", swapped)
    shutil.rmtree(swapped / "checkpoints" / "step-80")
    shutil.copytree(root / "other-run" / "checkpoints" / "step-80", swapped / "checkpoints" / "step-80")
    write_manifest(swapped, "jiri-tiny", list(SAVE_AT))

    edited = root / "edited-log"
    shutil.copytree(root / "honest", edited)
    _edit_first_loss(edited, 5.1)  # the manifest still holds the log's original sha256

    cpt_edited = root / "cpt-edited-log"
    shutil.copytree(root / "cpt", cpt_edited)
    _edit_first_loss(cpt_edited, math.log(sp.vocab) + 0.05)
    write_manifest(cpt_edited, "jiri-tiny", list(SAVE_AT))

    marker.write_text(json.dumps({"version": VERSION, "packages": ["honest", "other-run", *FORGERIES]}),
                      encoding="utf-8")
    return Runs(root, root / "parent")
