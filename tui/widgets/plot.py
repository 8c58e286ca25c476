"""The coverage plot: coverage against budget on a log axis, with band, fitted law and forecast."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.binding import Binding
from textual.color import Color
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from troop.engine.analytics.backtest import Backtest
from troop.engine.analytics.fits import LAW_NAMES
from troop.engine.analytics.results import Analysis, Fits, Refused
from troop.engine.analytics.results_cost import Cost, CostAxes
from troop.engine.analytics.results_curves import CoverageRefused, SolvedVsSpent
from troop.engine.numbers import count, number, tick

#: The x axes the `x` key cycles through, in order; names are the fields of the analysis'
#: cost axes (`CostAxes`).
AXES = ("samples", "tokens", "flops", "wall_s", "usd")
_AXIS_NAMES = {
    "samples": "samples per problem",
    "tokens": "tokens (prompt + completion)",
    "flops": "FLOPs",
    "wall_s": "wall time",
    "usd": "dollars",
}
# Dashes of the forecast, in plot columns: long enough to read as a line, gaps wide enough to see.
_DASH, _GAP = 3, 2


@dataclass(frozen=True)
class Curves:
    """What the plot draws for one session on one x axis, in that axis' units."""

    label: str  # legend name: the model's name
    x: list[float] = field(default_factory=list)  # budget of each coverage point (axis units)
    coverage: list[float] = field(default_factory=list)  # fraction of problems solved at each x
    low: list[float] = field(default_factory=list)  # bootstrap band's lower edge ([] when none)
    high: list[float] = field(default_factory=list)  # bootstrap band's upper edge ([] when none)
    fit_x: list[float] = field(default_factory=list)  # fitted law up to the current budget
    fit_y: list[float] = field(default_factory=list)  # its coverage at each fit_x
    forecast_x: list[float] = field(default_factory=list)  # fitted law beyond the budget: dashed
    forecast_y: list[float] = field(default_factory=list)  # its coverage at each forecast_x
    law: str = ""  # name of the fitted law drawn ("power law", "beta-binomial"); "" for none
    notes: tuple[str, ...] = ()  # refusals and gaps, shown as a caption instead of a curve


def curves(analysis: Analysis, axis: str) -> Curves:
    """The points to draw for `analysis` on `axis`; nothing is recomputed, only mapped from
    samples per problem onto the chosen cost axis."""
    label = _label(analysis)
    coverage = analysis.coverage
    if isinstance(coverage, CoverageRefused):
        return Curves(label, notes=(f"coverage: {coverage.reason}",))
    k = [float(v) for v in coverage.k]
    if not k:
        return Curves(label, notes=("coverage: no samples verified yet",))
    xs = _axis_values(analysis.cost, axis, k)
    if isinstance(xs, str):
        return Curves(label, notes=(xs,))
    keep = [i for i, x in enumerate(xs) if _positive(x)]
    pass_at_k, low, high = coverage.pass_at_k, coverage.low, coverage.high
    band = len(low) == len(k) and len(high) == len(k)
    notes: list[str] = []
    fit_x: list[float] = []
    fit_y: list[float] = []
    forecast_x: list[float] = []
    forecast_y: list[float] = []
    drawn = analysis.fit.drawn()
    if isinstance(coverage, SolvedVsSpent):
        pass  # solved-vs-spent has no law to fit; the curve alone is the answer
    elif drawn is None:
        notes.append(_unfitted(analysis.fit))
    else:
        n_min = float(coverage.n_min)
        curve = drawn[1].curve
        for ck, cy in zip(curve.k, curve.coverage, strict=True):
            x = _cost_at(ck, k, xs)
            if not _positive(x):
                continue
            if ck <= n_min:
                fit_x.append(x)
                fit_y.append(cy)
            if ck >= n_min:
                forecast_x.append(x)
                forecast_y.append(cy)
        if fit_x and forecast_x and forecast_x[0] > fit_x[-1]:
            # The dashes start where the solid line stops, with no hole at the budget.
            forecast_x.insert(0, fit_x[-1])
            forecast_y.insert(0, fit_y[-1])
    return Curves(
        label,
        x=[xs[i] for i in keep],
        coverage=[float(pass_at_k[i]) for i in keep],
        low=[float(low[i]) for i in keep] if band else [],
        high=[float(high[i]) for i in keep] if band else [],
        fit_x=fit_x,
        fit_y=fit_y,
        forecast_x=forecast_x,
        forecast_y=forecast_y,
        law="" if drawn is None else drawn[0],
        notes=tuple(notes),
    )


