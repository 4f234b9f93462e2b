"""The hidden-unit test per component: which units and coordinates are read, which layer pairs are tested, and
the evidence matrix with its combined p-value.

This is the adapter between checkpoints and the pure statistics in ``simsa.lineage.stats``: it samples, reads lazily
and caches each side's prepared units so every layer is read once per comparison.
"""


from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import cast

import numpy as np

from simsa.errors import CheckpointError
from simsa.lineage.compare.sides import Progress, Side
from simsa.lineage.formats.fingerprint import group_id
from simsa.lineage.model.tokenizer import token_alignment
from simsa.lineage.model.units import ComponentUnits, UnitGroup, read_units
from simsa.lineage.stats.alignment import (
    FIT_ROWS_PER_WIDTH,
    GRAM_ROWS,
    HELD_OUT_ROWS,
    Alignment,
    LazyRows,
    anchor_gram,
    fit_alignment,
)
from simsa.lineage.stats.correspondence import (
    CoordinateDraws,
    PairEvidence,
    SamplingSettings,
    best_match,
    candidate_on_draws,
    coordinate_draws,
    evidence,
    paired_match,
    prepare_candidate,
    prepare_reference,
    restrict_prepared,
    standardise_candidate,
)
from simsa.lineage.stats.exchangeability import (
    MIN_AUDIT_UNITS,
    CoordinateAudit,
    StackAudit,
    audit,
    clean_coordinates,
)
from simsa.lineage.stats.localise import PAIR_ALPHA_LOG10, combine_layers, monotone_map
from simsa.lineage.stats.sampling import sample_rng, sample_units

MIN_GROUP_UNITS = 16  # fewer units (a 4-expert router) cannot separate copied units from shared structure


FULL_GRID_PAIRS = 16  # up to this many layer pairs every pair gets the full test; beyond, screen first


SCREEN_KEEP = 3


SCREEN_UNITS = 64


SCREEN_REF_UNITS = 2048


AUDIT_REFERENCE_UNITS = 512  # reference units per group whose coordinates are audited for exchangeability


MIN_EXCHANGEABLE_COORDS = 16  # fewer coordinates left after the audit and the test has too little to permute


def _candidate_of_reference(pairs: np.ndarray) -> np.ndarray:
    """Candidate id per reference id (-1: no token in common); a reference id paired twice keeps its last pair."""
    table = np.full(int(pairs[:, 1].max()) + 1, -1, dtype=np.int64)
    last = len(pairs) - 1 - np.unique(pairs[::-1, 1], return_index=True)[1]
    table[pairs[last, 1]] = pairs[last, 0]
    return table


