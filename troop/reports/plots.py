"""Report figures drawn with matplotlib (Agg, no display): PNG bytes from an analysis."""

# Every number plotted is read from the analysis (troop.engine.analytics.analysis); nothing
# is computed here but axis limits. Figures use matplotlib's object API (no pyplot): no global
# state, no GUI backend, safe in a headless process or a worker thread.

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from troop.engine.analytics.fits import LAW_NAMES
from troop.engine.analytics.results import Analysis, Refused
from troop.engine.analytics.results_cost import Cost
from troop.engine.analytics.results_curves import CoverageRefused, PassAtK, SolvedVsSpent
from troop.engine.analytics.results_selection import SelectionCurves
from troop.engine.numbers import count, number, tick
from troop.reports.tables import cost_columns

_DPI = 150  # print quality at the sizes below (7 in wide: 1050 px)
_WIDE = (7.0, 4.2)  # one panel, inches
_GRID = (7.5, 6.0)  # two by two panels, inches
# The cost axes the analysis gives (by tables.cost_columns' names), with their print labels,
# in panel order. Each is the total over the problem set of drawing k samples per problem.
COST_AXES = (
    ("tokens", "tokens, prompt + completion (log scale)"),
    ("flops", "compute, FLOPs (log scale)"),
    ("usd", "API price (log scale)"),
    ("wall_s", "wall time (log scale)"),
)


def _selectors(curves: SelectionCurves) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """The selection curves with their labels, in drawing order (coverage first)."""
    return (
        ("coverage (any sample correct)", curves.coverage),
        ("best of k (highest mean token log-probability)", curves.best_of_k),
        ("majority vote", curves.majority),
        ("best of majority", curves.best_of_majority),
    )


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No "Software" stamp: the same analysis gives byte-identical images (stable asset names).
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def _new(size: tuple[float, float] = _WIDE) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    fig.set_facecolor("white")
    return fig


def _ticks(axis: str) -> FuncFormatter:
    """Tick labels on a log axis of one of the analysis' cost axes (samples per problem
    included), written as the TUI and the tables write that quantity."""

    def label(x: float, _pos: object = None) -> str:
        # Matplotlib reads text between two dollar signs as mathematics: escape them.
        return tick(axis, x).replace("$", r"\$") if x > 0 and math.isfinite(x) else ""

    return FuncFormatter(label)


def _style(
    ax: Axes,
    xlabel: str,
    ylabel: str,
    *,
    axis: str = "samples",
    logx: bool = True,
    ticks: int = 5,
    whole: bool = False,
) -> None:
    """Labels, limits and grid; `axis`: which cost axis x is (its ticks' presentation);
    `ticks`: at most this many labels on a narrow log axis; `whole`: the axis counts samples,
    so only whole-number ticks."""
    if logx:
        ax.set_xscale("log")
        # Called after plotting, so the limits are known. Narrow axes get ticks at 1, 2, 5 per
        # decade (an axis spanning less than a decade still gets labels), wide ones per decade.
        # Under a decade, plain evenly spaced ticks (a log locator would find one or none).
        low, high = ax.get_xlim()
        decades = math.log10(high / low) if low > 0 else 0.0
        if whole and decades < 1.2:
            # A few samples per problem: label every whole k (1, 2, 3 … 9, 10, 20).
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
        elif decades < 1:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=ticks, steps=[1, 2, 2.5, 5, 10]))
        else:
            subs = (1.0,) if decades > 3.5 else (1.0, 2.0, 5.0)
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.xaxis.set_major_formatter(_ticks(axis))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)


def _floats(values: Sequence[float | None]) -> list[float]:
    """A series with gaps (None) as NaN, which matplotlib leaves undrawn."""
    return [math.nan if v is None else float(v) for v in values]


def _positive(xs: Sequence[float | None], *ys: Sequence[float | None]) -> tuple[list[float], ...]:
    """Points whose x can sit on a log axis (positive and finite)."""
    keep = [i for i, x in enumerate(xs) if x is not None and math.isfinite(x) and x > 0]
    return tuple(_floats([seq[i] for i in keep]) for seq in (xs, *ys))


def _band_label(cov: PassAtK) -> str:
    conf = cov.confidence
    return f"{round(100 * conf)}% bootstrap band over problems" if conf else "band"


def _axis_label(key: str, label: str, spent: Cost) -> str:
    price = spent.axis_price
    return f"API price '{price}' (log scale)" if key == "usd" and price else label


