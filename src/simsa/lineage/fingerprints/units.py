"""Fingerprints as work units: many checkpoints fingerprinted through one executor (serial, or spread over a Ray
cluster), each unit keyed by the checkpoint's content and the settings, so a rerun builds only what is new.

The worker reads the checkpoint where it runs (a node-local path, or a hub reference read by HTTP ranges) and sends
back the fingerprint's bytes; the driver writes them into the registry.
"""

from __future__ import annotations

import hashlib
import os
import resource
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from simsa.errors import InputError
from simsa.lineage.formats.fingerprint import FingerprintSettings
from simsa.scale.units import Resources, WorkUnit, unit_key

FUNCTION = "simsa.lineage.fingerprints.units:fingerprint_unit"
UNIT_MEMORY = 2 << 30  # the reader streams: a fingerprint stays within this whatever the model's size


def model_content(model: str, memo: Path | None = None) -> dict[str, str]:
    """What decides a model's fingerprint besides the settings: the sha256 of a local checkpoint's files (remembered
    in `memo` by path, size and mtime), or a hub reference pinned to its commit."""
    path = Path(model).expanduser()
    if path.exists():
        from simsa.bench.identity import directory_sha256, weights_digest

        if path.is_dir():
            sha, _files = directory_sha256(path, memo)
        else:
            sha = weights_digest([path])
        return {"local": sha}
    from simsa.lineage.formats.hub import parse_model_ref

    ref = parse_model_ref(model)
    if ref is None:
        raise InputError(f"{model}: no such file or directory, and not a hub reference (org/name[@revision])")
    from huggingface_hub import HfApi, constants

    api = HfApi(endpoint=constants.ENDPOINT.rstrip("/"), library_name="simsa")
    try:
        sha = api.resolve_revision(ref.repo_id, revision=ref.revision,
                                   local_files_only=constants.is_offline_mode()).resolved
    except Exception as exc:
        raise InputError(f"{model}: could not pin it to a commit on the hub ({exc.__class__.__name__}: {exc})"
                         ) from None
    return {"hub": ref.repo_id, "commit": sha}


def _located(model: str, content: dict[str, str]) -> tuple[str, str]:
    """(the source as named in results, where a worker reads it): a hub reference pinned to its commit for both, a
    local path as given and made absolute (a worker's directory is not the driver's)."""
    if "hub" in content:
        pinned = f"{content['hub']}@{content['commit']}"
        return pinned, pinned
    return model, str(Path(model).expanduser().resolve())


def fingerprint_units(models: list[tuple[str, str]], settings: FingerprintSettings,
                      memo: Path | None = None) -> list[WorkUnit]:
    """One unit per (model, registry name)."""
    from simsa.lineage.fingerprints.registry import safe_name

    out = []
    for model, given in models:
        name = safe_name(given)  # the name the registry stores it under is the one written into the file
        content = model_content(model, memo)
        pinned, where = _located(model, content)
        key = unit_key("lineage.fingerprint", model=content, name=name, settings=asdict(settings),
                       source=pinned if "hub" in content else str(Path(model)))
        out.append(WorkUnit(kind="lineage.fingerprint", label=name, function=FUNCTION,
                            args={"model": pinned, "where": where, "name": name, "settings": asdict(settings)},
                            key=key, resources=Resources(cpus=1.0, memory=UNIT_MEMORY),
                            local_paths=() if "hub" in content else (where,)))
    return out


