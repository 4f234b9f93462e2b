"""Verdict rules (pure). Documented in docs/lineage.md; the thresholds travel with every result.

Per component:
- ``identical``: every candidate tensor of the component equals a reference tensor (bit for bit, or after rounding
  both to bf16 so a dtype cast cannot hide a copy) and the component has the same tensors as the reference's;
- ``derived``: the hidden-unit test gives −log10 p ≥ ``derived_log10`` (default 6) *and* at least ``min_matched``
  (default 10 %) of the sampled units have an individually recognisable counterpart, or some tensors are identical.
  A significant but diffuse similarity (few units recognisable) is what parts trained from scratch inside a shared
  residual basis show — a new output head on a reused embedding — and is reported as inconclusive, not derived;
- ``independent``: the test ran with enough units and gives −log10 p < ``independent_log10`` (default 2);
- ``inconclusive``: anything between, or no unit-level test was possible (norm gains, biases, shape mismatch).

Overall: ``identical`` when every tensor of the candidate is identical to the reference and nothing is missing on
either side; ``derived`` when any component is identical or derived; ``independent`` when every tested component is
independent; otherwise ``inconclusive``. Tokenizer and architecture similarity never enter.
"""

from __future__ import annotations

from dataclasses import dataclass

IDENTICAL, DERIVED, INDEPENDENT, INCONCLUSIVE = "identical", "derived", "independent", "inconclusive"


@dataclass(frozen=True)
class Thresholds:
    derived_log10: float = 6.0  # derived when −log10 p ≥ this
    independent_log10: float = 2.0  # independent when −log10 p < this (and the test had units to work with)
    min_units: int = 16  # a test on fewer candidate units is not strong enough to call "independent"
    min_matched: float = 0.10  # share of units with a recognisable counterpart needed to call "derived"

    def as_dict(self) -> dict:
        return {
            "derived_when": f"-log10_p >= {self.derived_log10:g} and matched_fraction >= {self.min_matched:g}",
            "independent_when": f"-log10_p < {self.independent_log10:g} with at least {self.min_units} units tested",
            "identical_when": "every tensor equal bit for bit or at bf16 precision",
        }


def component_verdict(
    log10_p: float | None, units: int, identical_share: float, complete: bool, th: Thresholds,
    matched_fraction: float = 1.0,
) -> tuple[str, str]:
    """Verdict and the rule that produced it, for one component."""
    if identical_share >= 1.0 and complete:
        return IDENTICAL, "every tensor identical to the reference's"
    if identical_share > 0:
        return DERIVED, f"{identical_share:.0%} of its tensors are identical to reference tensors"
    if log10_p is None:
        return INCONCLUSIVE, "no hidden-unit test applies to this component (identity checked only)"
    if -log10_p >= th.derived_log10 and matched_fraction >= th.min_matched:
        return DERIVED, (f"-log10 p = {-log10_p:.1f} >= {th.derived_log10:g}; {matched_fraction:.0%} of units have a "
                         "counterpart")
    if -log10_p >= th.derived_log10:
        return INCONCLUSIVE, (f"significant (-log10 p = {-log10_p:.1f}) but diffuse: only {matched_fraction:.1%} of "
                              f"units have a recognisable counterpart (< {th.min_matched:.0%}); typical of parts "
                              "trained from scratch in a shared residual basis, not of copied weights")
    if -log10_p < th.independent_log10 and units >= th.min_units:
        return INDEPENDENT, f"-log10 p = {-log10_p:.2f} < {th.independent_log10:g} over {units} units"
    if -log10_p < th.independent_log10:
        return INCONCLUSIVE, f"only {units} units could be tested (< {th.min_units})"
    return INCONCLUSIVE, f"{th.independent_log10:g} <= -log10 p = {-log10_p:.2f} < {th.derived_log10:g}"


def overall_verdict(verdicts: dict[str, str], untestable: set[str], all_identical: bool) -> tuple[str, str]:
    """Overall verdict and its rule. ``untestable`` components (identity only) cannot block "independent"."""
    if all_identical:
        return IDENTICAL, "every tensor of the candidate is identical to the reference and none is missing"
    hit = sorted(c for c, v in verdicts.items() if v in (IDENTICAL, DERIVED))
    if hit:
        return DERIVED, "derived components: " + ", ".join(hit)
    tested = {c: v for c, v in verdicts.items() if c not in untestable}
    if tested and all(v == INDEPENDENT for v in tested.values()):
        return INDEPENDENT, "every tested component independent: " + ", ".join(sorted(tested))
    open_ = sorted(c for c, v in tested.items() if v == INCONCLUSIVE)
    return INCONCLUSIVE, ("undecided components: " + ", ".join(open_)) if open_ else "no component could be tested"
