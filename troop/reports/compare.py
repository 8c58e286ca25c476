"""A comparison report of several sessions on the same problems, as blocks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from troop.engine.analytics.results import Analysis, Comparison
from troop.engine.analytics.results_curves import CoverageRefused, PassAtK, SolvedVsSpent
from troop.engine.numbers import MISSING, count, dollars, duration, fraction, interval, si
from troop.reports import plots
from troop.reports.blocks import Document, Heading, Image, Para, Table
from troop.reports.document import quantisation, shown, verifier_name
from troop.reports.tables import headline_indices


def labels(comparison: Comparison) -> list[str]:
    """One short, distinct name per session: the comparison's label, with the session file's
    name added where two labels would otherwise read the same."""
    names = [str(x) for x in comparison.labels]
    stems = [Path(str(p)).stem for p in comparison.sessions]
    out = []
    for i, name in enumerate(names):
        clash = names.count(name) > 1
        out.append(f"{name} ({stems[i]})" if clash else name)
    if len(set(out)) < len(out):  # same model and same file name in different folders
        out = [f"{i + 1}: {name}" for i, name in enumerate(out)]
    return out


def _sessions_table(analyses: Sequence[Analysis], names: list[str]) -> Table:
    rows = []
    for a, name in zip(analyses, names, strict=True):
        s, c, cov = a.session, a.cost, a.coverage
        temps = ", ".join(f"{t:g}" for t in s.sampling.temperatures or ())
        if isinstance(cov, CoverageRefused):
            last, solved = f"{MISSING} ({cov.reason})", 0
        elif cov.pass_at_k:
            last, solved = f"{fraction(cov.pass_at_k[-1])} at k = {count(cov.k[-1])}", cov.solved
        else:
            last, solved = f"{MISSING} (none)", cov.solved
        rows.append(
            (
                name,
                f"{shown(s.model.name, '?')} ({quantisation(s.model)})",
                temps or MISSING,
                s.path,
                verifier_name(a),
                count(s.budget),
                f"{count(solved)} / {count(len(a.problems))}",
                last,
                count(c.completion_tokens),
                duration(c.wall_s),
            )
        )
    return Table(
        (
            "session",
            "model",
            "temperature",
            "file",
            "verifier",
            "budget",
            "solved",
            "coverage",
            "completion tokens",
            "wall time",
        ),
        tuple(rows),
        (False, False, False, False, False, True, True, True, True, True),
        caption="Sessions",
    )


def _headline(analyses: Sequence[Analysis], names: list[str]) -> Table | None:
    curves: list[PassAtK | SolvedVsSpent] = []
    for a in analyses:
        if isinstance(a.coverage, CoverageRefused) or not a.coverage.k:
            return None
        curves.append(a.coverage)
    shared = min(int(c.n_min) for c in curves)
    wanted = [curves[0].k[i] for i in headline_indices(curves[0].k, shared)]
    rows = []
    for k in wanted:
        cells = [count(k)]
        for c in curves:
            i = c.k.index(k) if k in c.k else None
            cells.append(
                MISSING
                if i is None
                else f"{fraction(c.pass_at_k[i])} {interval(c.low[i], c.high[i])}"
            )
        rows.append(tuple(cells))
    return Table(
        ("k", *names),
        tuple(rows),
        (True,) * (1 + len(names)),
        caption="Coverage (pass@k) with intervals, at k samples per problem",
    )


def _problems_table(analyses: Sequence[Analysis], names: list[str]) -> Table:
    by_id = [{p.problem_id: p for p in a.problems} for a in analyses]
    order = [p.problem_id for p in analyses[0].problems]
    order += sorted({pid for d in by_id[1:] for pid in d} - set(order))
    rows = []
    for pid in order:
        cells = [pid]
        for d in by_id:
            p = d.get(pid)
            cells.append(MISSING if p is None else f"{fraction(p.pass_at_1)} ({p.status})")
        rows.append(tuple(cells))
    return Table(
        ("problem", *(f"{n}: pass@1" for n in names)),
        tuple(rows),
        (False, *(True,) * len(names)),
        caption="Per problem",
    )


def comparison_document(comparison: Comparison, generator: str) -> Document:
    """The whole comparison report; every figure from `compare()` and its analyses. The page
    embeds the comparison's JSON (`to_json()`)."""
    analyses = comparison.analyses
    names = labels(comparison)
    doc = Document("troop comparison: " + " vs ".join(names), data=comparison.to_json())
    doc.add(
        Heading(1, doc.title),
        Para(
            f"{len(analyses)} sessions; {count(comparison.common_problems)} problems in "
            f"common. Report by {generator}."
        ),
    )
    if not comparison.same_problems:
        doc.add(
            Para(
                "The sessions do not hold the same problems: curves average over "
                "different sets, and only the common problems are compared below.",
                note=True,
            )
        )
    doc.add(_sessions_table(analyses, names), Heading(2, "Coverage"))
    head = _headline(analyses, names)
    if head is not None:
        doc.add(head)
    png = plots.compare_coverage(analyses, names)
    if png:
        doc.add(
            Image(
                "compare-coverage",
                png,
                "Coverage against samples per problem, one line per session, log axis.",
                "Coverage against samples per problem (log scale), bands: bootstrap over problems.",
            )
        )
    png = plots.compare_cost(analyses, names)
    if png:
        doc.add(
            Heading(2, "Coverage against cost"),
            Image(
                "compare-cost",
                png,
                "Coverage against tokens, FLOPs, dollars and wall "
                "time, one line per session, log axes.",
                "Coverage against the cost of drawing k samples for every problem (log scales).",
            ),
        )
    cost_rows = tuple(
        (
            name,
            count(a.cost.completion_tokens),
            si(a.cost.flops),
            dollars(a.cost.electricity.usd),
            duration(a.cost.wall_s),
        )
        for a, name in zip(analyses, names, strict=True)
    )
    doc.add(
        Table(
            ("session", "completion tokens", "FLOPs", "electricity", "wall time"),
            cost_rows,
            (False, True, True, True, True),
            caption="Whole-session cost",
        )
    )
    doc.add(Heading(2, "Problems solved by one session only"))
    rows = tuple(
        (name, count(len(only)), ", ".join(only) or MISSING)
        for name, only in zip(names, comparison.solved_only_by, strict=True)
    )
    doc.add(
        Table(
            ("session", "count", "problems solved by it and no other"), rows, (False, True, False)
        ),
        Para(
            f"Solved by every session: {count(len(comparison.solved_by_all))} "
            f"({', '.join(comparison.solved_by_all) or 'none'})."
        ),
        Heading(2, "Problems"),
        _problems_table(analyses, names),
    )
    return doc
