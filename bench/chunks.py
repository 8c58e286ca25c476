"""What handing work out in chunks costs: the same N·P samples drawn under the fixed policy
(one prompt evaluation per problem) and under an adaptive policy that never stops a problem
(one prompt evaluation per chunk), for several chunk sizes.

Run `python bench/chunks.py [--problems arithmetic:8:3] [--samples 16] [--parallel 8]
[--max-tokens 32] [--chunks 4,16] [--reps 3]`. Runs are interleaved across reps so a change in
the machine's load hits every configuration alike; medians are printed. The default model ends
arithmetic samples after ~20 tokens, the worst case for chunking: the shorter the samples, the
larger a prompt evaluation's share.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from troop.engine.events import Recorder
from troop.engine.policy import PolicySpec
from troop.engine.run import execute, prepare
from troop.engine.settings import RunSettings
from troop.engine.storage.session import Session


def one_run(
    problems: str, samples: int, parallel: int, max_tokens: int, policy: PolicySpec
) -> dict[str, float]:
    """Wall time, samples and prompt evaluations of one run into a fresh session."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.sqlite"
        settings = RunSettings(
            session=path,
            problems=problems,
            samples=samples,
            parallel=parallel,
            max_tokens=max_tokens,
            policy=policy,
        )
        prep = prepare(settings)
        try:
            summary = execute(prep, Recorder())
        finally:
            prep.close()
        with Session.open(path) as s:
            n, wall = s.conn.execute("SELECT COUNT(*), SUM(wall_s) FROM prompt_evals").fetchone()
    return {
        "wall_s": summary.wall_s,
        "samples": summary.samples,
        "evals": n,
        "eval_s": wall,
        "tokens": summary.completion_tokens,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--problems", default="arithmetic:8:3")
    ap.add_argument("--samples", type=int, default=16, help="N, samples per problem")
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--max-tokens", default="32", help="comma list")
    ap.add_argument("--chunks", default="4,16", help="comma list of chunk sizes")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    # min_votes above any problem's cap: nothing ever stops, so every policy draws exactly N*P
    # samples and only the order (and the prompt evaluations it needs) differ.
    never = 10**9
    configs = [("fixed", PolicySpec())] + [
        (f"chunk {c}", PolicySpec("until-consistent", chunk=c, min_votes=never, cap=1.0))
        for c in (int(x) for x in args.chunks.split(","))
    ]
    print(
        f"{args.problems}, N={args.samples}, parallel {args.parallel}, reps {args.reps} (medians)"
    )
    print(
        f"{'max tok':>7} {'config':>9} {'samples':>7} {'evals':>5} {'eval s':>7} "
        f"{'wall s':>7} {'wall/fixed':>10} {'tok/s':>7}"
    )
    for max_tokens in (int(x) for x in args.max_tokens.split(",")):
        results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in configs}
        for _ in range(args.reps):
            for name, spec in configs:
                results[name].append(
                    one_run(args.problems, args.samples, args.parallel, max_tokens, spec)
                )
        base = statistics.median(r["wall_s"] for r in results["fixed"])
        for name, _ in configs:
            rs = results[name]

            def med(key: str, rs: list[dict[str, float]] = rs) -> float:
                return statistics.median(r[key] for r in rs)

            print(
                f"{max_tokens:>7} {name:>9} {med('samples'):>7.0f} {med('evals'):>5.0f} "
                f"{med('eval_s'):>7.2f} {med('wall_s'):>7.2f} {med('wall_s') / base:>10.2f} "
                f"{med('tokens') / med('wall_s'):>7.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
