"""The report's tables (per problem, coverage curve) as formatted rows and as raw CSV."""

# Cells are formatted from the analysis' values as they are (troop.engine.numbers); no
# figure is derived here. CSV cells stay raw numbers, for machines.

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from troop.engine.analytics.results import Analysis, Judged
from troop.engine.analytics.results_cost import CostAxes
from troop.engine.analytics.results_curves import CoverageRefused
from troop.engine.numbers import MISSING, count, fraction


def headline_indices(k: Sequence[float], n: int) -> list[int]:
    """Positions in the coverage curve to quote: k = 1, 10, 100, ... and the budget n."""
    wanted = {10**p for p in range(0, 12) if 10**p <= n} | {n}
    return [i for i, kk in enumerate(k) if kk in wanted]


PROBLEM_COLUMNS = (
    "problem",
    "samples",
    "verified",
    "correct",
    "pass@1",
    "first pass",
    "status",
    "verdicts",
    "by temperature (correct/n)",
    "completion tokens",
    "mean log-prob (nats)",
)
PROBLEM_NUMERIC = (False, True, True, True, True, True, False, False, False, True, True)


def _counts(d: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items()))


def problem_rows(analysis: Analysis) -> list[tuple[str, ...]]:
    """One formatted row per problem, in the session's order."""
    rows: list[tuple[str, ...]] = []
    for p in analysis.problems:
        temps = ", ".join(
            f"T={t}: {v.correct}/{v.n}"
            for t, v in sorted(p.by_temperature.items(), key=lambda kv: kv[0])
        )
        rows.append(
            (
                str(p.problem_id),
                count(p.n),
                count(p.verified),
                count(p.correct),
                fraction(p.pass_at_1),
                count(p.first_pass),
                str(p.status),
                _counts(p.statuses),
                temps,
                count(p.completion_tokens),
                MISSING if p.mean_logprob is None else f"{p.mean_logprob:.2f}",
            )
        )
    return rows


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def problems_csv(analysis: Analysis) -> str:
    """The per-problem table with raw (unformatted) values, one row per problem."""
    temps = sorted({t for p in analysis.problems for t in p.by_temperature})
    statuses = sorted({s for p in analysis.problems for s in p.statuses})
    header = [
        "problem",
        "n",
        "verified",
        "correct",
        "pass_at_1",
        "first_pass",
        "status",
        "completion_tokens",
        "mean_logprob",
    ]
    header += [f"status_{s}" for s in statuses]
    header += [f"{field}_t{t}" for t in temps for field in ("n", "correct")]
    rows = []
    for p in analysis.problems:
        row: list[Any] = [
            p.problem_id,
            p.n,
            p.verified,
            p.correct,
            p.pass_at_1,
            "" if p.first_pass is None else p.first_pass,
            p.status,
            p.completion_tokens,
            "" if p.mean_logprob is None else p.mean_logprob,
        ]
        row += [p.statuses.get(s, 0) for s in statuses]
        for t in temps:
            cell = p.by_temperature.get(t) or Judged(n=0, correct=0)
            row += [cell.n, cell.correct]
        rows.append(row)
    return _csv(header, rows)


def cost_columns(axes: CostAxes | None) -> tuple[tuple[str, tuple[float | None, ...]], ...]:
    """The cost axes beside a coverage curve, by name (the numbers' axis names), in the
    order the CSV and the plots list them; each empty before coverage has a k."""
    if axes is None:
        axes = CostAxes(samples=(), tokens=(), wall_s=(), usd=(), flops=())
    return (
        ("tokens", axes.tokens),
        ("flops", axes.flops),
        ("usd", axes.usd),
        ("wall_s", axes.wall_s),
    )


def coverage_csv(analysis: Analysis, label: str | None = None) -> str:
    """The coverage curve: k, pass@k, band, and the cost of drawing k samples per problem."""
    cov = analysis.coverage
    if isinstance(cov, CoverageRefused):
        return _csv(["refused"], [[cov.reason]])
    columns = [(name, xs) for name, xs in cost_columns(analysis.cost.axes) if len(xs) == len(cov.k)]
    header = (
        (["session"] if label is not None else [])
        + ["k", "pass_at_k", "low", "high"]
        + [f"cost_{name}" for name, _ in columns]
    )
    rows = []
    for i, k in enumerate(cov.k):
        row: list[Any] = [k, cov.pass_at_k[i], cov.low[i], cov.high[i]]
        row += [xs[i] for _, xs in columns]
        rows.append(([label] if label is not None else []) + row)
    return _csv(header, rows)