def _unfitted(fit: Fits) -> str:
    """Why no law is drawn: each law's refusal, said once when both share it."""
    laws = {"power_law": fit.power_law, "beta_binomial": fit.beta_binomial}
    reasons = {
        LAW_NAMES[key]: law.reason if isinstance(law, Refused) else "not fitted"
        for key, law in laws.items()
    }
    if len(set(reasons.values())) == 1:
        return f"no law fitted: {next(iter(reasons.values()))}"
    return "; ".join(f"{name} fit: {why}" for name, why in reasons.items())


def _label(analysis: Analysis) -> str:
    # The model's facts are as the session's file has them: a name may be missing.
    session = analysis.session
    return session.model.name or session.path or "session"


def _axis_costs(axes: CostAxes, axis: str) -> tuple[float | None, ...]:
    """The cost axis named `axis` (one of AXES)."""
    by_name: dict[str, tuple[float | None, ...]] = {
        "samples": axes.samples,
        "tokens": axes.tokens,
        "flops": axes.flops,
        "wall_s": axes.wall_s,
        "usd": axes.usd,
    }
    return by_name[axis]


def _axis_values(cost: Cost, axis: str, k: list[float]) -> list[float] | str:
    """x of each coverage point on `axis`, or the reason it cannot be drawn."""
    if cost.axes is None:
        return k if axis == "samples" else f"{_AXIS_NAMES[axis]}: not measured in this session"
    values = _axis_costs(cost.axes, axis)
    if len(values) != len(k):
        return f"{_AXIS_NAMES[axis]}: {len(values)} costs for {len(k)} coverage points"
    # An unmeasured cost is None (e.g. FLOPs of an unknown shape): no place on the axis.
    xs = [math.nan if v is None else float(v) for v in values]
    if not any(_positive(x) for x in xs):
        return f"{_AXIS_NAMES[axis]}: not measured for this session"
    return xs


def _positive(x: float) -> bool:
    """Whether x has a place on a log axis."""
    return math.isfinite(x) and x > 0


