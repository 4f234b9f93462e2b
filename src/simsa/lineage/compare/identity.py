"""Tensors copied outright: every candidate tensor equal (bit for bit, or at bf16 precision) to a reference tensor."""


from __future__ import annotations

from simsa.lineage.compare.sides import Progress, Side
from simsa.lineage.formats.digest import quick_keys


def identity_matches(cand: Side, ref: Side, progress: Progress | None = None) -> dict[str, tuple[str, str, bool]]:
    """Candidate tensor → (reference tensor, "bit" | "bf16", informative) for every tensor equal to a reference one."""
    index: dict[tuple, list[str]] = {}
    ref_names = ref.ckpt.names()
    cand_names = cand.ckpt.names()
    total = len(ref_names) + len(cand_names)
    stored = ref.fingerprint.meta.get("identity_keys", {}) if ref.fingerprint is not None else None
    if stored is not None:
        ref_keys = [(tuple(ref.ckpt.shape(n)), bool(stored[n][2]), stored[n][0]) if n in stored else None
                    for n in ref_names]
    else:
        ref_keys = [key for key, _, _ in quick_keys(ref.ckpt, ref_names)]
    for i, (name, ref_key) in enumerate(zip(ref_names, ref_keys, strict=True)):
        if ref_key is None:
            continue
        index.setdefault(ref_key, []).append(name)
        if progress:
            progress("identity", i + 1, total)
    full_cache: dict[tuple[int, str], str] = {}

    def full(side: Side, name: str) -> str:
        key = (id(side), name)
        if key not in full_cache:
            full_cache[key] = side.ckpt.digest(name, "bf16")
        return full_cache[key]

    found: dict[str, tuple[str, str, bool]] = {}
    used: set[str] = set()
    for i, (name, (key, informative, whole)) in enumerate(zip(cand_names, quick_keys(cand.ckpt, cand_names),
                                                              strict=True)):
        others = sorted(index.get(key, []), key=lambda o: (o in used, o != name))  # prefer same name, unused
        for other in others:
            if whole or stored is not None or full(cand, name) == full(ref, other):
                bit = stored is None and cand.ckpt.dtype(name) == ref.ckpt.dtype(other) and cand.ckpt.digest(
                    name, "exact") == ref.ckpt.digest(other, "exact")
                found[name] = (other, "bit" if bit else "bf16", informative)
                used.add(other)
                break
        if progress:
            progress("identity", len(ref_names) + i + 1, total)
    return found
