"""What a budget policy buys: the same model, problems, seed and total budget N·P sampled under
`fixed`, `until-solved` and `promising`, with the problems each solves.

Run `python bench/policy.py [--problems humaneval] [--limit 10] [--samples 8] [--seeds 0,1,2]
[--max-tokens 192] [--parallel 8] [--policies fixed,until-solved,promising]`. Every run
verifies as it samples (the problems' default verifier, rlimits sandbox), into a fresh session.
Prints, per policy, problems solved at each seed, their mean with a bootstrap interval over
seeds, the paired difference from `fixed` (same seed, so the same samples up to the point the
policies diverge) with its interval, and the samples and wall time spent. Runs are interleaved
across seeds so a change in the machine's load hits every policy alike.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from troop.engine.control import RunControl
from troop.engine.events import Recorder
from troop.engine.policy import POLICIES, PolicySpec
from troop.engine.run import execute, prepare
from troop.engine.settings import RunSettings
from troop.engine.storage.session import Session
from troop.engine.verify import Verification
from troop.verifiers import registry
from troop.verifiers.sandbox import Sandbox

BOOTSTRAP = 2000  # resamples of the seeds for each interval


def one_run(args: argparse.Namespace, policy: str, seed: int, sandbox: Sandbox) -> dict[str, float]:
    """Problems solved, samples drawn and wall seconds of one verified run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.sqlite"
        settings = RunSettings(
            session=path,
            problems=args.problems,
            limit=args.limit,
            samples=args.samples,
            parallel=args.parallel,
            max_tokens=args.max_tokens,
            seed=seed,
            policy=PolicySpec(policy),
        )
        t0 = time.perf_counter()
        prep = prepare(settings)
        fmt = next(iter(prep.problems.values())).format
        verifier = registry.for_format(fmt)
        prep.session.set_meta("verifier", {"name": verifier.name, "version": verifier.version})
        verification = Verification(prep.session, verifier, sandbox, Recorder())
        try:
            summary = execute(prep, Recorder(), RunControl(args.samples), verification)
        finally:
            verification.close(wait=True)
            prep.close()
        wall = time.perf_counter() - t0
        with Session.open(path) as s:
            solved = s.conn.execute(
                "SELECT COUNT(DISTINCT problem_id) FROM verdicts WHERE status = 'pass'"
            ).fetchone()[0]
            problems = s.conn.execute("SELECT COUNT(*) FROM problems").fetchone()[0]
    return {"solved": solved, "problems": problems, "samples": summary.stored, "wall_s": wall}


def interval(values: list[float], rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean over seeds."""
    data = np.asarray(values, dtype=np.float64)
    draws = rng.integers(0, len(data), size=(BOOTSTRAP, len(data)))
    low, high = np.percentile(data[draws].mean(axis=1), [2.5, 97.5])
    return float(low), float(high)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--problems", default="humaneval")
    ap.add_argument("--limit", type=int, default=10, help="keep the first N problems")
    ap.add_argument("--samples", type=int, default=8, help="N, samples per problem")
    ap.add_argument("--seeds", default="0,1,2", help="comma list of session seeds")
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--policies", default="fixed,until-solved,promising")
    ap.add_argument("--workers", type=int, default=2, help="sandbox workers for verification")
    args = ap.parse_args()
    policies = args.policies.split(",")
    for name in policies:
        if name not in POLICIES or name == "until-consistent":
            ap.error(f"--policies: {name!r} is not fixed, until-solved or promising")
    seeds = [int(x) for x in args.seeds.split(",")]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in policies}
    with Sandbox(args.workers, tier="rlimits") as sandbox:
        for seed in seeds:
            for name in policies:
                results[name].append(one_run(args, name, seed, sandbox))
                r = results[name][-1]
                print(
                    f"  seed {seed} {name:>12}: {r['solved']:.0f}/{r['problems']:.0f} solved, "
                    f"{r['samples']:.0f} samples, {r['wall_s']:.0f} s",
                    flush=True,
                )
    rng = np.random.default_rng(0)
    problems = results[policies[0]][0]["problems"]
    print(
        f"\n{args.problems} (first {args.limit}: {problems:.0f} problems), N={args.samples}, "
        f"budget {args.samples * problems:.0f} samples, max tokens {args.max_tokens}, "
        f"seeds {args.seeds}"
    )
    print(
        f"{'policy':>12} {'solved per seed':>16} {'mean':>5} {'95% interval':>13} "
        f"{'vs fixed':>8} {'95% interval':>13} {'samples':>7} {'wall s':>6}"
    )
    base = [r["solved"] for r in results.get("fixed", [])]
    for name in policies:
        solved = [r["solved"] for r in results[name]]
        low, high = interval(solved, rng)
        diff = "–"
        diff_ci = ""
        if base and name != "fixed":
            deltas = [a - b for a, b in zip(solved, base, strict=True)]
            dl, dh = interval(deltas, rng)
            diff, diff_ci = f"{statistics.mean(deltas):+.2f}", f"[{dl:+.2f}, {dh:+.2f}]"
        per_seed = ",".join(f"{s:.0f}" for s in solved)
        print(
            f"{name:>12} {per_seed:>16} {statistics.mean(solved):>5.2f} "
            f"{f'[{low:.2f}, {high:.2f}]':>13} {diff:>8} {diff_ci:>13} "
            f"{statistics.mean(r['samples'] for r in results[name]):>7.0f} "
            f"{statistics.mean(r['wall_s'] for r in results[name]):>6.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
