"""Arena statistics at scale: 1 M synthetic votes over 20 entrants.

    python benchmarks/arena_bt.py [--votes 1000000] [--models 20] [--rounds 1000] [--threads 2] [--json]

1. Plain Bradley–Terry: the fit plus `--rounds` bootstrap rounds (goal ≤ 30 s on 2 cores).
2. Style-controlled fit (four covariates, z-scored, FastChat's penalty) plus sandwich intervals (goal ≤ 60 s).
Each figure is wall-clock seconds in this process, after the votes are generated (generation is timed apart);
peak RSS is the process's maximum resident set. `--threads` caps the BLAS/OpenMP threads (set before numpy loads).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np

    from simsa.arena import Votes, bootstrap, fit, rank, sandwich_cov
    from simsa.arena.votes import count_diff

    figures: dict[str, float | int] = {"votes": args.votes, "models": args.models, "rounds": args.rounds,
                                       "threads": args.threads}
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    k, n = args.models, args.votes
    theta = np.linspace(-1.5, 1.5, k)
    verbosity = rng.uniform(0.5, 2.0, k)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    lengths = rng.lognormal(np.log(300 * verbosity[[a, b]]), 0.4)
    style = np.column_stack([count_diff(lengths[0], lengths[1]), count_diff(*rng.poisson(1.5, (2, n))),
                             count_diff(*rng.poisson(4.0, (2, n))), count_diff(*rng.poisson(2.0, (2, n)))])
    p = 1 / (1 + np.exp(-(theta[a] - theta[b] + 1.0 * style[:, 0])))
    kind = np.where(rng.random(n) < p, 0, 1).astype(np.int8)
    kind[rng.random(n) < 0.15] = 2
    kind[rng.random(n) < 0.05] = 3
    votes = Votes(tuple(f"entrant-{i:02d}" for i in range(k)), a, b, kind, style)
    figures["generate_s"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    plain = fit(votes)
    figures["plain_fit_s"] = round(time.perf_counter() - t0, 3)
    t1 = time.perf_counter()
    boot = bootstrap(votes, args.rounds, seed=1, start=plain)
    figures["plain_bootstrap_s"] = round(time.perf_counter() - t1, 2)
    figures["plain_total_s"] = round(time.perf_counter() - t0, 2)
    figures["plain_separated_rounds"] = boot.separated

    t0 = time.perf_counter()
    styled = fit(votes, style=True, reg=0.5 / n)
    figures["style_fit_s"] = round(time.perf_counter() - t0, 2)
    figures["style_iterations"] = styled.iterations
    t1 = time.perf_counter()
    cov = sandwich_cov(votes, styled)
    figures["style_sandwich_s"] = round(time.perf_counter() - t1, 2)
    figures["style_total_s"] = round(time.perf_counter() - t0, 2)
    assert np.all(np.isfinite(cov)) and styled.coef is not None
    figures["style_length_coef"] = round(float(styled.coef[0]), 4)

    t0 = time.perf_counter()
    rank(votes, style=True, method="sandwich")
    figures["rank_style_sandwich_s"] = round(time.perf_counter() - t0, 2)
    figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"{n:,} votes over {k} entrants (generated in {figures['generate_s']} s), {args.threads} threads")
        print(f"plain BT: fit {figures['plain_fit_s']} s + {args.rounds} bootstrap rounds "
              f"{figures['plain_bootstrap_s']} s = {figures['plain_total_s']} s (goal ≤ 30 s)")
        print(f"style-controlled: fit {figures['style_fit_s']} s ({styled.iterations} Newton steps) + sandwich "
              f"{figures['style_sandwich_s']} s = {figures['style_total_s']} s (goal ≤ 60 s); "
              f"rank(style, sandwich) end to end {figures['rank_style_sandwich_s']} s")
        print(f"peak RSS {figures['peak_rss_mib']} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