class Prepared:
    """Caches each side's prepared unit arrays so every layer is read once per comparison."""

    def __init__(self, cand: Side, ref: Side, settings: SamplingSettings) -> None:
        self.cand, self.ref, self.settings = cand, ref, settings
        self.draws: dict[str, CoordinateDraws] = {}
        self.cand_cache: dict[tuple, np.ndarray] = {}
        # Set by a scan: candidate units read and standardised once for every reference that shares them, whatever
        # coordinates each reference's draws then take.
        self.std_cache: dict[tuple, list[np.ndarray]] | None = None
        self.ref_cache: dict[tuple, np.ndarray] = {}
        self.token_pairs: np.ndarray | None = None  # (candidate id, reference id) rows, by candidate id
        self.alignments: dict[str, Alignment] = {}
        self.audits: dict[str, StackAudit] = {}
        self.fp = ref.fingerprint
        if self.fp is not None:  # the fingerprint's own sample sizes decide the reference side
            self.settings = settings = replace(settings, ref_units=self.fp.settings.ref_units,
                                               coords=self.fp.settings.coords, seed=self.fp.settings.seed)
        if cand.vocab is not None and ref.vocab is not None:
            self.token_pairs = token_alignment(cand.vocab, ref.vocab)

    def stack_alignment(self, stack: str) -> Alignment:
        """The map from the candidate's residual basis of ``stack`` into the reference's (fitted once)."""
        if stack not in self.alignments:
            self.alignments[stack] = self._fit_alignment(stack)
        return self.alignments[stack]

    def _anchor_pairs(self, stack: str) -> tuple[list, list, np.ndarray, np.ndarray] | None:
        """Anchor rows of a stack: token embeddings paired by token string, else position embeddings by index."""
        comp = f"{stack}.embedding"
        cc, rc = self.cand.comps.get(comp), self.ref.comps.get(comp)
        if cc is None or rc is None or None not in cc.layers or None not in rc.layers:
            return None
        cgs, rgs = cc.layers[None], rc.layers[None]
        for key in ("embed.tokens", "embed.positions"):
            if key in cgs and key in rgs:
                cg, rg = cgs[key], rgs[key]
                nc, nr = cg.n_units, rg.n_units
                if key == "embed.tokens" and self.token_pairs is not None and len(self.token_pairs):
                    pairs = self._token_pairs_within(nc, nr)
                else:
                    n = min(nc, nr)
                    pairs = np.stack([np.arange(n), np.arange(n)], axis=1)
                if len(pairs):
                    return cg.parts[0], rg.parts[0], pairs[:, 0], pairs[:, 1]
        return None

    def _token_pairs_within(self, nc: int, nr: int) -> np.ndarray:
        """The token pairs whose ids index rows of both sides' embeddings (``nc`` and ``nr`` rows)."""
        assert self.token_pairs is not None
        tp = self.token_pairs
        return tp[(tp[:, 0] < nc) & (tp[:, 1] < nr)]

    def _fit_alignment(self, stack: str) -> Alignment:
        wc, wr = _width(self.cand, stack) or 0, _width(self.ref, stack) or 0
        if self.fp is not None:
            return self._fit_fingerprint_alignment(stack, wc, wr)
        anchors = self._anchor_pairs(stack)
        if anchors is None:
            kind = "identity" if wc == wr else "none"
            return Alignment(kind, wc, wr, float("nan"), float("nan"), 0, "no anchor rows (embeddings) in common")
        cparts, rparts, ci, ri = anchors
        limit = HELD_OUT_ROWS + FIT_ROWS_PER_WIDTH * max(wc, wr)
        if len(ci) > limit:
            pick = np.sort(sample_rng(self.settings, "anchors", stack).choice(len(ci), limit, replace=False))
            ci, ri = ci[pick], ri[pick]
        cand = read_units(self.cand.ckpt, cparts, ci)
        ref = read_units(self.ref.ckpt, rparts, ri)
        return fit_alignment(cand, ref, sample_rng(self.settings, "alignment", stack))

    def _fit_fingerprint_alignment(self, stack: str, wc: int, wr: int) -> Alignment:
        """As ``_fit_alignment``, against the anchor rows a fingerprint keeps (on its sampled coordinates)."""
        assert self.fp is not None
        stored = self.fp.anchors(stack)
        emb = self.cand.comps.get(f"{stack}.embedding")
        if stored is None or emb is None or None not in emb.layers:
            kind = "identity" if wc == wr else "none"
            return Alignment(kind, wc, wr, float("nan"), float("nan"), 0, "no anchor rows (embeddings) in common")
        ids, rows = stored
        by_tokens = int(self.fp.arrays.get(f"anchor_key|{stack}", np.zeros(1))[0]) == 0
        group = emb.layers[None].get("embed.tokens" if by_tokens else "embed.positions")
        if group is None:
            return Alignment("none", wc, wr, float("nan"), float("nan"), 0, "the candidate has no such embedding")
        ids = np.asarray(ids, dtype=np.int64)
        if by_tokens and self.token_pairs is not None and len(self.token_pairs):
            cand_of = _candidate_of_reference(self.token_pairs)
            inside = ids < len(cand_of)
            mapped = np.full(len(ids), -1, dtype=np.int64)
            mapped[inside] = cand_of[ids[inside]]
        else:
            mapped = ids
        sel = np.nonzero((mapped >= 0) & (mapped < group.n_units))[0]
        if not len(sel):
            return Alignment("none", wc, wr, float("nan"), float("nan"), 0, "no anchor tokens in common")
        cand_ids = mapped[sel]
        gram = self.fp.arrays.get(f"anchor_gram|{stack}")
        if gram is not None:  # keep the stored Gram's rows first, in its order, so the two Grams pair up
            in_gram = sel < len(gram)
            gram = gram.astype(np.float32)[np.ix_(sel[in_gram], sel[in_gram])]
            order = np.concatenate([np.nonzero(in_gram)[0], np.nonzero(~in_gram)[0]])
        else:
            order = np.argsort(cand_ids, kind="stable")
        key = (stack, hashlib.sha256(cand_ids[order].tobytes()).hexdigest())
        cand = self.cand.cache.get(key)
        if cand is None:  # a scan asks for the same rows once per reference: read them once, and only if used
            part, ckpt = group.parts[0], self.cand.ckpt  # not `self`: the cache outlives this reference
            cand = self.cand.cache[key] = LazyRows(cand_ids[order], wc, lambda ids: read_units(ckpt, part, ids))
        n_gram = len(gram) if gram is not None else GRAM_ROWS
        gkey = (*key, "gram", n_gram)
        if gkey not in self.cand.cache:
            self.cand.cache[gkey] = anchor_gram(cand[:n_gram])
        return fit_alignment(cand, np.asarray(rows, dtype=np.float32)[sel[order]],
                             sample_rng(self.settings, "alignment", stack), ref_coords=self.fp.coords(stack),
                             ref_width=wr, ref_gram=gram, cand_gram=self.cand.cache[gkey])

    def _parts(self, group: UnitGroup) -> list:
        return [group.parts[i] for i in view_parts(group, self.settings)]

    def _read_candidate(self, stack: str, parts: list, index: np.ndarray) -> list[np.ndarray]:
        """Candidate unit parts, mapped into the reference's residual basis when an alignment was accepted."""
        align = self.stack_alignment(stack)
        return [align.apply(read_units(self.cand.ckpt, p, index)) for p in parts]

    def coords(self, stack: str, width: int) -> CoordinateDraws:
        """The reference coordinates (row 0) and the null's random candidate coordinates (rows 1..).

        Coordinates that either model's audit flags as non-exchangeable are left out of both (see
        ``exchangeability``); with none flagged the draws are exactly what they were before the audit existed.
        """
        if stack not in self.draws:
            rng = sample_rng(self.settings, "coords", stack)
            if self.fp is None:
                cand = self._audit_candidate(stack)
                ref = self._audit_reference(stack)
                clean = clean_coordinates(width, cand.excluded, ref.excluded)
                allowed = None if clean.size == width else clean
                self.draws[stack] = coordinate_draws(width, self.settings, rng, allowed)
                self.audits[stack] = StackAudit(stack, width, int(self.draws[stack].index.shape[1]), cand, ref)
            else:  # the fingerprint fixed the reference coordinates; a mapped candidate lives on exactly those
                self.draws[stack] = self._fingerprint_coords(stack, width, rng)
        return self.draws[stack]

    def _fingerprint_coords(self, stack: str, width: int, rng: np.random.Generator) -> CoordinateDraws:
        assert self.fp is not None
        kept = self.fp.coords(stack)
        mapped = self.stack_alignment(stack).transforms
        space = len(kept) if mapped else width
        cand = self._audit_candidate(stack)
        ref_audit = self.fp.excluded(stack)  # None: a fingerprint written before the audit existed
        ref_full = ref_audit.excluded if ref_audit is not None else frozenset()
        ref_space = {i for i, c in enumerate(kept) if int(c) in ref_full} if mapped else ref_full
        clean = clean_coordinates(space, cand.excluded, ref_space)
        first = np.arange(len(kept)) if mapped else kept
        keep = np.isin(first, clean)
        if keep.all():
            null = coordinate_draws(space, replace(self.settings, coords=len(kept)), rng).index[1:]
            draws = CoordinateDraws(np.concatenate([first[None, :], null]).astype(np.int64))
        else:
            first, positions = first[keep], np.nonzero(keep)[0]
            null = coordinate_draws(space, replace(self.settings, coords=len(first)), rng, clean).index[1:]
            draws = CoordinateDraws(np.concatenate([first[None, :], null]).astype(np.int64), positions)
        self.audits[stack] = StackAudit(stack, space, int(draws.index.shape[1]), cand, ref_audit)
        return draws

    def _audit_candidate(self, stack: str) -> CoordinateAudit:
        """Audit the candidate's units of ``stack`` (the same samples the test uses, in the reference's basis).

        Unmapped, the audit does not depend on the reference, so a scan computes it once for all references.
        """
        key = ("audit", stack, self.settings.units, self.settings.seed, self.settings.views)
        shared = not self.stack_alignment(stack).transforms
        if shared and key in self.cand.cache:
            return self.cand.cache[key]
        found = self._audit_candidate_units(stack)
        if shared:
            self.cand.cache[key] = found
        return found

    def _audit_candidate_units(self, stack: str) -> CoordinateAudit:
        # The candidate's units as the test sees them: in the reference's basis (and width) when mapped.
        return audit(self._audit_matrices(self.cand, stack, self.settings.units, "cand",
                                          lambda parts, idx: self._read_candidate(stack, parts, idx)))

    def _audit_reference(self, stack: str) -> CoordinateAudit:
        return audit(self._audit_matrices(self.ref, stack, AUDIT_REFERENCE_UNITS, "ref",
                                          lambda parts, idx: (read_units(self.ref.ckpt, p, idx) for p in parts)),
                     _width(self.ref, stack) or 0)

    def _audit_matrices(self, side: Side, stack: str, units: int, tag: str,
                        read: Callable[[list, np.ndarray], Iterable[np.ndarray]]) -> Iterator[np.ndarray]:
        """Each audited group's sampled units, read as the audit consumes them (only its flags are kept)."""
        for comp, layer, group in self._audit_groups(side, stack):
            idx = self._sample(group.n_units, units, tag, comp, layer, group.key)
            yield from read(self._parts(group), idx)

    def _audit_groups(self, side: Side, stack: str) -> list[tuple[str, object, UnitGroup]]:
        return [(comp, layer, g) for comp, cu in sorted(side.comps.items()) if comp.split(".", 1)[0] == stack
                for layer, groups in sorted(cu.layers.items(), key=lambda kv: (kv[0] is not None, kv[0] or 0))
                for g in groups.values() if g.n_units >= MIN_AUDIT_UNITS and self._parts(g)]

    def _pairs(self, comp: str, layer, cg: UnitGroup, rg: UnitGroup) -> tuple[np.ndarray, np.ndarray]:
        """Paired unit indices (candidate, reference) for embedding-like groups."""
        nc, nr = cg.n_units, rg.n_units
        if cg.key in ("embed.tokens", "head") and self.token_pairs is not None and len(self.token_pairs):
            pairs = self._token_pairs_within(nc, nr)
        else:
            n = min(nc, nr)
            pairs = np.stack([np.arange(n), np.arange(n)], axis=1)
        if self.fp is not None:  # only the rows the fingerprint kept can be compared
            stored = self.fp.paired_ids(_group_id(rg, layer))
            pairs = pairs[np.isin(pairs[:, 1], stored)] if stored is not None else pairs[:0]
        if len(pairs) > self.settings.units:
            pick = sample_rng(self.settings, "pairs", comp, layer, cg.key).choice(len(pairs), self.settings.units,
                                                                            replace=False)
            pairs = pairs[np.sort(pick)]
        return pairs[:, 0], pairs[:, 1]

    def group_scores(self, comp: str, stack: str, width: int, ca, cg: UnitGroup, rb, rg: UnitGroup) -> np.ndarray:
        draws = self.coords(stack, width)
        if cg.paired:
            ckey = ("paired", comp, ca, cg.key, rb)
            if ckey not in self.cand_cache:
                ci, ri = self._pairs(comp, ca, cg, rg)
                self.cand_cache[ckey] = prepare_candidate(self._read_candidate(stack, cg.parts, ci), draws)
                if self.fp is not None:
                    gid = _group_id(rg, rb)
                    ids, stored = self.fp.paired_ids(gid), self.fp.group(gid)
                    if ids is None or stored is None:
                        raise CheckpointError(f"fingerprint {self.fp.name}: no stored rows for {gid}")
                    row_of = {int(r): i for i, r in enumerate(ids)}
                    self.ref_cache[ckey] = restrict_prepared(
                        stored[[row_of[int(r)] for r in ri]].astype(np.float32), len(rg.parts), draws.ref_positions)
                else:
                    self.ref_cache[ckey] = prepare_reference(
                        [read_units(self.ref.ckpt, p, ri)[:, draws.reference] for p in rg.parts])
            return paired_match(self.ref_cache[ckey], self.cand_cache[ckey])
        return best_match(self.reference(comp, rb, rg, draws), self.candidate(comp, stack, ca, cg, draws))

    def _sample(self, n: int, limit: int, *key: object) -> np.ndarray:
        return sample_units(n, limit, self.settings, *key)

    def candidate(self, comp: str, stack: str, layer, group: UnitGroup, draws: CoordinateDraws) -> np.ndarray:
        """Sampled candidate units, all draws: ``(draws + 1, m, P)``.

        Keyed by the draws as well: a scan shares this cache between references, and a reference whose audit
        leaves out other coordinates draws other coordinates.
        """
        key = (comp, layer, group.key, draws.key)
        if key not in self.cand_cache:
            idx = self._sample(group.n_units, self.settings.units, "cand", comp, layer, group.key)
            if self.std_cache is None:
                self.cand_cache[key] = prepare_candidate(self._read_candidate(stack, self._parts(group), idx), draws)
            else:
                std_key = (comp, layer, group.key)
                if std_key not in self.std_cache:
                    self.std_cache[std_key] = standardise_candidate(self._read_candidate(stack, self._parts(group),
                                                                                         idx))
                self.cand_cache[key] = candidate_on_draws(self.std_cache[std_key], draws)
        return self.cand_cache[key]

    def reference(self, comp: str, layer, group: UnitGroup, draws: CoordinateDraws) -> np.ndarray:
        """Reference units on the reference coordinates: ``(n, P)``."""
        key = (comp, layer, group.key)
        if key not in self.ref_cache and self.fp is not None:
            stored = self.fp.group(_group_id(group, layer))
            if stored is None:
                raise CheckpointError(f"fingerprint {self.fp.name}: no stored units for {_group_id(group, layer)}")
            width = stored.shape[1] // len(group.parts)
            cols = np.concatenate([np.arange(i * width, (i + 1) * width) for i in view_parts(group, self.settings)])
            # A sorted random sample: any prefix of it is one too.
            views = len(view_parts(group, self.settings))
            self.ref_cache[key] = restrict_prepared(stored[: self.settings.ref_units][:, cols], views,
                                                    draws.ref_positions)
        if key not in self.ref_cache:
            idx = self._sample(group.n_units, self.settings.ref_units, "ref", *key)
            # Kept in float16: every reference layer stays cached for the whole grid, and cosines need no more.
            self.ref_cache[key] = prepare_reference(
                [read_units(self.ref.ckpt, p, idx)[:, draws.reference] for p in self._parts(group)]
            ).astype(np.float16)
        return self.ref_cache[key]

    def screen(self, comp: str, stack: str, width: int, ca, cgroups: dict[str, UnitGroup], rb,
               rgroups: dict[str, UnitGroup]) -> float:
        """A cheap look (observed statistic only, few units) used to choose which layer pairs get the full test."""
        draws = self.coords(stack, width)
        vals = []
        for key, g in sorted(cgroups.items()):
            if comparable(g, rgroups.get(key), self.settings):
                cand = self.candidate(comp, stack, ca, g, draws)[:1, :SCREEN_UNITS]
                ref = self.reference(comp, rb, rgroups[key], draws)[:SCREEN_REF_UNITS]
                vals.append(float(best_match(ref, cand).mean()))
        return float(np.mean(vals)) if vals else float("nan")

    def drop_candidate_layer(self, comp: str, layer) -> None:
        for key in [k for k in self.cand_cache if k[0] == comp and k[1] == layer]:
            del self.cand_cache[key]