def _cost_at(kq: float, k: list[float], xs: list[float]) -> float:
    """The cost of drawing `kq` samples per problem: interpolated (log-log) within the measured
    budget, and beyond it scaled linearly by the last measured cost per sample."""
    if kq >= k[-1]:
        return kq * xs[-1] / k[-1]
    i = bisect_left(k, kq)
    if k[i] == kq or i == 0:
        return xs[i]
    k0, k1, x0, x1 = k[i - 1], k[i], xs[i - 1], xs[i]
    if min(k0, k1, x0, x1) <= 0:
        return x0 + (x1 - x0) * (kq - k0) / (k1 - k0)
    t = (math.log(kq) - math.log(k0)) / (math.log(k1) - math.log(k0))
    return math.exp(math.log(x0) + t * (math.log(x1) - math.log(x0)))


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten between lo and hi; 1-2-5 steps when the range spans under two decades."""
    start, stop = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    steps = (1.0,) if stop - start > 2 else (1.0, 2.0, 5.0)
    ticks = [m * 10.0**e for e in range(start, stop + 1) for m in steps]
    return [t for t in ticks if lo * 0.999 <= t <= hi * 1.001] or [lo, hi]


class _Canvas(PlotextPlot):
    """The Plotext drawing surface; redrawn from scratch at each render, at its current size."""

    def __init__(self, draw: Callable[[Plot, int, int], None]) -> None:
        super().__init__(id="coverage-canvas")
        self._draw = draw

    def render(self) -> RenderResult:
        self.plt.clear_figure()
        self._draw(self.plt, self.size.width, self.size.height)
        return super().render()


class CoveragePlot(Widget, can_focus=True):
    """Coverage against budget (log x) with the bootstrap band, the fitted law the analysis
    calls better and its forecast dashed beyond the current budget; `x` switches the unit."""

    DEFAULT_CSS = """
    CoveragePlot {
        height: 1fr;
        layout: vertical;
    }
    CoveragePlot > #coverage-canvas {
        height: 1fr;
    }
    CoveragePlot > #coverage-caption {
        height: auto;
        max-height: 4;
        color: $text-muted;
        padding: 0 1;
    }
    CoveragePlot:focus > #coverage-caption {
        color: $text;
    }
    """

    BINDINGS = [Binding("x", "cycle_axis", "x axis")]

    axis: reactive[str] = reactive("samples")
    """The budget's unit on the x axis: one of AXES."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._analysis: Analysis | None = None  # the session's latest analysis
        self._overlay: Analysis | None = None  # the session compared with, if any
        self._curves: list[Curves] = []

    def compose(self) -> ComposeResult:
        yield _Canvas(self._draw)
        yield Static(id="coverage-caption")

    def on_mount(self) -> None:
        self._recompute()

    def update_analysis(self, analysis: Analysis, overlay: Analysis | None = None) -> None:
        """Show a new analysis (and optionally a second session to compare with)."""
        self._analysis = analysis
        self._overlay = overlay
        self._recompute()

    def action_cycle_axis(self) -> None:
        self.axis = AXES[(AXES.index(self.axis) + 1) % len(AXES)]

    def validate_axis(self, axis: str) -> str:
        return axis if axis in AXES else "samples"

    def watch_axis(self) -> None:
        self._recompute()

    @property
    def shown(self) -> list[Curves]:
        """The curves on screen: this session's, then the overlay's."""
        return list(self._curves)

    def _recompute(self) -> None:
        if not self.is_mounted:
            return
        shown = [a for a in (self._analysis, self._overlay) if a is not None]
        self._curves = [curves(a, self.axis) for a in shown]
        if len(self._curves) == 2 and self._curves[0].label == self._curves[1].label:
            # Two sessions of one model: tell them apart by their files.
            self._curves = [
                replace(c, label=f"{c.label} ({_session_name(a)})")
                for c, a in zip(self._curves, shown, strict=True)
            ]
        self.query_one("#coverage-caption", Static).update(self._caption())
        self.query_one(_Canvas).refresh()

    def _caption(self) -> Text:
        # Plain Text, never markup: refusal reasons quote session data.
        if self._analysis is None:
            return Text("no verdicts yet: coverage appears once samples are verified")
        parts = [f"x: {_AXIS_NAMES[self.axis]} (x key switches)"]
        coverage = self._analysis.coverage
        drawn = self._analysis.fit.drawn()
        if not isinstance(coverage, CoverageRefused):
            parts.append(f"{count(coverage.solved)}/{count(coverage.problems)} solved")
            if isinstance(coverage, SolvedVsSpent):
                parts.append("solved vs samples spent")
            elif drawn is not None:
                name, law = drawn
                params = " ".join(f"{p}={number(v)}" for p, v in law.parameters().items())
                parts.append(
                    f"{name} {params} rmse={number(law.rmse)},"
                    f" dashed beyond k={count(coverage.n_min)}"
                )
        lines = [" · ".join(parts)]
        backtest = self._analysis.backtest
        summary = backtest.summary() if isinstance(backtest, Backtest) else None
        if summary:
            lines.append(f"backtest: {summary}")
        for c in self._curves:
            lines += [f"{c.label}: {note}" if self._overlay else note for note in c.notes]
        return Text("\n".join(lines))

    def _draw(self, plt: Plot, width: int, height: int) -> None:
        drawable = [c for c in self._curves if c.x]
        if not drawable:
            return
        colours = self._colours()
        xs = [x for c in drawable for x in (*c.x, *c.forecast_x)]
        lo, hi = min(xs), max(xs)
        if hi <= lo:
            hi = lo * 10
        plt.xscale("log")
        plt.ylim(0, 1)
        plt.yticks([0, 0.25, 0.5, 0.75, 1.0], ["0", ".25", ".5", ".75", "1"])
        ticks = _log_ticks(lo, hi)
        plt.xticks(ticks, [tick(self.axis, t) for t in ticks])
        plt.xlabel(_AXIS_NAMES[self.axis])
        spent = self._analysis is not None and isinstance(self._analysis.coverage, SolvedVsSpent)
        plt.ylabel("solved" if spent else "coverage")
        # The plot area is the widget less the y tick labels and the frame.
        columns, rows = max(width - 8, 10), max(height - 4, 4)
        per_column = (math.log(hi) - math.log(lo)) / columns
        main = drawable[0]
        if main.low:
            _band(plt, main, per_column, rows, colours["band"])
        for curve, line, fit in zip(
            drawable,
            (colours["main"], colours["overlay"]),
            (colours["fit"], colours["overlay"]),
            strict=False,
        ):
            if curve.fit_x:
                plt.plot(curve.fit_x, curve.fit_y, marker="braille", color=fit)
            if curve.forecast_x:
                _dashed(
                    plt,
                    curve.forecast_x,
                    curve.forecast_y,
                    per_column,
                    fit,
                    f"{curve.label} {curve.law}",
                )
            plt.plot(curve.x, curve.coverage, marker="braille", color=line, label=curve.label)

    def _colours(self) -> dict[str, tuple[int, int, int]]:
        # Line colours come from the app's theme, like every other colour in the UI.
        variables = self.app.theme_variables
        names = {"main": "primary", "band": "primary-muted", "fit": "warning", "overlay": "success"}
        return {key: Color.parse(variables.get(name, "white")).rgb for key, name in names.items()}


