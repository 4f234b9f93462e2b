"""Fingerprinting many checkpoints into a registry through an executor: units built (or found done), their bytes
written into the registry by the driver as each arrives, failures reported beside the rest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from simsa.errors import CheckpointError, SimsaError
from simsa.lineage.fingerprints.registry import Registry, safe_name
from simsa.lineage.fingerprints.units import compare_units, fingerprint_units, scan_units
from simsa.lineage.formats.fingerprint import FingerprintSettings
from simsa.scale import Executor, ResultStore, UnitResult, WorkUnit, run_units, unit_key

T = TypeVar("T")


@dataclass(frozen=True)
class FingerprintRun:
    """What a run of many fingerprints did: each unit's result (cached or built, or its error) and the registry
    entries written."""

    executor: str
    registry: str
    results: tuple[UnitResult, ...]
    entries: dict[str, dict]

    @property
    def failed(self) -> list[UnitResult]:
        return [r for r in self.results if not r.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"executor": self.executor, "registry": self.registry,
                "built": sum(1 for r in self.results if r.ok and not r.cached),
                "cached": sum(1 for r in self.results if r.cached), "failed": len(self.failed),
                "units": [{**r.to_dict(), "entry": self.entries.get(r.label)} for r in self.results]}

    def lines(self) -> list[str]:
        out = []
        for r in self.results:
            if r.ok:
                how = "already built" if r.cached else f"built in {r.seconds:.1f} s"
                out.append(f"✓ {r.label}: {how}, stored in {self.registry}")
            else:
                out.append(f"✗ {r.label}: {r.error}")
        return out


def fingerprint_many(models: list[tuple[str, str]], settings: FingerprintSettings, registry: Registry,
                     executor: Executor, store: ResultStore | None,
                     progress: Callable[[str, int, int], None] | None = None,
                     memo: Path | None = None) -> FingerprintRun:
    """Fingerprint every (model, name) into `registry`: the driver writes each result's bytes as it arrives."""
    memo = memo if memo is not None else _memo(store)
    units, unreadable = _units_each("lineage.fingerprint", models,
                                    lambda m: fingerprint_units([m], settings, memo), lambda m: safe_name(m[1]))
    entries: dict[str, dict] = {}
    problems: dict[str, str] = {}

    def write(result: UnitResult) -> None:
        if not result.ok or result.payload is None:
            return
        try:
            entries[result.label] = registry.add_bytes(result.label, result.payload)
        except CheckpointError as exc:  # a damaged result: reported with the others, not stored
            problems[result.key] = str(exc)

    results = run_units(executor, units, store=store, progress=progress, label="fingerprints", on_result=write)
    checked = tuple(r if r.key not in problems else UnitResult(r.key, r.label, False, error=problems[r.key])
                    for r in results) + tuple(unreadable)
    return FingerprintRun(executor=executor.name, registry=str(registry.root), results=checked, entries=entries)


def _memo(store: ResultStore | None) -> Path | None:
    return store.root / "hash-memo.json" if store is not None else None


def _units_each(kind: str, items: list[T], make: Callable[[T], list[WorkUnit]],
                label: Callable[[T], str]) -> tuple[list[WorkUnit], list[UnitResult]]:
    """Units for each item; an item that cannot even be named by content (a missing path, an unpinnable hub
    reference) fails alone, as a result beside the others."""
    units: list[WorkUnit] = []
    failed: list[UnitResult] = []
    for item in items:
        try:
            units += make(item)
        except SimsaError as exc:
            failed.append(UnitResult(unit_key(kind, unreadable=str(item)), label(item), False, error=str(exc)))
    return units, failed


@dataclass(frozen=True)
class ScanRun:
    """Scans of several candidates: each candidate's result (without its timings, kept under `measured`), or its
    error."""

    executor: str
    registry: str
    results: tuple[UnitResult, ...]

    @property
    def failed(self) -> list[UnitResult]:
        return [r for r in self.results if not r.ok]

    def scans(self) -> list[dict[str, Any]]:
        return [{"candidate": r.label, "ok": r.ok, "cached": r.cached, "error": r.error,
                 "result": (r.value or {}).get("result"), "measured": (r.value or {}).get("measured")}
                for r in self.results]

    def to_dict(self) -> dict[str, Any]:
        return {"executor": self.executor, "registry": self.registry, "scans": self.scans()}


def scan_many(candidates: list[str], registry: Registry, options: dict[str, Any], executor: Executor,
              store: ResultStore | None, progress: Callable[[str, int, int], None] | None = None) -> ScanRun:
    """Scan every candidate against `registry`, one unit each (a rerun scans only what changed)."""
    memo = _memo(store)
    units, unreadable = _units_each("lineage.scan", candidates,
                                    lambda c: scan_units([c], registry.root, options, memo), str)
    done = run_units(executor, units, store=store, progress=progress, label="scans")
    return ScanRun(executor=executor.name, registry=str(registry.root), results=tuple(done) + tuple(unreadable))


@dataclass(frozen=True)
class CompareRun:
    """Compares of many (candidate, reference) pairs: each pair's result (without its timings, kept under
    `measured`), or its error."""

    executor: str
    pairs: tuple[tuple[str, str], ...]
    results: tuple[UnitResult, ...]

    @property
    def failed(self) -> list[UnitResult]:
        return [r for r in self.results if not r.ok]

    def compares(self) -> list[dict[str, Any]]:
        return [{"candidate": c, "reference": ref, "ok": r.ok, "cached": r.cached, "error": r.error,
                 "result": (r.value or {}).get("result"), "measured": (r.value or {}).get("measured")}
                for (c, ref), r in zip(self.pairs, self.results, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        return {"executor": self.executor, "compares": self.compares(), "failed": len(self.failed)}


def compare_many(pairs: list[tuple[str, str]], settings: dict[str, Any], thresholds: dict[str, float],
                 executor: Executor, store: ResultStore | None,
                 progress: Callable[[str, int, int], None] | None = None) -> CompareRun:
    """Compare every (candidate, reference) pair, one unit each (a rerun compares only what changed); results come
    back in the pairs' order."""
    memo = _memo(store)
    made: dict[tuple[str, str], WorkUnit] = {}
    unreadable: dict[tuple[str, str], UnitResult] = {}
    for pair in pairs:
        units, failed = _units_each("lineage.compare", [pair],
                                    lambda p: compare_units([p], settings, thresholds, memo),
                                    lambda p: f"{p[0]} ← {p[1]}")
        if units:
            made[pair] = units[0]
        else:
            unreadable[pair] = failed[0]
    done = iter(run_units(executor, list(made.values()), store=store, progress=progress, label="compares"))
    by_pair = {pair: next(done) for pair in made}
    return CompareRun(executor=executor.name, pairs=tuple(pairs),
                      results=tuple(by_pair.get(p) or unreadable[p] for p in pairs))