def view_parts(group: UnitGroup, settings: SamplingSettings) -> list[int]:
    """Which parts (views) of a group's units are compared.

    ``views="input"`` keeps only rows that *read* the residual stream (query/key/value/gate/up rows, embedding and
    head rows): each is one contiguous run of bytes, while an output-side unit is a strided column. A remote
    comparison then fetches a small fraction of the weights. Any fixed choice of views leaves the null exact.
    """
    if settings.views == "all":
        return list(range(len(group.parts)))
    return [i for i, p in enumerate(group.parts) if p and p[0].residual_axis == 1]


def comparable(cand: UnitGroup, ref: UnitGroup | None, settings: SamplingSettings | None = None) -> bool:
    """Whether two unit groups can be compared: same views of their units, and enough units on both sides.

    A GELU MLP neuron (up row, down column) and a gated one (gate, up, down) are different vectors.
    """
    if ref is None or len(cand.parts) != len(ref.parts) or min(cand.n_units, ref.n_units) < MIN_GROUP_UNITS:
        return False
    return bool(view_parts(cand, settings or SamplingSettings()))


def pair_evidence(prep: Prepared, comp: str, stack: str, width: int, ca, cgroups: dict[str, UnitGroup], rb,
                   rgroups: dict[str, UnitGroup]) -> PairEvidence | None:
    keys = [key for key, g in sorted(cgroups.items()) if comparable(g, rgroups.get(key), prep.settings)]
    scores, coverage = [], []
    for key in keys:
        sc = prep.group_scores(comp, stack, width, ca, cgroups[key], rb, rgroups[key])
        if sc.size:
            scores.append(sc)
            searched = rgroups[key].n_units if cgroups[key].paired else min(rgroups[key].n_units,
                                                                             prep.settings.ref_units)
            coverage.append(searched / rgroups[key].n_units)
    return evidence(scores, coverage) if scores else None