def coverage(analysis: Analysis) -> bytes | None:
    """Coverage against samples per problem: the measured curve, its bootstrap band, the
    better fitted law continued to 100x the budget with its band, and the forecast points."""
    cov = analysis.coverage
    if isinstance(cov, CoverageRefused) or not cov.k:
        return None
    fig = _new()
    ax = fig.add_subplot()
    only = isinstance(cov, SolvedVsSpent)
    measured = "problems solved so far" if only else "coverage, pass@k (unbiased estimator)"
    if isinstance(cov, PassAtK):
        ax.fill_between(
            cov.k,
            _floats(cov.low),
            _floats(cov.high),
            color="C0",
            alpha=0.22,
            linewidth=0,
            label=_band_label(cov),
        )
    ax.plot(cov.k, _floats(cov.pass_at_k), color="C0", linewidth=2, label=measured)
    drawn = analysis.fit.drawn()
    if drawn is not None:
        name, law = drawn
        ax.fill_between(
            law.curve.k,
            _floats(law.curve.low),
            _floats(law.curve.high),
            color="C1",
            alpha=0.12,
            linewidth=0,
        )
        ax.plot(
            law.curve.k,
            law.curve.coverage,
            color="C1",
            linestyle="--",
            linewidth=1.5,
            label=f"fitted {name} (rmse {number(law.rmse)}), forecast with band",
        )
        points = [
            (p.k, p.coverage, p.low, p.high)
            for p in law.forecast
            if p.k > cov.n_min and p.low is not None and p.high is not None
        ]
        if points:
            ks = [k for k, _, _, _ in points]
            mid = [c for _, c, _, _ in points]
            err = [
                [max(0.0, c - low) for _, c, low, _ in points],
                [max(0.0, high - c) for _, c, _, high in points],
            ]
            ax.errorbar(
                ks,
                mid,
                yerr=err,
                fmt="o",
                color="C1",
                capsize=3,
                markersize=4,
                label="forecast at larger budgets",
            )
    ax.axvline(
        cov.n_min,
        color="0.4",
        linestyle=":",
        linewidth=1,
        label=f"budget drawn: {count(cov.n_min)} samples per problem",
    )
    xlabel = (
        "samples spent per problem (log scale)" if only else ("samples per problem, k (log scale)")
    )
    _style(ax, xlabel, "fraction of problems solved" if only else "coverage (pass@k)", whole=True)
    ax.set_title(f"Coverage against samples ({count(cov.problems)} problems)")
    ax.legend(loc="upper left", fontsize="small")
    return _png(fig)


def backtest(analysis: Analysis) -> bytes | None:
    """Each law's forecast of the coverage at n, fitted on the first m samples per problem,
    against the coverage all n samples show (with its bootstrap interval)."""
    bt = analysis.backtest
    if isinstance(bt, Refused) or not bt.forecasts:
        return None
    fig = _new((7.0, 3.4))
    ax = fig.add_subplot()
    ms = sorted({f.m for f in bt.forecasts})
    ax.axhspan(
        bt.low,
        bt.high,
        color="C0",
        alpha=0.18,
        linewidth=0,
        label=f"observed at n = {count(bt.n)}, {round(100 * bt.confidence)}% interval",
    )
    ax.axhline(bt.observed, color="C0", linewidth=2)
    for i, (law, name) in enumerate(LAW_NAMES.items()):
        points = [
            (f.m, f.coverage) for f in bt.forecasts if f.law == law and f.coverage is not None
        ]
        if points:
            ax.plot(
                [m for m, _ in points],
                [c for _, c in points],
                color=f"C{i + 1}",
                marker="o",
                linewidth=1.2,
                label=f"{name}, fitted on the first m",
            )
    ax.set_xscale("log")
    ax.set_xticks(ms, [count(m) for m in ms])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(ms[0] / 1.4, ms[-1] * 1.4)
    ax.set_xlabel("samples per problem the laws were fitted on, m (log scale)")
    ax.set_ylabel(f"coverage at n = {count(bt.n)}")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.35)
    ax.set_title("Backtest: forecasts from part of the budget against the truth")
    ax.legend(loc="lower right", fontsize="small")
    return _png(fig)


def cost(analysis: Analysis) -> bytes | None:
    """Coverage against what the samples cost: tokens, FLOPs, dollars and wall time."""
    cov, spent = analysis.coverage, analysis.cost
    if isinstance(cov, CoverageRefused) or not cov.k:
        return None
    axes = dict(cost_columns(spent.axes))
    if not any(len(axes[key]) == len(cov.k) for key, _ in COST_AXES):
        return None
    fig = _new(_GRID)
    panels = fig.subplots(2, 2).flatten()
    for ax, (key, label) in zip(panels, COST_AXES, strict=True):
        xs = axes[key]
        if not xs or len(xs) != len(cov.k):
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"no {key} figures", ha="center", va="center")
            continue
        x, y, lo, hi = _positive(xs, cov.pass_at_k, cov.low, cov.high)
        ax.fill_between(x, lo, hi, color="C0", alpha=0.22, linewidth=0)
        ax.plot(x, y, color="C0", linewidth=2)
        _style(ax, _axis_label(key, label, spent), "coverage (pass@k)", axis=key, ticks=3)
    fig.suptitle("Coverage against cost: k samples for every problem")
    return _png(fig)


