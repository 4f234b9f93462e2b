"""`simsa evidence verify`: check a training-evidence package, each check passed / failed / not applicable with its
numbers and its evidence grade.

The checks, in order: every file matches its sha256 (cryptographic); the step-0 weights fit the declared
initialisation (statistical); the first logged loss is near ln(vocabulary size), as a random initialisation gives
(declared: the log is the team's own); each checkpoint descends from the one before (statistical, the lineage
engine) and its distance from step 0 grows smoothly (heuristic); the logged token count agrees with steps × batch ×
length (declared); step 0 and the early checkpoints are independent of every suspected parent and registry
reference (statistical); and, when the team pre-registered commitments, the package matches them (cryptographic).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from simsa.errors import InputError, SimsaError
from simsa.evidence.commitments import Committed, Spec, digest
from simsa.evidence.init_fit import DEFAULT_INIT, fit, holm_adjust, sample_values, tensor_kinds
from simsa.evidence.manifest import Checkpoint, Init, Manifest, load_manifest, resolve
from simsa.files import FileReadError, read_limited

SCHEMA = "simsa.evidence.verify/1"
Status = Literal["passed", "failed", "not applicable"]
Grade = Literal["cryptographic", "statistical", "heuristic", "declared"]
FIRST_LOSS_NATS = 1.0  # a random initialisation's first loss is within this of ln(vocabulary size)
TOKEN_TOLERANCE = 0.01
DISTANCE_DROP = 0.05  # the distance from step 0 may dip by this fraction (noise), no more
RATE_JUMP = 10.0  # a per-step growth this many times the median is a discontinuity
MAX_LOG_BYTES = 512 << 20
CURVE_POINTS = 400  # loss points kept for the report's plot
MAX_POINTS_SHOWN = 200  # token-count points kept in the JSON
ROW_BLOCK = 1 << 22  # values per read when streaming two checkpoints for their distance
Progress = Callable[[str, int, int], None]
TITLES = {
    "files": "Files match their sha256",
    "init": "Step 0 fits the declared initialisation",
    "first_loss": "The first logged loss is that of a random initialisation",
    "tokens": "Logged tokens agree with steps × batch × length",
    "chain": "Each checkpoint descends from the one before",
    "distance": "Distance from step 0 grows smoothly",
    "independence": "Step 0 and early checkpoints are independent of suspected parents",
    "commitments": "The package matches the team's pre-registered commitments",
}


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    status: Status
    grade: Grade
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "status": self.status, "grade": self.grade,
                "summary": self.summary, "details": self.details}


@dataclass(frozen=True)
class Verification:
    package: str
    model: str
    team: str | None
    checks: tuple[Check, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return not any(c.failed for c in self.checks)

    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if c.failed]

    def check(self, check_id: str) -> Check:
        return next(c for c in self.checks if c.id == check_id)

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "package": self.package, "model": self.model, "team": self.team, "ok": self.ok,
                "failed": [c.id for c in self.failed_checks()], "checks": [c.to_dict() for c in self.checks],
                "seconds": round(self.seconds, 3)}


def _na(check_id: str, title: str, grade: Grade, why: str) -> Check:
    return Check(check_id, title, "not applicable", grade, why)


# ---------------------------------------------------------------------------------------------------- the checks
class _Package:
    """The package as read: its manifest, which files are present and intact, and opened checkpoints."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root, self.manifest = root, manifest
        self.bad: set[str] = set()  # paths missing or unreadable

    def path(self, ref_path: str) -> Path:
        return self.root / ref_path

    def checkpoint_path(self, c: Checkpoint) -> Path:
        return resolve(self.root, c)

    def usable(self, ref_path: str) -> bool:
        return ref_path not in self.bad


def check_files(pkg: _Package, progress: Progress | None) -> Check:
    rows = []
    files = pkg.manifest.files()
    for i, (what, ref) in enumerate(files):
        if progress:
            progress("hashing files", i, len(files))
        try:
            found = digest(Spec("file", "package", resolve(pkg.root, ref))).sha256
        except InputError as exc:
            pkg.bad.add(ref.path)
            rows.append({"file": ref.path, "what": what, "expected": ref.sha256, "found": None,
                         "problem": str(exc)})
            continue
        rows.append({"file": ref.path, "what": what, "expected": ref.sha256, "found": found,
                     "problem": None if found == ref.sha256 else "sha256 differs"})
    bad = [r for r in rows if r["problem"]]
    summary = (f"all {len(rows)} files match their sha256" if not bad else
               f"{len(bad)} of {len(rows)} files do not match the manifest: "
               + "; ".join(f"{r['file']} ({r['what']}): {r['problem']}" for r in bad[:5]))
    return Check("files", TITLES["files"], "failed" if bad else "passed", "cryptographic", summary,
                 {"files": rows})