def _group_id(group: UnitGroup, layer: int | None) -> str:
    """The fingerprint name of a reference unit group (its own component, whatever candidate group it faces)."""
    return group_id(group.parts[0][0].role.component, layer, group)


def _width(side: Side, stack: str) -> int | None:
    info = side.amap.stacks.get(stack)
    return int(info.hidden_size) if info else None


def _screened_row(prep: Prepared, name: str, stack: str, width: int, cc: ComponentUnits, rc: ComponentUnits,
                  i: int, cand_layers: list, ref_layers: list) -> set[int]:
    """Which reference layers candidate layer ``cand_layers[i]`` gets the full test against.

    Small models: all of them. Deep models: a screen of the row (observed statistic on a few units) keeps the
    ``SCREEN_KEEP`` most similar reference layers plus the one at the same relative depth. Pairs left out count as
    no evidence, which can only make a p-value larger (conservative). A row's choice depends on that row's screen
    alone, so each candidate layer is screened right before its full test and its prepared units (cached by
    ``Prepared.candidate``) serve both: prepared once per layer, not once for the screen and again for the test.
    """
    n_c, n_r = len(cand_layers), len(ref_layers)
    if n_c * n_r <= FULL_GRID_PAIRS:
        return set(range(n_r))
    a = cand_layers[i]
    row = np.array([prep.screen(name, stack, width, a, cc.layers[a], b, rc.layers[b]) for b in ref_layers])
    row = np.nan_to_num(row, nan=-np.inf)
    chosen = {int(j) for j in np.argsort(-row)[:SCREEN_KEEP]}
    chosen.add(round(i * (n_r - 1) / max(1, n_c - 1)))
    return chosen


