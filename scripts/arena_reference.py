"""Reference ratings from LMArena's `arena-rank` for the arena statistics' equality test.

    python scripts/arena_reference.py make VOTES.csv         # write the fixed, seeded vote set (numpy only)
    python scripts/arena_reference.py VOTES.csv OUT.json     # ratings from arena-rank (needs arena_rank installed)

arena-rank pins its own jax/numpy, so it lives in a separate virtual environment and is never a dependency of simsa;
this script is the only place it is used. The JSON it writes is committed beside the votes (tests/data/arena/) and
tests/test_arena_bt.py checks simsa's ratings, sandwich bounds and style coefficients against it within 1e-6.

arena-rank's L-BFGS stops by default at ftol = gtol = 1e-9 on the mean loss, which leaves its ratings ~1e-3 Elo
from the exact maximum; the reference is computed with much tighter tolerances (`TIGHT`) so that it is the maximum
itself, and the default-tolerance ratings are recorded too, for the documentation's comparison.
"""

from __future__ import annotations

import csv
import json
import sys

import numpy as np

MODELS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
N_VOTES = 3000
SEED = 20251
STYLE = ("length", "headers", "lists", "bold")
TIGHT = {"max_iter": 100000, "ftol": 0.0, "gtol": 1e-13}


def make_votes(path: str) -> None:
    """A seeded vote set: 8 models, uneven pair counts, ties and both-bad votes, longer answers favoured."""
    rng = np.random.default_rng(SEED)
    k = len(MODELS)
    strength = np.linspace(-1.2, 1.0, k) + rng.normal(0, 0.15, k)
    weights = rng.uniform(0.3, 1.0, (k, k))  # uneven schedule, so reweighting matters
    pairs = [(i, j) for i in range(k) for j in range(k) if i != j]
    pw = np.array([weights[min(i, j), max(i, j)] for i, j in pairs])
    chosen = rng.choice(len(pairs), size=N_VOTES, p=pw / pw.sum())
    verbosity = rng.uniform(0.6, 1.6, k)  # some models write longer answers
    rows = []
    for c in chosen:
        i, j = pairs[c]
        length = np.round(rng.lognormal(np.log(300 * verbosity[[i, j]]), 0.5)).astype(int)
        headers = rng.poisson(1.2 * verbosity[[i, j]])
        lists = rng.poisson(3.0 * verbosity[[i, j]])
        bold = rng.poisson(2.0 * verbosity[[i, j]])
        logit = strength[i] - strength[j] + 0.8 * (length[0] - length[1]) / (length[0] + length[1] + 1)
        p = 1.0 / (1.0 + np.exp(-logit))
        u = rng.random()
        if u < 0.12:
            winner = "tie"
        elif u < 0.18:
            winner = "both_bad"
        else:
            winner = "model_a" if rng.random() < p else "model_b"
        rows.append([MODELS[i], MODELS[j], winner, length[0], length[1], headers[0], headers[1], lists[0], lists[1],
                     bold[0], bold[1]])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["model_a", "model_b", "winner", *(f"{s}_{side}" for s in STYLE for side in ("a", "b"))])
        out.writerows(rows)


def _plain(df, reweighted: bool, tight: bool) -> dict:
    from arena_rank.models.bradley_terry import BradleyTerry
    from arena_rank.utils.data_utils import PairDataset

    data = PairDataset.from_pandas(df, reweighted=reweighted)
    model = BradleyTerry(n_competitors=len(data.competitors), **(TIGHT if tight else {}))
    res = model.compute_ratings_and_cis(data, significance_level=0.05, ci_method="sandwich")
    return {"models": list(res["competitors"]), "rating": _list(res["ratings"]), "lower": _list(res["rating_lower"]),
            "upper": _list(res["rating_upper"]), "variance": _list(res["variances"])}


def _style(df, reweighted: bool, tight: bool) -> dict:
    from arena_rank.models.contextual_bradley_terry import ContextualBradleyTerry
    from arena_rank.utils.data_utils import ContextualPairDataset

    data = ContextualPairDataset.from_pandas(df, feature_cols=list(STYLE), reweighted=reweighted)
    model = ContextualBradleyTerry(n_competitors=len(data.competitors), n_features=len(STYLE),
                                   **(TIGHT if tight else {}))
    res = model.compute_ratings_and_cis(data, significance_level=0.05, ci_method="sandwich")
    return {"models": list(res["competitors"]), "rating": _list(res["ratings"]), "lower": _list(res["rating_lower"]),
            "upper": _list(res["rating_upper"]), "variance": _list(res["variances"]), "coef": _list(res["coeffs"])}


def _list(x) -> list[float]:  # type: ignore[no-untyped-def]
    return [float(v) for v in np.asarray(x)]


def reference(votes_csv: str, out_json: str) -> None:
    import arena_rank  # noqa: F401 - fail early with a clear ImportError
    import pandas as pd

    df = pd.read_csv(votes_csv)
    for s in STYLE:  # the style covariate per battle: (a - b) / (a + b + 1), as FastChat and LMArena compute it
        a, b = df[f"{s}_a"].astype(float), df[f"{s}_b"].astype(float)
        df[s] = (a - b) / (a + b + 1.0)
    result = {
        "source": "arena-rank 0.1.1 (LMArena), sandwich intervals at significance 0.05, scale 400, base 10, init 1000",
        "tolerances": TIGHT,
        "plain": _plain(df, False, True),
        "plain_reweighted": _plain(df, True, True),
        "style": _style(df, False, True),
        "style_reweighted": _style(df, True, True),
        "default_tolerance": {"plain": _plain(df, False, False), "style_reweighted": _style(df, True, False)},
    }
    with open(out_json, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)
        fh.write("\n")


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "make":
        make_votes(argv[1])
        return 0
    if len(argv) == 2:
        reference(argv[0], argv[1])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
