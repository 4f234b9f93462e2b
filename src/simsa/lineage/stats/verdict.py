"""Verdict rules (pure). Documented in docs/lineage.md; the thresholds travel with every result.

Per component:
- ``identical``: every candidate tensor of the component equals a reference tensor (bit for bit, or after rounding
  both to bf16 so a dtype cast cannot hide a copy) and the component has the same tensors as the reference's;
- every p-value below is the component's own, Šidák-corrected for the number of components tested;
- ``derived``: the hidden-unit test gives −log10 p ≥ ``derived_log10`` (default 6) *and* at least ``min_matched``
  (default 10 %) of the sampled units have an individually recognisable counterpart, or some tensors are identical.
  A significant but diffuse similarity (few units recognisable) is what parts trained from scratch inside a shared
  residual basis show — a new output head on a reused embedding — and is reported as inconclusive, not derived;
- ``independent``: the test ran with enough units and gives −log10 p < ``independent_log10`` (default 2);
- ``inconclusive``: anything between, or no unit-level test was possible (norm gains, biases, shape mismatch).

Overall: ``identical`` when every tensor of the candidate is identical to the reference and nothing is missing on
either side; ``derived`` when any component is identical or derived. Otherwise the overall p-value decides: the
smallest component p-value, Šidák-corrected for the number of tested components. ``independent`` when it is above
``10^-independent_log10`` (default p ≥ 0.01) and at least one tested component had enough units; ``inconclusive``
when it is below (something is significant, but not enough, or not recognisably, to call derived) or nothing could
be tested. Requiring *every* component to pass on its own would make "inconclusive" grow with the number of
components (each one a separate chance at p < 0.01); the corrected minimum keeps it at about 1 % on independent
pairs whatever the architecture. Tokenizer and architecture similarity never enter.
"""

from __future__ import annotations

from dataclasses import dataclass

from simsa.lineage.stats.pvalues import sidak_log10

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
            "correction": "a component's p-value is Šidák-corrected for the number of components tested; the "
                          "overall p-value is the corrected smallest",
            "identical_when": "every tensor equal bit for bit or at bf16 precision",
        }


def component_verdict(
    log10_p: float | None, units: int, identical_share: float, complete: bool, th: Thresholds,
    matched_fraction: float = 1.0, tested_components: int = 1,
) -> tuple[str, str]:
    """Verdict and the rule that produced it, for one component.

    ``tested_components`` is how many components of the pair were tested: the component's p-value is Šidák-corrected
    for it before the thresholds apply, so one component's verdict means the same whatever the architecture (with
    four components, one at p = 0.008 is 0.032 corrected: no evidence either way).
    """
    if identical_share >= 1.0 and complete:
        return IDENTICAL, "every tensor identical to the reference's"
    if identical_share > 0:
        return DERIVED, f"{identical_share:.0%} of its tensors are identical to reference tensors"
    if log10_p is None:
        return INCONCLUSIVE, "no hidden-unit test applies to this component (identity checked only)"
    lab = "-log10 p"
    if tested_components > 1:
        log10_p = sidak_log10(log10_p, tested_components)
        lab = f"-log10 p (Šidák over {tested_components} components)"
    if -log10_p >= th.derived_log10 and matched_fraction >= th.min_matched:
        return DERIVED, (f"{lab} = {-log10_p:.1f} >= {th.derived_log10:g}; {matched_fraction:.0%} of units have a "
                         "counterpart")
    if -log10_p >= th.derived_log10:
        return INCONCLUSIVE, (f"significant ({lab} = {-log10_p:.1f}) but diffuse: only {matched_fraction:.1%} of "
                              f"units have a recognisable counterpart (< {th.min_matched:.0%}); typical of parts "
                              "trained from scratch in a shared residual basis, not of copied weights")
    if -log10_p < th.independent_log10 and units >= th.min_units:
        return INDEPENDENT, f"{lab} = {-log10_p:.2f} < {th.independent_log10:g} over {units} units"
    if -log10_p < th.independent_log10:
        return INCONCLUSIVE, f"only {units} units could be tested (< {th.min_units})"
    return INCONCLUSIVE, f"{th.independent_log10:g} <= {lab} = {-log10_p:.2f} < {th.derived_log10:g}"


def overall_verdict(verdicts: dict[str, str], untestable: set[str], all_identical: bool, overall_log10: float = 0.0,
                    th: Thresholds | None = None, units: dict[str, int] | None = None) -> tuple[str, str]:
    """Overall verdict and its rule. ``untestable`` components (identity only) cannot block "independent".

    ``overall_log10`` is the corrected overall p-value (the smallest component p-value, Šidák over the tested ones);
    ``units`` the units each tested component's test used.
    """
    th = th or Thresholds()
    if all_identical:
        return IDENTICAL, "every tensor of the candidate is identical to the reference and none is missing"
    hit = sorted(c for c, v in verdicts.items() if v in (IDENTICAL, DERIVED))
    if hit:
        return DERIVED, "derived components: " + ", ".join(hit)
    tested = sorted(c for c in verdicts if c not in untestable)
    if not tested:
        return INCONCLUSIVE, "no component could be tested"
    units = units or {}
    if -overall_log10 >= th.independent_log10:
        open_ = [c for c in tested if verdicts[c] == INCONCLUSIVE]
        return INCONCLUSIVE, (f"corrected overall -log10 p = {-overall_log10:.2f} >= {th.independent_log10:g} over "
                              f"{len(tested)} tested components, yet no component is derived"
                              + (f" (undecided: {', '.join(open_)})" if open_ else ""))
    if not any(units.get(c, th.min_units) >= th.min_units for c in tested):
        return INCONCLUSIVE, f"every tested component had fewer than {th.min_units} units"
    return INDEPENDENT, (f"corrected overall -log10 p = {-overall_log10:.2f} < {th.independent_log10:g} over "
                         f"{len(tested)} tested components: " + ", ".join(tested))