def check_init(pkg: _Package, progress: Progress | None) -> Check:
    from simsa.lineage.compare.sides import open_side

    title = TITLES["init"]
    step0 = pkg.manifest.checkpoints[0]
    if not pkg.usable(step0.path):
        return _na("init", title, "statistical", f"the step-0 checkpoint {step0.path} is missing or unreadable")
    side = open_side(pkg.checkpoint_path(step0))
    try:
        reader = side.ckpt
        names = [n for n in reader.names() if reader.dtype(n) not in ("I64", "I32", "I16", "I8", "U8", "BOOL")]
        kinds = tensor_kinds(side.amap, names)
        declared: dict[str, Init] = {**DEFAULT_INIT, **{str(k): v for k, v in pkg.manifest.init.items()}}
        undeclared = sorted({k for k in kinds.values() if k not in declared})
        rng = np.random.default_rng(0)
        fits = []
        for i, name in enumerate(sorted(names)):
            if progress:
                progress("step 0 tensors", i, len(names))
            init = declared.get(kinds[name])
            if init is None:
                continue
            fits.append(fit(name, kinds[name], sample_values(reader, name, rng), init))
    finally:
        side.ckpt.close()
    fits = holm_adjust(fits)
    failed = [f for f in fits if not f.passed]
    worst = min((f for f in fits if f.log10_p is not None), key=lambda f: f.log10_p or 0.0, default=None)
    parts = [f"{len(fits)} tensors tested, {len(failed)} do not fit"]
    if worst is not None:
        parts.append(f"weakest fit {worst.name} ({worst.declared}; KS D {worst.statistic:.4f}, log10 p "
                     f"{worst.log10_p:.1f}, Holm-adjusted {worst.adjusted_log10_p:.1f})")
    constants = [f for f in failed if f.statistic is None]
    if constants:
        parts.append("not exactly their constant: " + ", ".join(
            f"{f.name} ({f.mismatched} of {f.values} values are not {f.declared})" for f in constants[:3]))
    if undeclared:
        parts.append(f"no initialisation declared for the kinds {', '.join(undeclared)}")
    status: Status = "failed" if failed or undeclared else "passed"
    return Check("init", title, status, "statistical", "; ".join(parts),
                 {"alpha": 0.01, "correction": "holm", "undeclared_kinds": undeclared,
                  "tensors": [f.to_dict() for f in fits]})


def _log(pkg: _Package) -> Any:
    from simsa.panel.training_log import parse_training_log

    ref = pkg.manifest.log
    path = resolve(pkg.root, ref)
    if path.is_dir():
        events = sorted(path.glob("events.out.tfevents.*"))
        if len(events) != 1:
            raise InputError(f"{ref.path}: a TensorBoard log directory must hold one events file, not {len(events)}")
        path = events[0]
    try:
        data = read_limited(path, MAX_LOG_BYTES)
    except FileReadError as exc:
        raise InputError(f"{ref.path}: {exc}") from None
    kind = ref.format if ref.format != "wandb" else ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    return parse_training_log(data, kind)


def _vocab_size(pkg: _Package) -> int | None:
    from simsa.lineage.formats import open_model

    step0 = pkg.manifest.checkpoints[0]
    if not pkg.usable(step0.path):
        return None
    with open_model(pkg.checkpoint_path(step0)) as reader:
        size = reader.config.get("vocab_size")
        return int(size) if isinstance(size, int) and size > 1 else None


def check_first_loss(pkg: _Package, log: Any, log_problem: str | None) -> Check:
    title = TITLES["first_loss"]
    if log is None:
        return _na("first_loss", title, "declared", log_problem or "no training log")
    vocab = _vocab_size(pkg)
    if vocab is None:
        return _na("first_loss", title, "declared", "the step-0 config gives no vocab_size")
    if log.loss is None:
        return Check("first_loss", title, "failed", "declared", "the training log has no loss series")
    series = log.series[log.loss]
    first_step, first = float(series.steps[0]), float(series.values[0])
    expected = math.log(vocab)
    gap = first - expected
    ok = abs(gap) <= FIRST_LOSS_NATS
    summary = (f"first loss {first:.3f} at step {first_step:g}; ln(vocabulary size {vocab}) = {expected:.3f}; "
               f"{'within' if ok else 'not within'} {FIRST_LOSS_NATS:g} nat"
               + ("" if ok or gap > 0 else " (a run that starts this low continues a trained model)"))
    keep = np.unique(np.linspace(0, len(series.steps) - 1, min(len(series.steps), CURVE_POINTS)).astype(int))
    curve = [[float(series.steps[i]), float(series.values[i])] for i in keep]
    return Check("first_loss", title, "passed" if ok else "failed", "declared", summary,
                 {"first_loss": first, "first_step": first_step, "vocab_size": vocab, "ln_vocab": expected,
                  "difference": gap, "tolerance_nats": FIRST_LOSS_NATS, "loss_curve": curve})


