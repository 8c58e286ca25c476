"""Time the analytics the TUI refreshes live: coverage at every k, the bootstrap band, both
forecasts and their backtest, for 500 problems x 10,000 samples (the paper's scale).

    python bench/analytics.py [--problems 500] [--samples 10000] [--reps 7]

Prints the median and spread of each stage, measured side by side in one run, and the
ratio of the whole refresh to a one-second budget.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from troop.engine.analytics import analysis, backtest, passk
from troop.engine.analytics.results import Refused
from troop.engine.analytics.results_curves import PassAtK


def _timed(fn: Callable[[], Any], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=500)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()

    # Per-problem success rates as repeated-sampling data look: many problems rarely solved.
    rng = np.random.default_rng(0)
    n = np.full(args.problems, args.samples, dtype=np.int64)
    c = rng.binomial(args.samples, rng.beta(0.3, 3.0, args.problems)).astype(np.int64)
    options = analysis.AnalysisOptions()
    ks = passk.k_grid(args.samples)

    def all_k() -> None:
        passk.mean_curve(n, c)

    def band() -> None:
        passk.coverage(n, c, ks, replicates=options.bootstrap, seed=options.seed)

    section: dict[str, Any] = {}
    # Passes among each problem's first m samples: hypergeometric, as for a random order.
    ms = backtest.prefixes(args.samples)
    prefix = np.stack([rng.hypergeometric(c, n - c, m) for _, m in ms]) if ms else None
    cov0, _ = analysis._coverage_section(n, c, len(n), options)
    assert isinstance(cov0, PassAtK)

    def back() -> None:
        if prefix is not None:
            section["backtest"] = backtest.backtest(
                args.samples,
                prefix,
                ms,
                cov0.pass_at_k[-1],
                cov0.low[-1],
                cov0.high[-1],
                options.confidence,
            )

    def refresh() -> None:
        # Exactly what analyse() runs on the verdict counts, after reading the session.
        passk.mean_curve(n, c)
        cov, boot = analysis._coverage_section(n, c, len(n), options)
        section["fit"] = analysis._fit_section(n, c, cov, boot, options, False)
        back()

    stages = {
        "coverage, every k (1..n)": all_k,
        f"coverage on grid + bootstrap ({options.bootstrap})": band,
        f"backtest ({len(ms)} prefixes x 2 laws)": back,
        "whole refresh (all k + band + fits + backtest)": refresh,
    }
    print(
        f"{args.problems} problems x {args.samples} samples, {len(ks)} grid points, "
        f"medians of {args.reps}"
    )
    medians = {}
    for name, fn in stages.items():
        times = _timed(fn, args.reps)
        medians[name] = statistics.median(times)
        print(
            f"  {name:48} {medians[name] * 1e3:8.1f} ms  (min {min(times) * 1e3:.1f}, "
            f"max {max(times) * 1e3:.1f})"
        )
    fit = section["fit"]
    for name, m in (("power_law", fit.power_law), ("beta_binomial", fit.beta_binomial)):
        if isinstance(m, Refused):
            print(f"  {name}: refused ({m.reason})")
            continue
        params = {k: round(v, 4) for k, v in m.parameters().items()}
        print(f"  {name}: {params}, rmse {m.rmse_curve:.4f}, {m.replicates} bootstrap refits")
    if "backtest" in section:
        print(f"  backtest: {section['backtest'].summary()}")
    whole = medians["whole refresh (all k + band + fits + backtest)"]
    print(f"whole refresh / 1 s budget: {whole:.3f}")


if __name__ == "__main__":
    main()