def fingerprint_unit(model: str, where: str, name: str, settings: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """Build one fingerprint where this runs, reading `where` (an absolute path: a worker's directory is not the
    driver's) and naming `model` as its source, as the driver was given it; the value carries its provenance and
    this worker's peak memory."""
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.fingerprints.build import build_fingerprint

    side = open_side(where)
    try:
        fp = build_fingerprint(side, FingerprintSettings(**settings), name=name)
        io = side.ckpt.io_stats().to_dict()
    finally:
        side.ckpt.close()
    fp.meta["source"] = model
    with tempfile.TemporaryDirectory(prefix="simsa-fp-") as tmp:
        path = Path(tmp) / "fp.simsa-fp"
        fp.save(path)
        payload = path.read_bytes()
    value = {"name": name, "model": model, "parameters": int(fp.meta.get("parameters") or 0),
             "seconds": fp.meta.get("seconds"), "io": io, "worker_pid": os.getpid(),
             "worker_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    return value, payload


# --- scans: one unit per candidate

SCAN_FUNCTION = "simsa.lineage.fingerprints.units:scan_unit"
MEASURED = ("seconds", "io")  # what a run measured (time, bytes read): kept apart so results compare byte for byte


def without_measurements(obj: Any) -> Any:
    """`obj` with every `seconds` and `io` key removed, at any depth (the result, not how long it took)."""
    if isinstance(obj, dict):
        return {k: without_measurements(v) for k, v in obj.items() if k not in MEASURED}
    if isinstance(obj, list):
        return [without_measurements(v) for v in obj]
    return obj


def scan_units(candidates: list[str], registry_root: Path, options: dict[str, Any],
               memo: Path | None = None) -> list[WorkUnit]:
    """One unit per candidate, keyed by its content, the registry index (which names every reference's sha256)
    and the scan's options. Workers read the registry at its absolute path: on a cluster, the units are placed on the
    nodes that hold it (and the candidate, when it is a local path)."""
    index = hashlib.sha256((registry_root / "registry.json").read_bytes()).hexdigest()
    out = []
    for candidate in candidates:
        content = model_content(candidate, memo)
        pinned, where = _located(candidate, content)
        key = unit_key("lineage.scan", candidate=content, source=pinned, registry=index, options=options)
        out.append(WorkUnit(kind="lineage.scan", label=candidate, function=SCAN_FUNCTION,
                            args={"candidate": pinned, "where": where, "registry": str(registry_root.resolve()),
                                  "options": options}, key=key,
                            resources=Resources(cpus=1.0, memory=UNIT_MEMORY),
                            local_paths=(str(registry_root.resolve()),) + (() if "hub" in content else (where,))))
    return out


def scan_unit(candidate: str, where: str, registry: str, options: dict[str, Any]) -> tuple[dict[str, Any], None]:
    """Scan one candidate against the registry where this runs; the result without its timings, which are kept
    beside it under `measured`."""
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.fingerprints.registry import Registry
    from simsa.lineage.fingerprints.scan import scan
    from simsa.lineage.stats.verdict import Thresholds

    side = open_side(where)
    try:
        result = scan(side, Registry.open(registry), correction=options["correction"], keep=options["keep"],
                      thresholds=Thresholds(derived_log10=options["derived_log10"],
                                            independent_log10=options["independent_log10"]))
    finally:
        side.ckpt.close()
    result["candidate"]["path"] = candidate
    return {"result": without_measurements(result), "measured": {k: result.get(k) for k in MEASURED},
            "worker_pid": os.getpid()}, None


# --- compares: one unit per (candidate, reference) pair

COMPARE_FUNCTION = "simsa.lineage.fingerprints.units:compare_unit"


def compare_units(pairs: list[tuple[str, str]], settings: dict[str, Any], thresholds: dict[str, float],
                  memo: Path | None = None) -> list[WorkUnit]:
    """One unit per (candidate, reference), keyed by both sides' content, the sampling settings and thresholds.
    The views compared are settled here (input-only when the candidate is a hub reference), so the key holds them."""
    out = []
    for candidate, reference in pairs:
        sides = [model_content(candidate, memo), model_content(reference, memo)]
        (c_pinned, c_where), (r_pinned, r_where) = _located(candidate, sides[0]), _located(reference, sides[1])
        chosen = dict(settings)
        if chosen.get("views") == "auto":
            chosen["views"] = "input" if "hub" in sides[0] else "all"
        key = unit_key("lineage.compare", candidate=sides[0], reference=sides[1], settings=chosen,
                       thresholds=thresholds)
        local = tuple(where for where, content in ((c_where, sides[0]), (r_where, sides[1])) if "hub" not in content)
        out.append(WorkUnit(kind="lineage.compare", label=f"{candidate} ← {reference}", function=COMPARE_FUNCTION,
                            args={"candidate": c_pinned, "candidate_where": c_where, "reference": r_pinned,
                                  "reference_where": r_where, "settings": chosen, "thresholds": thresholds},
                            key=key, resources=Resources(cpus=1.0, memory=UNIT_MEMORY), local_paths=local))
    return out


def compare_unit(candidate: str, candidate_where: str, reference: str, reference_where: str,
                 settings: dict[str, Any], thresholds: dict[str, float]) -> tuple[dict[str, Any], None]:
    """Compare one pair where this runs; the result without its timings, which are kept beside it."""
    from simsa.lineage.compare.result import compare
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.stats.correspondence import SamplingSettings
    from simsa.lineage.stats.verdict import Thresholds

    cand = open_side(candidate_where)
    try:
        ref = open_side(reference_where)
        try:
            result: dict[str, Any] = dict(compare(cand, ref, SamplingSettings(**settings), Thresholds(
                derived_log10=thresholds["derived_log10"], independent_log10=thresholds["independent_log10"])))
        finally:
            ref.ckpt.close()
    finally:
        cand.ckpt.close()
    result["candidate"] = dict(result["candidate"], path=candidate)
    result["reference"] = dict(result["reference"], path=reference)
    return {"result": without_measurements(result), "measured": {k: result.get(k) for k in MEASURED},
            "worker_pid": os.getpid()}, None
