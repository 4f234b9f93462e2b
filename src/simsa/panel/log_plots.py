"""Training-log charts for the expert's page: loss or learning rate against steps or tokens, as inline SVG.

A run can log millions of points; the chart keeps each bucket's minimum and maximum (at most 4,000 points), so spikes
stay visible where plain thinning would hide them. Against tokens, each point's token count is interpolated from the
token series by step, within the steps the token series covers (no extrapolation). Series names pass through the
masker, since W&B and TensorBoard tags often carry a run or team name.
"""

from __future__ import annotations

import warnings
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from simsa.panel.blinding import Masker
from simsa.panel.training_log import Series, TrainingLog
from simsa.report.plots import GRID, INK, MUTED, PALETTE, to_inline_svg

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

MAX_POINTS = 4000


def downsample(x: np.ndarray, y: np.ndarray, limit: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most `limit` points: the minimum and the maximum of each of `limit / 2` equal index buckets, in order."""
    n = len(x)
    if n <= limit:
        return x, y
    buckets = limit // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep: list[int] = []
    for lo, hi in pairwise(edges.tolist()):
        if hi <= lo:
            continue
        a = lo + int(np.argmin(y[lo:hi]))
        b = lo + int(np.argmax(y[lo:hi]))
        keep.extend(sorted({a, b}))
    idx = np.asarray(keep)
    return x[idx], y[idx]


def _on_tokens(series: Series, tokens: Series) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(tokens.steps, kind="stable")
    steps, counts = tokens.steps[order], tokens.values[order]
    inside = (series.steps >= steps[0]) & (series.steps <= steps[-1])
    return np.interp(series.steps[inside], steps, counts), series.values[inside]


def log_plot_svg(log: TrainingLog, y: Literal["loss", "lr"], x: Literal["step", "tokens"] = "step",
                 masker: Masker | None = None) -> str:
    """An <svg> element for the log's loss or learning rate; "" when the log lacks the series (or token counts)."""
    name = log.loss if y == "loss" else log.lr
    series = log.series.get(name) if name else None
    if series is None or not len(series.values):
        return ""
    if x == "tokens":
        tokens = log.series.get(log.tokens) if log.tokens else None
        if tokens is None or not len(tokens.values):
            return ""
        xs, ys = _on_tokens(series, tokens)
        if not len(xs):
            return ""
        xlabel = masker.mask(tokens.name) if masker else tokens.name
    else:
        xs, ys = series.steps, series.values
        xlabel = "step"
    xs, ys = downsample(xs, ys)
    label = masker.mask(series.name) if masker else series.name
    rc: dict[RcKeyType, Any] = {
        "svg.fonttype": "none", "svg.hashsalt": f"log-{y}-{x}", "text.parse_math": False, "font.size": 10,
        "axes.edgecolor": GRID, "axes.labelcolor": INK, "xtick.color": MUTED, "ytick.color": INK,
        "axes.spines.top": False, "axes.spines.right": False}
    with warnings.catch_warnings(), matplotlib.rc_context(rc):
        warnings.filterwarnings("ignore", message=r".*[Mm]issing from (current )?font")
        fig = Figure(figsize=(7.2, 3.2))
        ax = fig.add_subplot()
        ax.plot(xs, ys, color=PALETTE[0] if y == "loss" else PALETTE[1], linewidth=1.0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(color=GRID, linewidth=0.7)
        ax.set_axisbelow(True)
        ax.ticklabel_format(axis="both", style="sci", scilimits=(-3, 4), useMathText=False)
        title = f"{label} / {xlabel}"
        ax.set_title(title, fontsize=9.5, color=INK, loc="left")
        return to_inline_svg(fig, title)
