"""The expert review panel: rubric scoring, agreement statistics, aggregation, submitted documents."""

from __future__ import annotations

import importlib
from typing import Any

# Re-exported names loaded on first use: the statistics need numpy and scipy, which pages and commands that only
# touch rubrics or documents should not pay for at import. (The function `aggregate` is not among them: the name
# is its module's; import it as `from simsa.panel.aggregate import aggregate`.)
_LAZY = {
    **dict.fromkeys(("LEVELS", "AgreementReport", "AlphaEstimate", "Coincidences", "IccResult", "Level",
                     "RaterDeviation", "RaterSeverity", "RatingTable", "agreement_report", "alpha_interval",
                     "coincidence_matrix", "deviation_from_panel", "icc", "icc_unavailable", "krippendorff_alpha",
                     "read_long_table", "severities"), "agreement"),
    **dict.fromkeys(("RULES", "Aggregate", "Rule", "SeverityAdjustment", "severity_adjusted", "winsorised_sd"),
                    "aggregate"),
}

__all__ = [*_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