def check_tokens(pkg: _Package, log: Any, log_problem: str | None) -> Check:
    title = TITLES["tokens"]
    tr = pkg.manifest.training
    per_step = tr.global_batch_size * tr.sequence_length
    points: list[tuple[float, float, str]] = []  # (step, tokens, source)
    if log is not None and log.tokens is not None:
        s = log.series[log.tokens]
        points += [(float(a), float(b), "log") for a, b in zip(s.steps, s.values, strict=True)]
    if tr.tokens is not None:
        points.append((float(pkg.manifest.checkpoints[-1].step), float(tr.tokens), "manifest"))
    if not points:
        return _na("tokens", title, "declared", log_problem or "neither the log nor the manifest gives a token count")
    rows: list[dict[str, Any]] = []
    for step, tokens, source in points:
        expected = step * per_step
        off = abs(tokens - expected) / expected if expected else (0.0 if tokens == 0 else math.inf)
        rows.append({"step": step, "tokens": tokens, "expected": expected, "relative_difference": off,
                     "source": source})
    bad = [r for r in rows if r["relative_difference"] > TOKEN_TOLERANCE]
    worst = max(rows, key=lambda r: r["relative_difference"])
    summary = (f"{len(rows)} token counts checked ({per_step:,} tokens per step: {tr.global_batch_size} × "
               f"{tr.sequence_length}); {len(bad)} off by more than {100 * TOKEN_TOLERANCE:g} %; largest "
               f"difference {100 * worst['relative_difference']:.2f} % at step {worst['step']:g} ({worst['source']}: "
               f"{worst['tokens']:,.0f} vs {worst['expected']:,.0f})")
    # A log of a million points keeps its first, last and worst points and the first that are off, not all of them.
    shown = rows if len(rows) <= MAX_POINTS_SHOWN else [rows[0], *bad[:MAX_POINTS_SHOWN - 3], worst, rows[-1]]
    return Check("tokens", title, "failed" if bad else "passed", "declared", summary,
                 {"tokens_per_step": per_step, "tolerance": TOKEN_TOLERANCE, "checked": len(rows),
                  "off": len(bad), "points": shown})


def _compare(cand: Path, ref: Path) -> dict:
    from simsa.lineage.compare.result import compare_paths

    result = compare_paths(cand, ref)
    return {"verdict": result["verdict"], "log10_p": result["log10_p"]}


def check_chain(pkg: _Package, progress: Progress | None) -> Check:
    title = TITLES["chain"]
    cps = pkg.manifest.checkpoints
    if len(cps) < 2:
        return _na("chain", title, "statistical", "only one checkpoint")
    rows = []
    for i, (prev, nxt) in enumerate(itertools.pairwise(cps)):
        if progress:
            progress("chain", i, len(cps) - 1)
        if not (pkg.usable(prev.path) and pkg.usable(nxt.path)):
            rows.append({"from": prev.step, "to": nxt.step, "verdict": None, "log10_p": None,
                         "problem": "checkpoint missing or unreadable"})
            continue
        found = _compare(pkg.checkpoint_path(nxt), pkg.checkpoint_path(prev))
        problem = None if found["verdict"] == "derived" else (
            "bit-identical: no training between them" if found["verdict"] == "identical" else
            f"{found['verdict']}: not shown to descend")
        rows.append({"from": prev.step, "to": nxt.step, **found, "problem": problem})
    bad = [r for r in rows if r["problem"]]
    summary = (f"{len(rows)} links tested with the lineage engine; " + (
        "every checkpoint descends from the one before" if not bad else
        "broken at " + "; ".join(f"step {r['from']} → {r['to']}: {r['problem']}" for r in bad[:4])))
    return Check("chain", title, "failed" if bad else "passed", "statistical", summary, {"links": rows})