def _session_name(analysis: Analysis) -> str:
    path = analysis.session.path or "session"
    return path.rsplit("/", 1)[-1]


def _band(
    plt: Plot, curve: Curves, per_column: float, rows: int, colour: tuple[int, int, int]
) -> None:
    """Fill the bootstrap band: shaded points two per column and row between its edges."""
    lo, hi = math.log(curve.x[0]), math.log(curve.x[-1])
    n = max(2, round((hi - lo) / max(per_column, 1e-12)))
    px: list[float] = []
    py: list[float] = []
    for j in range(2 * n):
        u = lo + (hi - lo) * j / (2 * n - 1)
        bottom, top = _interp(u, curve.x, curve.low), _interp(u, curve.x, curve.high)
        steps = max(1, math.ceil((top - bottom) * rows * 2))
        for s in range(steps + 1):
            px.append(math.exp(u))
            py.append(bottom + (top - bottom) * s / steps)
    plt.scatter(px, py, marker="▒", color=colour, label="bootstrap band")


def _dashed(
    plt: Plot,
    xs: Sequence[float],
    ys: Sequence[float],
    per_column: float,
    colour: tuple[int, int, int],
    label: str,
) -> None:
    """Draw a curve as dashes of _DASH columns with _GAP-column gaps (Plotext has no dash style)."""
    u0, u1 = math.log(xs[0]), math.log(xs[-1])
    step = max(per_column, 1e-12)
    u = u0
    first = True
    while u < u1:
        end = min(u + _DASH * step, u1)
        us = [u + (end - u) * i / 4 for i in range(5)]
        plt.plot(
            [math.exp(v) for v in us],
            [_interp(v, xs, ys) for v in us],
            marker="braille",
            color=colour,
            label=label if first else None,
        )
        first = False
        u = end + _GAP * step


def _interp(u: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """ys at log-x `u`, linear in log x between neighbours."""
    logs = [math.log(x) for x in xs]
    if u <= logs[0]:
        return ys[0]
    if u >= logs[-1]:
        return ys[-1]
    i = bisect_left(logs, u)
    t = (u - logs[i - 1]) / (logs[i] - logs[i - 1]) if logs[i] > logs[i - 1] else 0.0
    return ys[i - 1] + t * (ys[i] - ys[i - 1])
