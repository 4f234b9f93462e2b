"""The user review arena's pure logic: votes, Bradley–Terry fits with style control, intervals and rankings; the
balanced schedule; hygiene (identity leaks, duplicate prompts, anomalous raters); and robustness (vote drops,
rigging). No I/O beyond reading a vote file: the services hold the store and the entrants."""

from simsa.arena.anomaly import RaterTest, SurprisingVote, anomalous_raters
from simsa.arena.bt import BTFit, fit
from simsa.arena.intervals import Bootstrap, bootstrap, sandwich_cov
from simsa.arena.leak import Leak, LeakFilter
from simsa.arena.prompts import (
    Duplicate,
    PromptIndex,
    PromptKey,
    find_duplicate,
    normalise_prompt,
    prompt_key,
    similarity,
)
from simsa.arena.ratings import BASE, INIT, SCALE, Ranking, Rating, rank, to_elo
from simsa.arena.robustness import DropResult, RigResult, StrategyResult, rigging, vote_drop
from simsa.arena.schedule import PairBalance, Pick, ScheduleCounts, ScheduleReport, next_battle
from simsa.arena.style import STYLE_COVARIATES, StyleCounts, style_counts, style_diff
from simsa.arena.votes import OUTCOMES, Votes, count_diff, read_votes_csv

__all__ = [
    "BASE", "INIT", "OUTCOMES", "SCALE", "STYLE_COVARIATES",
    "BTFit", "Bootstrap", "DropResult", "Duplicate", "Leak", "LeakFilter", "PairBalance", "Pick", "PromptIndex",
    "PromptKey", "Ranking", "RaterTest", "Rating", "RigResult", "ScheduleCounts", "ScheduleReport", "StrategyResult",
    "StyleCounts", "SurprisingVote", "Votes",
    "anomalous_raters", "bootstrap", "count_diff", "find_duplicate", "fit", "next_battle", "normalise_prompt",
    "prompt_key", "rank", "read_votes_csv", "rigging", "sandwich_cov", "similarity", "style_counts", "style_diff",
    "to_elo", "vote_drop",
]