def _distance(a: Path, base: Path) -> tuple[float, float]:
    """‖a − base‖ and ‖base‖ over the floating-point tensors both hold, streamed in blocks of rows."""
    from simsa.lineage.formats import open_model

    diff = norm = 0.0
    with open_model(a) as ra, open_model(base) as rb:
        for name in sorted(set(ra.names()) & set(rb.names())):
            shape = tuple(rb.shape(name))
            if tuple(ra.shape(name)) != shape or rb.dtype(name) in ("I64", "I32", "I16", "I8", "U8", "BOOL"):
                continue
            if len(shape) == 2 and math.prod(shape) > ROW_BLOCK:
                step = max(1, ROW_BLOCK // max(1, shape[1]))
                # A generator: one block of rows of each side in memory at a time, not the whole tensor.
                blocks: Iterable[tuple[np.ndarray, np.ndarray]] = (
                    (ra.read_index(name, slice(r, min(shape[0], r + step))),
                     rb.read_index(name, slice(r, min(shape[0], r + step)))) for r in range(0, shape[0], step))
            else:
                blocks = [(ra.read(name), rb.read(name))]
            for x, y in blocks:
                d = x.astype(np.float64) - y
                diff += float(np.dot(d.ravel(), d.ravel()))
                norm += float(np.dot(y.ravel().astype(np.float64), y.ravel()))
    return math.sqrt(diff), math.sqrt(norm)


def check_distance(pkg: _Package, progress: Progress | None) -> Check:
    title = TITLES["distance"]
    cps = pkg.manifest.checkpoints
    if len(cps) < 3:
        return _na("distance", title, "heuristic", "fewer than three checkpoints")
    if not all(pkg.usable(c.path) for c in cps):
        return _na("distance", title, "heuristic", "a checkpoint is missing or unreadable")
    base = pkg.checkpoint_path(cps[0])
    rows = [{"step": 0, "distance": 0.0, "relative": 0.0}]
    for i, c in enumerate(cps[1:]):
        if progress:
            progress("distance", i, len(cps) - 1)
        d, n = _distance(pkg.checkpoint_path(c), base)
        rows.append({"step": c.step, "distance": d, "relative": d / n if n else math.inf})
    rates = [(b["relative"] - a["relative"]) / (b["step"] - a["step"]) for a, b in itertools.pairwise(rows)]
    typical = float(np.median([r for r in rates if r > 0])) if any(r > 0 for r in rates) else 0.0
    problems = []
    for (a, b), rate in zip(itertools.pairwise(rows), rates, strict=True):
        if b["relative"] < (1 - DISTANCE_DROP) * a["relative"]:
            problems.append(f"step {a['step']} → {b['step']}: moves back towards step 0 "
                            f"({a['relative']:.4f} → {b['relative']:.4f})")
        elif typical > 0 and rate > RATE_JUMP * typical:
            problems.append(f"step {a['step']} → {b['step']}: jumps {rate / typical:.0f}× faster than the median "
                            "step")
    summary = ("relative distance from step 0: " + ", ".join(f"{r['relative']:.4f} at step {r['step']}"
                                                            for r in rows[1:6])
               + (" …" if len(rows) > 6 else "") + ("" if not problems else "; " + "; ".join(problems[:3])))
    return Check("distance", title, "failed" if problems else "passed", "heuristic", summary,
                 {"points": rows, "median_rate": typical, "rate_jump": RATE_JUMP, "allowed_drop": DISTANCE_DROP})


def check_independence(pkg: _Package, parents: Sequence[Path], registry: Path | None,
                       progress: Progress | None) -> Check:
    title = TITLES["independence"]
    if not parents and registry is None:
        return _na("independence", title, "statistical", "no suspected parent and no registry given")
    rows = []
    early = [c for c in pkg.manifest.early() if pkg.usable(c.path)]
    total = len(early) * (len(parents) + (registry is not None))
    done = 0
    for c in early:
        for parent in parents:
            if progress:
                progress("independence", done, total)
            found = _compare(pkg.checkpoint_path(c), parent)
            rows.append({"step": c.step, "reference": str(parent), **found,
                         "problem": None if found["verdict"] == "independent" else found["verdict"]})
            done += 1
        if registry is not None:
            rows += _scan(pkg.checkpoint_path(c), registry, c.step)
            done += 1
    bad = [r for r in rows if r["problem"]]
    against = [f"{len(parents)} suspected parent{'s' if len(parents) != 1 else ''}"] if parents else []
    against += ["every registry reference"] if registry is not None else []
    summary = (f"{len(rows)} tests of steps {', '.join(str(c.step) for c in early)} against "
               + " and ".join(against) + ": "
               + ("all independent" if not bad else "; ".join(
                   f"step {r['step']} vs {r['reference']}: {r['problem']} (log10 p {r['log10_p']})"
                   for r in bad[:4])))
    return Check("independence", title, "failed" if bad else "passed", "statistical", summary,
                 {"tests": rows, "early_steps": [c.step for c in early]})


def _scan(path: Path, registry: Path, step: int) -> list[dict]:
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.fingerprints.registry import Registry
    from simsa.lineage.fingerprints.scan import scan

    side = open_side(path)
    try:
        result = scan(side, Registry.open(registry))
    finally:
        side.ckpt.close()
    return [{"step": step, "reference": f"registry:{m['reference']}", "verdict": m["verdict"],
             "log10_p": m["adjusted_log10_p"],
             "problem": None if m["verdict"] == "independent" else m["verdict"]} for m in result["matches"]]


def check_commitments(pkg: _Package, committed: Sequence[Committed] | None) -> Check:
    title = TITLES["commitments"]
    if committed is None:
        return _na("commitments", title, "cryptographic", "no programme and team given to look commitments up")
    m = pkg.manifest
    offered = {"step0": m.checkpoints[0].sha256, "tokenizer": m.tokenizer.sha256,
               "data-manifest": m.training.data_manifest_sha256}
    rows = []
    for c in committed:
        if c.kind not in offered or c.label != c.kind:
            continue
        rows.append({"commitment": c.kind, "id": c.id, "recorded_at": c.recorded_at, "committed": c.sha256,
                     "package": offered[c.kind], "matches": c.sha256 == offered[c.kind]})
    if not rows:
        return _na("commitments", title, "cryptographic", "the team committed to none of step0, tokenizer and "
                                                          "data-manifest")
    bad = [r for r in rows if not r["matches"]]
    summary = ("; ".join(f"commitment {r['commitment']} (#{r['id']}, recorded {r['recorded_at']}): "
                         + ("matches" if r["matches"] else f"DIFFERS — committed {r['committed']}, the package has "
                                                            f"{r['package']}") for r in rows))
    return Check("commitments", title, "failed" if bad else "passed", "cryptographic", summary, {"commitments": rows})


# ---------------------------------------------------------------------------------------------------- entry point
def verify(root: str | Path, *, parents: Sequence[str | Path] = (), registry: str | Path | None = None,
           commitments: Sequence[Committed] | None = None, progress: Progress | None = None) -> Verification:
    """Every check of the package at ``root`` (see the module docstring); raises InputError only when the manifest
    itself cannot be read — a broken file or checkpoint fails its own checks and the rest still run."""
    started = time.perf_counter()
    root = Path(root)
    manifest = load_manifest(root)
    pkg = _Package(root, manifest)
    parent_paths = [Path(p) for p in parents]
    for p in parent_paths:
        if not p.exists():
            raise InputError(f"suspected parent {p}: no such file or directory")
    checks = [check_files(pkg, progress)]
    log, log_problem = None, None
    if pkg.usable(manifest.log.path):
        try:
            log = _log(pkg)
        except InputError as exc:
            log_problem = f"the training log cannot be read: {exc}"
    else:
        log_problem = f"the training log {manifest.log.path} is missing or unreadable"
    steps: list[tuple[str, Grade, Callable[[], Check]]] = [
        ("init", "statistical", lambda: check_init(pkg, progress)),
        ("first_loss", "declared", lambda: check_first_loss(pkg, log, log_problem)),
        ("chain", "statistical", lambda: check_chain(pkg, progress)),
        ("distance", "heuristic", lambda: check_distance(pkg, progress)),
        ("tokens", "declared", lambda: check_tokens(pkg, log, log_problem)),
        ("independence", "statistical",
         lambda: check_independence(pkg, parent_paths, Path(registry) if registry else None, progress)),
        ("commitments", "cryptographic", lambda: check_commitments(pkg, commitments)),
    ]
    for check_id, grade, make in steps:
        try:
            checks.append(make())
        except SimsaError as exc:  # broken inputs (a checkpoint that is not one) fail their own check, alone
            checks.append(Check(check_id, TITLES[check_id], "failed", grade, f"could not be run: {exc}"))
    return Verification(str(root), manifest.model, manifest.team, tuple(checks), time.perf_counter() - started)
