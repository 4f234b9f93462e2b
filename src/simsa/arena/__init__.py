"""The user review arena: votes, Bradley–Terry fits with style control, intervals and rankings."""

from simsa.arena.bt import BTFit, fit
from simsa.arena.votes import OUTCOMES, Votes, read_votes_csv

__all__ = [
    "OUTCOMES",
    "BTFit",
    "Votes",
    "fit",
    "read_votes_csv",
]
