"""The statistics of the lineage test, pure numpy/scipy (no file access): the unit correspondence test and its null
(``correspondence``), the residual-basis alignment (``alignment``), the p-values and their combinations
(``pvalues``), the coordinate audit that checks the null's exchangeability (``exchangeability``), layer localisation
(``localise``), verdict rules (``verdict``), multi-parent attribution (``attribution``), the naive statistics people
quote (``naive``) and the seeded sampling shared by fingerprints and comparisons (``sampling``).
"""

from simsa.lineage.stats.alignment import Alignment, LazyRows, fit_alignment
from simsa.lineage.stats.attribution import attribute
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
    standardise_candidate,
)
from simsa.lineage.stats.exchangeability import Auditor, CoordinateAudit, StackAudit, audit, clean_coordinates
from simsa.lineage.stats.localise import combine_layers, monotone_map
from simsa.lineage.stats.pvalues import cauchy_log10, monte_carlo_p, sidak_log10, t_log10_sf
from simsa.lineage.stats.sampling import sample_rng, sample_units
from simsa.lineage.stats.verdict import Thresholds, component_verdict, overall_verdict

__all__ = [
    "Alignment",
    "Auditor",
    "CoordinateAudit",
    "CoordinateDraws",
    "LazyRows",
    "PairEvidence",
    "SamplingSettings",
    "StackAudit",
    "Thresholds",
    "attribute",
    "audit",
    "best_match",
    "candidate_on_draws",
    "cauchy_log10",
    "clean_coordinates",
    "combine_layers",
    "component_verdict",
    "coordinate_draws",
    "evidence",
    "fit_alignment",
    "monotone_map",
    "monte_carlo_p",
    "overall_verdict",
    "paired_match",
    "prepare_candidate",
    "prepare_reference",
    "sample_rng",
    "sample_units",
    "sidak_log10",
    "standardise_candidate",
    "t_log10_sf",
]
