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
    **dict.fromkeys(("Review", "check_review", "read_content", "rubric_sha256", "total"), "rubric"),
    **dict.fromkeys(("Conflict", "Declaration", "conflict_map", "conflicts_with", "team_names"), "conflicts"),
    **dict.fromkeys(("Balanced", "balance"), "balance"),
    **dict.fromkeys(("MAX_BYTES", "Kind", "Purpose", "Sniffed", "safe_filename", "sniff"), "files"),
    **dict.fromkeys(("Masker",), "blinding"),
    **dict.fromkeys(("render_markdown",), "markdown_view"),
    **dict.fromkeys(("identifying_mentions", "page_count", "page_texts", "render_page"), "pdf_pages"),
    **dict.fromkeys(("LogSummary", "Series", "TrainingLog", "parse_training_log"), "training_log"),
    **dict.fromkeys(("log_plot_svg",), "log_plots"),
}

__all__ = [*_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
