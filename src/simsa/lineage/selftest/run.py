"""``simsa lineage selftest``: does the comparison survive every output-preserving disguise of this model?

For each disguise that applies to the model's architecture the self-test writes a disguised copy, compares it with
the model (it must still be found ``derived``), and also disguises a *control* — an independent model of the same
shape — and compares that with the model (its verdict must not change, and must not become ``derived``). The control
that is disguised is the one given with ``--control`` (an independently trained model of the same family), else a
fresh Gaussian model of the model's shapes.

A Gaussian control shares nothing with the model, not even the residual layout (padded, outlier, massive or duplicated
coordinates) that can make two independent models look related; so the generated structured controls of
``controls.py`` are compared with the model as well, whether or not ``--control`` was given, and none of them may be
found ``derived`` or ``identical``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from simsa.lineage.compare.result import compare_paths
from simsa.lineage.selftest.controls import Control, write_controls, write_gaussian_control
from simsa.lineage.selftest.disguise import ALL, Disguise, Model, NotApplicable
from simsa.lineage.stats.correspondence import SamplingSettings
from simsa.lineage.stats.verdict import INDEPENDENT

SCHEMA = "simsa.lineage.selftest/1"
DESCENT = ("derived", "identical")


def write_fresh_control(model: Model, out: Path, seed: int) -> None:
    """An independent model of the same shapes: Gaussian weights at each tensor's own spread, unit norm gains."""
    write_gaussian_control(model, out, seed)


def available(names: list[str] | None = None) -> list[Disguise]:
    """The disguises by name (all when ``names`` is None); unknown names raise ValueError listing the known ones."""
    known = {d.name: d for d in ALL}
    if names is None:
        return [d() for d in ALL]
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"unknown disguise(s) {', '.join(bad)}; known: {', '.join(known)}")
    return [known[n]() for n in names]


def _summary(result: Mapping[str, Any]) -> dict:
    return {"verdict": result["verdict"], "log10_p": result["log10_p"],
            "alignment": result.get("alignment", {}).get("text", {}).get("kind")}


def _control_row(control: Control, result: Mapping[str, Any] | None) -> dict:
    """One control's line of the result: its verdict against the model, and whether it kept clear of descent."""
    row = {"name": control.name, "description": control.description, "verdict": None, "log10_p": None,
           "passed": None}
    if result is None:
        return {**row, "reason": control.reason}
    return {**row, "verdict": result["verdict"], "log10_p": result["log10_p"],
            "passed": result["verdict"] not in DESCENT}


def selftest(model_path: str | Path, *, control: str | Path | None = None, disguises: list[str] | None = None,
             settings: SamplingSettings | None = None, seed: int = 0, workdir: str | Path | None = None,
             progress: Callable[[str, int, int], None] | None = None, generated: list[str] | None = None) -> dict:
    """Run every applicable disguise on ``model_path``; the result says, per disguise, whether the verdicts held,
    and, per control (the given one and the ``generated`` ones, default all), whether it kept clear of descent."""
    started = time.perf_counter()
    chosen = available(disguises)
    own_tmp = workdir is None
    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="simsa-selftest-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        model = Model.open(model_path)
        made = write_controls(model, root, seed, generated)
        controls = ([Control("supplied", f"the independent model given as the control: {control}", Path(control))]
                    if control else []) + made
        if not control and all(c.name != "gaussian" for c in made):
            write_gaussian_control(model, root / "control", seed)  # the disguised control, when none was given
        control_path = Path(control) if control else root / "control"
        control_model = Model.open(control_path)
        kwargs = {"settings": settings} if settings else {}
        total = len(chosen) + len(controls)
        control_rows, baseline = [], None
        for j, ctl in enumerate(controls):
            if progress:
                progress(f"control {ctl.name}", j, total)
            got = compare_paths(ctl.path, model_path, **kwargs) if ctl.path is not None else None
            if ctl.path == control_path:
                baseline = got
            control_rows.append(_control_row(ctl, got))
        if baseline is None:
            baseline = compare_paths(control_path, model_path, **kwargs)
        rows = []
        for i, disguise in enumerate(chosen):
            if progress:
                progress(f"disguise {disguise.name}", len(controls) + i, total)
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
            against = compare_paths(root / f"{disguise.name}-control", model_path, **kwargs)
            kept = got["verdict"] in DESCENT
            control_kept = against["verdict"] == baseline["verdict"] and against["verdict"] not in DESCENT
            share = disguise.quantised_share(model)
            if share is not None:
                row["quantised_share"] = round(share, 4)
            rows.append({**row, "applicable": True, "disguised": _summary(got), "control": _summary(against),
                         "passed": kept and control_kept,
                         "problem": None if kept and control_kept else
                         ("the disguised copy was not found derived" if not kept else
                          f"the control's verdict changed from {baseline['verdict']} to {against['verdict']}")})
            shutil.rmtree(root / disguise.name, ignore_errors=True)
            shutil.rmtree(root / f"{disguise.name}-control", ignore_errors=True)
        if progress:
            progress("done", total, total)
        applied = [r for r in rows if r["applicable"]]
        ran = [r for r in control_rows if r["verdict"] is not None]
        descended = [r["name"] for r in ran if not r["passed"]]
        return {
            "schema": SCHEMA,
            "model": str(model_path),
            "model_type": model.amap.model_type,
            "control": str(control) if control else "fresh Gaussian weights of the model's shapes",
            "control_baseline": _summary(baseline),
            "control_independent": bool(ran) and all(r["verdict"] == INDEPENDENT for r in ran),
            "controls": control_rows,
            "controls_derived": descended,
            "disguises": rows,
            "applied": len(applied),
            "failed": [r["disguise"] for r in applied if not r["passed"]],
            "passed": bool(applied) and all(r["passed"] for r in applied) and not descended
            and baseline["verdict"] not in DESCENT,
            "seconds": round(time.perf_counter() - started, 2),
        }
    finally:
        if own_tmp:
            shutil.rmtree(root, ignore_errors=True)
