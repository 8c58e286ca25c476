"""Speed of troop.engine.analytics.selection.selection_curves on the size the analytics issue names:
100 problems x 1,000 samples, a 30-point k grid, 200 replicates.

Run `python bench/selection.py [--problems 100] [--samples 1000] [--reps 5]`. Prints, per
answer distribution, the median wall and CPU seconds of one call, and the ratio to the
one-second target. CPU seconds are the honest figure on a shared machine: wall time grows
with whatever else runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from troop.engine.analytics.selection import ProblemAnswers, selection_curves


def synthetic(problems: int, samples: int, distinct: int | None, seed: int) -> list[ProblemAnswers]:
    """Answers drawn from a Zipf-like law (exponent 1.1) over `distinct` possible answers (a
    random 1..400 per problem when None), 10% of samples without an answer, answer "0"
    correct, scores that favour frequent answers a little."""
    rng = np.random.default_rng(seed)
    out = []
    for p in range(problems):
        m = distinct or int(rng.integers(1, 400))
        weights = 1.0 / np.arange(1, m + 1) ** 1.1
        labels = rng.choice(m, size=samples, p=weights / weights.sum())
        answers = [None if rng.random() < 0.1 else str(a) for a in labels]
        correct = np.array([a == "0" for a in answers])
        score = rng.normal(size=samples) - 0.3 * labels / m
        out.append(ProblemAnswers(f"bench/{p}", answers, correct, score, "0"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--points", type=int, default=30, help="k grid points (log-spaced)")
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5, help="timed calls per distribution")
    args = parser.parse_args()
    ks = np.unique(np.geomspace(1, args.samples, args.points).round().astype(int))
    print(
        f"{args.problems} problems x {args.samples} samples, {ks.size} distinct k "
        f"(of {args.points} log-spaced points), {args.replicates} replicates; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'answers per problem':>22} {'wall s':>8} {'cpu s':>8} {'cpu / 1 s':>10}")
    for label, distinct in (("1..400 (Zipf)", None), ("5 (Zipf)", 5), ("1000 (Zipf)", 1000)):
        problems = synthetic(args.problems, args.samples, distinct, seed=0)
        selection_curves(problems, ks, replicates=args.replicates)  # warm-up
        walls, cpus = [], []
        for _ in range(args.reps):
            w0, c0 = time.perf_counter(), time.process_time()
            selection_curves(problems, ks, replicates=args.replicates)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        print(f"{label:>22} {wall:8.2f} {cpu:8.2f} {cpu / 1.0:9.2f}x")


if __name__ == "__main__":
    main()
