"""``simsa lineage selftest``: does the comparison survive every output-preserving disguise of this model?

For each disguise that applies to the model's architecture the self-test writes a disguised copy, compares it with
the model (it must still be found ``derived``), and also disguises a *control* — an independent model of the same
shape — and compares that with the model (its verdict must not change, and must not become ``derived``). Without a
``--control`` the control is drawn fresh: every tensor replaced by Gaussian values of the same per-tensor spread, norm
gains set to one, so it shares nothing with the model but its shapes.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from simsa.lineage.compare import compare_paths
from simsa.lineage.correspondence import SamplingSettings
from simsa.lineage.disguise import ALL, Disguise, Model, NotApplicable, write_model
from simsa.lineage.verdict import INDEPENDENT

SCHEMA = "simsa.lineage.selftest/1"
DESCENT = ("derived", "identical")


def write_fresh_control(model: Model, out: Path, seed: int) -> None:
    """An independent model of the same shapes: Gaussian weights at each tensor's own spread, unit norm gains."""
    rng = np.random.default_rng([seed, 7919])

    def fresh(name: str, x: np.ndarray) -> np.ndarray:
        ents = model.entries.get(name)
        if ents and ents[0].role.kind == "norm" and not name.endswith("bias"):
            return np.ones_like(x)
        sd = float(x.std()) if x.size > 1 else 0.0
        return (rng.standard_normal(x.shape) * sd).astype(np.float32)

    write_model(model, out, fresh)


def available(names: list[str] | None = None) -> list[Disguise]:
    """The disguises by name (all when ``names`` is None); unknown names raise ValueError listing the known ones."""
    known = {d.name: d for d in ALL}
    if names is None:
        return [d() for d in ALL]
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"unknown disguise(s) {', '.join(bad)}; known: {', '.join(known)}")
    return [known[n]() for n in names]


def _summary(result: dict) -> dict:
    return {"verdict": result["verdict"], "log10_p": result["log10_p"],
            "alignment": result.get("alignment", {}).get("text", {}).get("kind")}


def selftest(model_path: str | Path, *, control: str | Path | None = None, disguises: list[str] | None = None,
             settings: SamplingSettings | None = None, seed: int = 0, workdir: str | Path | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run every applicable disguise on ``model_path``; the result says, per disguise, whether the verdicts held."""
    started = time.perf_counter()
    chosen = available(disguises)
    own_tmp = workdir is None
    root = Path(tempfile.mkdtemp(prefix="simsa-selftest-")) if own_tmp else Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    try:
        model = Model.open(model_path)
        control_path = Path(control) if control else root / "control"
        if not control:
            write_fresh_control(model, control_path, seed)
        control_model = Model.open(control_path)
        kwargs = {"settings": settings} if settings else {}
        baseline = compare_paths(control_path, model_path, **kwargs)
        rows = []
        for i, disguise in enumerate(chosen):
            if progress:
                progress(f"disguise {disguise.name}", i, len(chosen))
            row: dict = {"disguise": disguise.name, "description": disguise.description}
            reason = disguise.applicable(model)
            if reason is None:
                reason = disguise.applicable(control_model)
            if reason is not None:
                rows.append({**row, "applicable": False, "reason": reason, "passed": None})
                continue
            try:
                disguise.write(model, root / disguise.name, np.random.default_rng([seed, i, 1]))
                type(disguise)().write(control_model, root / f"{disguise.name}-control",
                                       np.random.default_rng([seed, i, 2]))
            except NotApplicable as exc:
                rows.append({**row, "applicable": False, "reason": str(exc), "passed": None})
                continue
            got = compare_paths(root / disguise.name, model_path, **kwargs)
            ctl = compare_paths(root / f"{disguise.name}-control", model_path, **kwargs)
            kept = got["verdict"] in DESCENT
            control_kept = ctl["verdict"] == baseline["verdict"] and ctl["verdict"] not in DESCENT
            if hasattr(disguise, "quantised_share"):
                row["quantised_share"] = round(disguise.quantised_share(model), 4)
            rows.append({**row, "applicable": True, "disguised": _summary(got), "control": _summary(ctl),
                         "passed": kept and control_kept,
                         "problem": None if kept and control_kept else
                         ("the disguised copy was not found derived" if not kept else
                          f"the control's verdict changed from {baseline['verdict']} to {ctl['verdict']}")})
            shutil.rmtree(root / disguise.name, ignore_errors=True)
            shutil.rmtree(root / f"{disguise.name}-control", ignore_errors=True)
        if progress:
            progress("done", len(chosen), len(chosen))
        applied = [r for r in rows if r["applicable"]]
        return {
            "schema": SCHEMA,
            "model": str(model_path),
            "model_type": model.amap.model_type,
            "control": str(control) if control else "fresh Gaussian weights of the model's shapes",
            "control_baseline": _summary(baseline),
            "control_independent": baseline["verdict"] == INDEPENDENT,
            "disguises": rows,
            "applied": len(applied),
            "failed": [r["disguise"] for r in applied if not r["passed"]],
            "passed": bool(applied) and all(r["passed"] for r in applied) and baseline["verdict"] not in DESCENT,
            "seconds": round(time.perf_counter() - started, 2),
        }
    finally:
        if own_tmp:
            shutil.rmtree(root, ignore_errors=True)
