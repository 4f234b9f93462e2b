"""The user review arena: votes, Bradley–Terry fits with style control, intervals and rankings."""

from simsa.arena.bt import BTFit, fit
from simsa.arena.intervals import Bootstrap, bootstrap, sandwich_cov
from simsa.arena.ratings import BASE, INIT, SCALE, Ranking, Rating, rank, to_elo
from simsa.arena.style import STYLE_COVARIATES, StyleCounts, style_counts, style_diff
from simsa.arena.votes import OUTCOMES, Votes, read_votes_csv

__all__ = [
    "BASE",
    "INIT",
    "OUTCOMES",
    "SCALE",
    "STYLE_COVARIATES",
    "BTFit",
    "Bootstrap",
    "Ranking",
    "Rating",
    "StyleCounts",
    "Votes",
    "bootstrap",
    "fit",
    "rank",
    "read_votes_csv",
    "sandwich_cov",
    "style_counts",
    "style_diff",
    "to_elo",
]