def temperatures(analysis: Analysis) -> bytes | None:
    """Coverage against samples, one line per sampling temperature."""
    rows = analysis.by_temperature
    if not rows:
        return None
    fig = _new()
    ax = fig.add_subplot()
    for i, row in enumerate(rows):
        if row.k:
            ax.plot(
                row.k,
                _floats(row.pass_at_k),
                color=f"C{i % 10}",
                linewidth=2,
                marker="o" if len(row.k) < 3 else None,
                label=f"temperature {row.temperature:g} ({count(len(row.solved))} solved)",
            )
    _style(
        ax,
        "samples per problem at this temperature, k (log scale)",
        "coverage (pass@k)",
        whole=True,
    )
    ax.set_title("Coverage by sampling temperature")
    ax.legend(loc="upper left", fontsize="small")
    return _png(fig)


def selection(analysis: Analysis) -> bytes | None:
    """Coverage against the precision of picking one answer: majority vote, best by
    log-probability, and guessing, as k grows."""
    sel = analysis.selection
    if isinstance(sel, Refused) or not sel.curves.k:
        return None
    curves = sel.curves
    fig = _new()
    ax = fig.add_subplot()
    for i, (label, ys) in enumerate(_selectors(curves)):
        if ys and len(ys) == len(curves.k):
            # Coverage, the ceiling every selector is measured against, drawn heavier.
            ax.plot(curves.k, ys, color=f"C{i}", linewidth=2 if i == 0 else 1.5, label=label)
    guess = sel.guessing
    if guess.k:
        ax.plot(
            guess.k,
            guess.coverage,
            color="0.5",
            linestyle="--",
            linewidth=1,
            label="guessing",
        )
    _style(ax, "samples per problem, k (log scale)", "fraction of problems right", whole=True)
    ax.set_title("Coverage against precision: can a selector find the right sample?")
    ax.legend(loc="upper left", fontsize="small")
    return _png(fig)


def compare_coverage(analyses: Sequence[Analysis], labels: Sequence[str]) -> bytes | None:
    """Several sessions' coverage curves (with bands) overlaid on one samples axis."""
    fig = _new()
    ax = fig.add_subplot()
    drawn = False
    for i, (a, label) in enumerate(zip(analyses, labels, strict=True)):
        cov = a.coverage
        if isinstance(cov, CoverageRefused) or not cov.k:
            continue
        if isinstance(cov, PassAtK):
            ax.fill_between(
                cov.k,
                _floats(cov.low),
                _floats(cov.high),
                color=f"C{i % 10}",
                alpha=0.15,
                linewidth=0,
            )
        ax.plot(cov.k, _floats(cov.pass_at_k), color=f"C{i % 10}", linewidth=2, label=label)
        drawn = True
    if not drawn:
        return None
    _style(ax, "samples per problem, k (log scale)", "coverage (pass@k)", whole=True)
    ax.set_title("Coverage against samples (bands: bootstrap over problems)")
    ax.legend(loc="upper left", fontsize="small")
    return _png(fig)


def compare_cost(analyses: Sequence[Analysis], labels: Sequence[str]) -> bytes | None:
    """Several sessions' coverage against each cost axis, overlaid."""
    fig = _new(_GRID)
    panels = fig.subplots(2, 2).flatten()
    drawn = False
    for ax, (key, label) in zip(panels, COST_AXES, strict=True):
        for i, (a, name) in enumerate(zip(analyses, labels, strict=True)):
            cov = a.coverage
            if isinstance(cov, CoverageRefused):
                continue
            xs = dict(cost_columns(a.cost.axes))[key]
            if not xs or len(xs) != len(cov.k):
                continue
            x, y = _positive(xs, cov.pass_at_k)
            ax.plot(x, y, color=f"C{i % 10}", linewidth=2, label=name)
            drawn = True
        _style(
            ax, _axis_label(key, label, analyses[0].cost), "coverage (pass@k)", axis=key, ticks=3
        )
    if not drawn:
        return None
    panels[0].legend(loc="upper left", fontsize="small")
    fig.suptitle("Coverage against cost")
    return _png(fig)
