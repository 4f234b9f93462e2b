"""Building a fingerprint: read what a comparison needs from an opened model (sampled reference units on sampled
coordinates, anchor rows, tensor digests, the coordinate audit) into a small file of bounded size.
"""


from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

from simsa.lineage.fingerprints.prefetch import prefetch
from simsa.lineage.formats.fingerprint import AUDIT_UNITS, SCHEMA, Fingerprint, FingerprintSettings, group_id
from simsa.lineage.model.tokenizer import Vocabulary
from simsa.lineage.model.units import read_units
from simsa.lineage.stats.alignment import FIT_ROWS_PER_WIDTH, GRAM_ROWS, HELD_OUT_ROWS, anchor_gram
from simsa.lineage.stats.correspondence import SamplingSettings, coordinate_draws, prepare_reference
from simsa.lineage.stats.exchangeability import MIN_AUDIT_UNITS, REASONS, Auditor

if TYPE_CHECKING:
    from simsa.lineage.compare.sides import Side

PREFETCH_DEPTH = 2  # unit groups read ahead of the one being prepared (bounds the memory held)


def _vocab_meta(vocab: Vocabulary | None) -> dict | None:
    if vocab is None:
        return None
    return {"tokens": vocab.tokens, "merges": vocab.merges, "special": vocab.special, "kind": vocab.kind,
            "added": list(vocab.added), "pipeline": vocab.pipeline}


def _audit_group(auditor: Auditor, matrices: list[np.ndarray]) -> None:
    for x in matrices:
        auditor.add(x)


def _seeded(settings: FingerprintSettings, *key: object) -> np.random.Generator:
    from simsa.lineage.stats.sampling import sample_rng

    return sample_rng(settings.sampling(), *key)