def _renamed(groups: dict[str, UnitGroup], key_map: dict[str, str] | None) -> dict[str, UnitGroup]:
    """Reference groups under the candidate's keys (an upcycled expert pool is tested against the dense MLP)."""
    if not key_map:
        return groups
    return {ck: groups[rk] for ck, rk in key_map.items() if rk in groups}


def component_evidence(prep: Prepared, name: str, progress: Progress | None, step: list[int], total: int,
                       ref_name: str | None = None, key_map: dict[str, str] | None = None) -> dict:
    """The unit test for one component: evidence matrix, layer map and combined p-value.

    ``ref_name`` tests the candidate component against a *different* reference component (``key_map`` says which
    reference unit group stands for which candidate group): the experts of a sparsely upcycled MoE against the
    dense MLP they were copied from.
    """
    ref_name = ref_name or name
    cc, rc = prep.cand.comps[name], prep.ref.comps[ref_name]
    stack = name.split(".", 1)[0]
    wc, wr = _width(prep.cand, stack), _width(prep.ref, stack)
    if not wc or not wr:
        return {"tested": False, "reason": "no residual width known for this stack"}
    if wc != wr and not prep.stack_alignment(stack).transforms:
        return {"tested": False, "reason": f"residual widths differ ({wc} vs {wr}) and no basis map from the "
                                           "candidate's to the reference's could be established from the embeddings"}
    wc = wr  # units are compared in the reference's basis
    kept = prep.coords(stack, wc).index.shape[1]
    if kept < MIN_EXCHANGEABLE_COORDS:
        return {"tested": False, "reason": f"only {kept} residual coordinates are exchangeable in both models (need "
                                           f"{MIN_EXCHANGEABLE_COORDS}); see the validity card's coordinate audit"}
    cand_layers: list[int | None] = [*sorted(k for k in cc.layers if k is not None)] or [None]
    ref_layers: list[int | None] = [*sorted(k for k in rc.layers if k is not None)] or [None]
    matrix = np.zeros((len(cand_layers), len(ref_layers)))
    details: dict[tuple, PairEvidence] = {}
    units = 0
    if key_map:
        rc = ComponentUnits(ref_name, {k: _renamed(v, key_map) for k, v in rc.layers.items()})
    for i, a in enumerate(cand_layers):
        chosen = _screened_row(prep, name, stack, wc, cc, rc, i, cand_layers, ref_layers)
        for j, b in enumerate(ref_layers):
            step[0] += 1
            if j not in chosen:
                continue
            ev = pair_evidence(prep, name, stack, wc, a, cc.layers[a], b, rc.layers[b])
            if ev is not None:
                matrix[i, j] = ev.log10_p
                details[(i, j)] = ev
                units = max(units, ev.units)
            if progress:
                progress(f"units {name}", step[0], total)
        prep.drop_candidate_layer(name, a)
    if not details:
        return {"tested": False, "reason": f"no unit groups with at least {MIN_GROUP_UNITS} units in common with "
                                           "the reference"}
    out: dict = {"tested": True, "units": units}
    if cand_layers == [None]:
        ev = details[(0, 0)]
        out.update(log10_p=ev.log10_p, layer_map=[], unmapped_layers=[], pairs=[ev.as_dict()],
                   matched_fraction=ev.matched_fraction)
        return out
    # Layered components here: both sides list layer numbers (None only stands for a component without layers).
    lmap = monotone_map(matrix, cast("list[int]", cand_layers), cast("list[int]", ref_layers))
    pos_c = {layer: i for i, layer in enumerate(cand_layers)}
    pos_r = {layer: j for j, layer in enumerate(ref_layers)}
    mapped = [details[(pos_c[a], pos_r[b])] for a, b, _ in lmap.pairs]
    out.update(
        log10_p=combine_layers(matrix, _tested_mask(matrix.shape, details)),
        layer_map=[[a, b, round(p, 3)] for a, b, p in lmap.pairs],
        unmapped_layers=lmap.unmapped,
        segments=lmap.segments,
        reused_reference_layers=lmap.reused_reference_layers,
        pair_threshold_log10=round(lmap.threshold_log10, 3),
        candidate_layers=cand_layers,
        reference_layers=ref_layers,
        evidence=[[round(float(matrix[i, j]), 3) if (i, j) in details else None for j in range(len(ref_layers))]
                  for i in range(len(cand_layers))],
        pairs_tested=len(details),
        pairs=[{"candidate_layer": a, "reference_layer": b, **details[(pos_c[a], pos_r[b])].as_dict()}
               for a, b, _ in lmap.pairs],
        matched_fraction=float(np.mean([e.matched_fraction for e in mapped])) if mapped else 0.0,
    )
    return out