def build_fingerprint(side: Side, settings: FingerprintSettings | None = None, *,
                      name: str | None = None, progress: Callable[[str, int, int], None] | None = None
                      ) -> Fingerprint:
    """Read what a comparison needs from an opened model (a ``compare.Side``) into a fingerprint.

    BLAS runs on one thread here: the build overlaps its own stages on the machine's cores, and a fixed thread count
    makes the file's bytes the same on every machine (BLAS results depend on how a product is split over threads).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _build(side, settings, name, progress)


def _build(side: Side, settings: FingerprintSettings | None, name: str | None,
           progress: Callable[[str, int, int], None] | None) -> Fingerprint:
    from simsa.lineage.compare.baselines import naive_inputs
    from simsa.lineage.formats.digest import quick_keys
    from simsa.lineage.stats.sampling import sample_units

    settings = settings or FingerprintSettings()
    started = time.perf_counter()
    ckpt, amap = side.ckpt, side.amap
    arrays: dict[str, np.ndarray] = {}
    coords: dict[str, np.ndarray] = {}
    for stack, info in amap.stacks.items():
        draws = coordinate_draws(int(info.hidden_size), SamplingSettings(coords=settings.coords, draws=0),
                                 _seeded(settings, "coords", stack))
        coords[stack] = draws.reference
        arrays[f"coords|{stack}"] = draws.reference.astype(np.int64)
    jobs = [(comp, layer, g) for comp, cu in sorted(side.comps.items())
            for layer, groups in sorted(cu.layers.items(), key=lambda kv: (kv[0] is not None, kv[0] or 0))
            for g in groups.values()]
    todo = [job for job in jobs if job[0].split(".", 1)[0] in coords]
    names = ckpt.names()
    total = len(todo) + len(names)
    auditors: dict[str, Auditor] = {}

    def sampled(job: tuple) -> np.ndarray:
        comp, layer, g = job
        if g.paired:
            return sample_units(g.n_units, settings.paired, settings.sampling(), "fp-paired", group_id(comp, layer, g))
        return sample_units(g.n_units, settings.ref_units, settings.sampling(), "ref", comp, layer, g.key)

    def load(job: tuple) -> tuple[np.ndarray, list[np.ndarray]]:
        ids = sampled(job)
        return ids, [read_units(ckpt, p, ids) for p in job[2].parts]

    # Three stages overlap: reading a group (disk-bound, on the prefetch thread), auditing the group before it (on
    # the audit thread) and preparing it (here). NumPy releases the GIL in all three, and at most PREFETCH_DEPTH
    # groups wait at each stage, so memory stays bounded whatever the model size. The audit keeps flags only.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="simsa-audit") as audit_pool:
        audits: deque[Future[None]] = deque()
        for i, ((comp, layer, g), (ids, full)) in enumerate(prefetch(todo, load, depth=PREFETCH_DEPTH)):
            stack = comp.split(".", 1)[0]
            gid = group_id(comp, layer, g)
            if g.paired:
                arrays[f"ids|{gid}"] = ids.astype(np.int64)
            if g.n_units >= MIN_AUDIT_UNITS:  # the audit sees every unit the fingerprint keeps, at full width
                auditor = auditors.setdefault(stack, Auditor(int(amap.stacks[stack].hidden_size)))
                audits.append(audit_pool.submit(_audit_group, auditor, [x[:AUDIT_UNITS] for x in full]))
                while len(audits) > PREFETCH_DEPTH:
                    audits.popleft().result()
            arrays[f"units|{gid}"] = prepare_reference([x[:, coords[stack]] for x in full]).astype(np.float16)
            del full
            if progress:
                progress("fingerprint units", i + 1, total)
        while audits:
            audits.popleft().result()
    audit_matrices = {}
    for stack, auditor in auditors.items():
        found = auditor.result()
        audit_matrices[stack] = found.matrices
        arrays[f"excluded|{stack}"] = np.array(
            [[c, i] for i, r in enumerate(REASONS) for c in sorted(found.flagged.get(r, ()))],
            dtype=np.int64).reshape(-1, 2)
    _anchors(side, settings, coords, arrays)
    shapes, dtypes, keys = {}, {}, {}
    for j, (n, (key, informative, whole)) in enumerate(zip(names, quick_keys(ckpt, names), strict=True)):
        shapes[n] = list(ckpt.shape(n))
        dtypes[n] = ckpt.dtype(n)
        keys[n] = [key[2], informative, whole]
        if progress:
            progress("fingerprint digests", len(todo) + j + 1, total)
    gains, profile = naive_inputs(side)
    for n, values in gains.items():
        arrays[f"tensor|{n}"] = np.asarray(values, dtype=np.float32)
    meta = {
        "schema": SCHEMA,
        "name": name or Path(str(side.label)).name,
        "source": str(side.label),
        "model_type": amap.model_type,
        "adapter": amap.adapter,
        "parameters": int(ckpt.total_parameters()),
        "stacks": {k: asdict(v) for k, v in amap.stacks.items()},
        "settings": asdict(settings),
        "config": ckpt.config,
        "shapes": shapes,
        "dtypes": dtypes,
        "identity_keys": keys,
        "std_profile": profile,
        "group_units": {group_id(c, layer, g): g.n_units for c, layer, g in jobs},
        "audit_matrices": audit_matrices,
        "vocabulary": _vocab_meta(side.vocab),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return Fingerprint(meta, arrays)


def _anchors(side: Side, settings: FingerprintSettings, coords: dict[str, np.ndarray],
             arrays: dict[str, np.ndarray]) -> None:
    """Token-embedding rows (on the kept coordinates) for fitting a basis map at comparison time."""
    for stack, cu in side.comps.items():
        if not stack.endswith(".embedding") or None not in cu.layers:
            continue
        st = stack.split(".", 1)[0]
        groups = cu.layers[None]
        g = groups.get("embed.tokens") or groups.get("embed.positions")
        if g is None or st not in coords:
            continue
        width = int(side.amap.stacks[st].hidden_size)
        n = min(g.n_units, HELD_OUT_ROWS + FIT_ROWS_PER_WIDTH * width)
        ids = np.sort(_seeded(settings, "anchors", st).choice(g.n_units, n, replace=False))
        arrays[f"anchor_ids|{st}"] = ids.astype(np.int64)
        rows = read_units(side.ckpt, g.parts[0], ids)
        arrays[f"anchors|{st}"] = rows[:, coords[st]].astype(np.float16)
        arrays[f"anchor_gram|{st}"] = anchor_gram(rows[:GRAM_ROWS]).astype(np.float16)  # basis-free pre-check
        arrays[f"anchor_key|{st}"] = np.array([0 if g.key == "embed.tokens" else 1], dtype=np.int64)