def _tested_mask(shape: tuple[int, ...], details: dict[tuple, PairEvidence]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for i, j in details:
        mask[i, j] = True
    return mask


def upcycled_components(cand: Side, ref: Side) -> dict[str, tuple[str, dict[str, str]]]:
    """Candidate expert components whose reference has a dense MLP instead: test them against it."""
    out = {}
    for stack in {c.split(".", 1)[0] for c in cand.comps}:
        dense = f"{stack}.mlp"
        if dense not in ref.comps:
            continue
        for comp, key in ((f"{stack}.experts", "experts"), (f"{stack}.shared_experts", "shared_experts")):
            if comp in cand.comps and comp not in ref.comps:
                out[comp] = (dense, {key: "mlp"})
    return out


def per_expert(prep: Prepared, name: str, parent: str, key_map: dict[str, str], ur: dict) -> dict:
    """Which experts descend from the dense MLP: each expert tested alone at the first mapped layer pair."""
    if not ur.get("layer_map"):
        return {"tested": False, "reason": "no layer pair mapped"}
    a, b, _ = ur["layer_map"][0]
    stack = name.split(".", 1)[0]
    width = _width(prep.ref, stack) or 0
    (ckey, rkey), = key_map.items()
    group, rgroup = prep.cand.comps[name].layers[a].get(ckey), prep.ref.comps[parent].layers[b].get(rkey)
    if group is None or rgroup is None:
        return {"tested": False, "reason": "no expert units in that layer"}
    experts = sorted({t.role.expert for part in group.parts for t in part if t.role.expert is not None})
    rows = []
    draws = prep.coords(stack, width)
    for e in experts:
        sub = UnitGroup(f"{ckey}.{e}", [[t for t in part if t.role.expert == e] for part in group.parts])
        if sub.n_units < MIN_GROUP_UNITS // 2 or any(not p for p in sub.parts):
            continue
        scores = best_match(prep.reference(name, b, rgroup, draws), prep.candidate(name, stack, a, sub, draws))
        ev = evidence([scores], [min(rgroup.n_units, prep.settings.ref_units) / rgroup.n_units])
        rows.append({"expert": e, "log10_p": round(ev.log10_p, 3), "matched_fraction": round(ev.matched_fraction, 4)})
    prep.drop_candidate_layer(name, a)
    cut = PAIR_ALPHA_LOG10 - math.log10(max(1, len(rows)))
    return {"tested": True, "candidate_layer": a, "reference_layer": b, "experts": rows,
            "from_parent": sum(1 for r in rows if r["log10_p"] <= cut), "significance_log10": round(cut, 3)}
