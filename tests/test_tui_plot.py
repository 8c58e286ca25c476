"""The coverage plot draws only numbers from the analysis, on every budget axis."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import Static

from troop.engine.analytics.analysis import analyse_path
from troop.engine.analytics.backtest import Backtest
from troop.engine.analytics.results import Analysis, Fits, Refused, SessionInfo
from troop.engine.analytics.results_cost import Cost, CostAxes, Electricity, PerSolved
from troop.engine.analytics.results_curves import (
    BetaBinomialFit,
    CoverageRefused,
    HorizonForecast,
    LawCurve,
    PassAtK,
    PowerLawFit,
    SolvedVsSpent,
)
from troop.engine.events import SampleRecord
from troop.engine.storage import session as session_file
from troop.engine.storage.session import Session, StoredProblem
from troop.tui.widgets.plot import AXES, CoveragePlot, curves
from troop.verifiers.base import Status, Verdict

SIZE = (100, 30)


def contract_analysis(
    name: str = "smollm2-135m",
    a: float = -1.6,
    b: float = -0.45,
    n: int = 64,
    problems: int = 20,
    tokens_per_sample: float = 60.0,
    fit_refused: str | None = None,
    path: str = "/sessions/a.troop",
    better: str = "power_law",
    axes: bool = True,
) -> Analysis:
    """An analysis with known curves: coverage exp(a k^b) with a band around it, a power-law
    fit and a beta-binomial fit (Beta(0.3, 2)) to 100x the budget, `better` naming the one to
    draw, and cost axes linear in k (none without `axes`). `fit_refused` refuses both laws;
    the sections the plot never reads are refused or empty."""
    ks = tuple(range(1, min(n, 100) + 1))
    cov = tuple(math.exp(a * k**b) for k in ks)
    curve_k = tuple(sorted({float(k) for k in ks[::7]} | {n * 10 ** (i / 20) for i in range(41)}))
    power_law: PowerLawFit | Refused = (
        Refused(fit_refused)
        if fit_refused
        else PowerLawFit(
            rmse=0.012,
            rmse_curve=0.012,
            k_from=1,
            k_to=n,
            replicates=200,
            forecast=(HorizonForecast(10 * n, 10, math.exp(a * (10 * n) ** b), 0.0, 1.0),),
            curve=LawCurve(
                k=curve_k,
                coverage=tuple(math.exp(a * k**b) for k in curve_k),
                low=tuple(math.exp(1.1 * a * k**b) for k in curve_k),
                high=tuple(math.exp(0.9 * a * k**b) for k in curve_k),
            ),
            budget_for=(),
            a=a,
            b=b,
        )
    )
    beta_binomial: BetaBinomialFit | Refused = (
        Refused(fit_refused)
        if fit_refused
        else BetaBinomialFit(
            rmse=0.021,
            rmse_curve=0.021,
            k_from=1,
            k_to=n,
            replicates=200,
            forecast=(HorizonForecast(10 * n, 10, _bb(10 * n), 0.0, 1.0),),
            curve=LawCurve(
                k=curve_k,
                coverage=tuple(_bb(k) for k in curve_k),
                low=tuple(0.9 * _bb(k) for k in curve_k),
                high=tuple(min(1.0, 1.1 * _bb(k)) for k in curve_k),
            ),
            budget_for=(),
            alpha=0.3,
            beta=2.0,
        )
    )
    per_k = problems * tokens_per_sample
    cost_axes = CostAxes(
        samples=tuple(float(k) for k in ks),
        tokens=tuple(k * per_k + problems * 40 for k in ks),
        wall_s=tuple(k * per_k / 150.0 for k in ks),
        usd=tuple(k * per_k * 2e-7 for k in ks),
        flops=tuple(k * per_k * 2 * 1.35e8 for k in ks),
    )
    solved = round(cov[-1] * problems)
    return Analysis(
        session=_session(name, path),
        problems=(),
        statuses={},
        coverage=PassAtK(
            k=ks,
            pass_at_k=cov,
            low=tuple(max(0.0, c - 0.08 * (1 - c) - 0.03) for c in cov),
            high=tuple(min(1.0, c + 0.06 * (1 - c) + 0.03) for c in cov),
            confidence=0.95,
            n_min=n,
            n_max=n,
            problems=problems,
            unverified_problems=0,
            solved=solved,
        ),
        by_temperature=(),
        fit=Fits(power_law, beta_binomial, None if fit_refused else better),
        backtest=Refused("not backtested here"),
        cost=_cost(n * problems, solved, cost_axes if axes else None),
        selection=Refused("not an answer-style problem set"),
        false_positives=Refused("no visible examples"),
    )


def _session(name: str, path: str) -> SessionInfo:
    """Where the numbers come from: only the model's name and the file matter to the plot."""
    return SessionInfo(
        path=path,
        created_at=None,
        troop_version=None,
        budget=None,
        policy="fixed",
        policy_settings="fixed",
        coverage_only=False,
        model={"name": name},
        backend={},
        problem_set={},
        sampling={},
        seed=None,
        prompt_format={},
        verifier=None,
        tier=None,
        runs=(),
        samples=0,
        verified=0,
    )


def _cost(samples: int, solved: int, axes: CostAxes | None) -> Cost:
    """A cost section with `axes` (the plot's x values); its totals are never drawn."""
    return Cost(
        prompt_tokens=0,
        completion_tokens=0,
        billed_input_tokens=0,
        samples=samples,
        wall_s=0.0,
        samples_per_s=None,
        tokens_per_s=None,
        flops=None,
        usd_api={},
        axis_price="",
        prices={},
        electricity=Electricity(watts=0.0, kwh=0.0, kwh_usd=0.0, usd=0.0),
        solved=solved,
        per_solved=PerSolved(None, None, None, None, None, None),
        axes=axes,
    )


def _bb(k: float, alpha: float = 0.3, beta: float = 2.0) -> float:
    """Beta-binomial coverage 1 - B(alpha, beta + k) / B(alpha, beta), via log-gamma."""

    def log_b(x: float, y: float) -> float:
        return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

    return 1 - math.exp(log_b(alpha, beta + k) - log_b(alpha, beta))


class PlotHost(App[None]):
    """The plot alone, fed one analysis (and optionally an overlay) on mount."""

    def __init__(self, analysis: Analysis | None, overlay: Analysis | None = None) -> None:
        super().__init__()
        self.analysis = analysis
        self.overlay = overlay

    def compose(self) -> ComposeResult:
        yield CoveragePlot()

    def on_mount(self) -> None:
        plot = self.query_one(CoveragePlot)
        plot.focus()
        if self.analysis is not None:
            plot.update_analysis(self.analysis, self.overlay)


def caption(app: App[Any]) -> str:
    content = app.query_one("#coverage-caption", Static).visual
    return content.plain if isinstance(content, Text) else str(content)


# -- the numbers drawn ---------------------------------------------------------------------


def _coverage(analysis: Analysis) -> PassAtK:
    assert isinstance(analysis.coverage, PassAtK)
    return analysis.coverage


def _axes(analysis: Analysis) -> CostAxes:
    assert analysis.cost.axes is not None
    return analysis.cost.axes


def _law(fit: PowerLawFit | BetaBinomialFit | Refused) -> LawCurve:
    assert not isinstance(fit, Refused), fit
    return fit.curve


def test_samples_axis_draws_the_analysis_as_is() -> None:
    a = contract_analysis()
    c = curves(a, "samples")
    assert c.x == [float(k) for k in _coverage(a).k]
    assert c.coverage == list(_coverage(a).pass_at_k)
    assert c.low == list(_coverage(a).low) and c.high == list(_coverage(a).high)
    # Solid up to the budget, dashed from it on: the two parts meet at n_min.
    assert max(c.fit_x) == 64 and c.forecast_x[0] == 64
    assert c.forecast_x[-1] == pytest.approx(6400)
    assert all(x >= 64 for x in c.forecast_x) and all(x <= 64 for x in c.fit_x)
    assert c.notes == ()


def test_cost_axes_scale_the_forecast_by_the_last_cost_per_sample() -> None:
    a = contract_analysis()
    tokens = _axes(a).tokens
    c = curves(a, "tokens")
    assert c.x == list(tokens)
    per_sample = tokens[-1] / _coverage(a).k[-1]
    law = _law(a.fit.power_law)
    beyond = [k for k in law.k if k >= 64]
    assert c.forecast_x == pytest.approx([k * per_sample for k in beyond])
    # Within the budget a fit point at a measured k sits exactly at that k's measured cost.
    assert c.fit_x[law.k.index(8.0)] == pytest.approx(tokens[7])


def test_refusals_become_captions_not_curves() -> None:
    c = curves(contract_analysis(fit_refused="no problem solved yet"), "samples")
    assert c.fit_x == [] and c.forecast_x == [] and c.x and c.law == ""
    assert c.notes == ("no law fitted: no problem solved yet",)
    # Laws refused for different reasons: each reason is given.
    a = contract_analysis(fit_refused="fewer than 3 fit points")
    why = Refused("every sample passed: no failure rate to fit")
    a = replace(a, fit=replace(a.fit, beta_binomial=why))
    assert curves(a, "samples").notes == (
        "power law fit: fewer than 3 fit points; "
        "beta-binomial fit: every sample passed: no failure rate to fit",
    )
    c = curves(contract_analysis(axes=False), "wall_s")
    assert c.x == [] and c.notes == ("wall time: not measured in this session",)
    # Samples per problem needs no cost accounting: still drawn.
    assert curves(contract_analysis(axes=False), "samples").x
    refused = replace(contract_analysis(), coverage=CoverageRefused("no verified samples yet", 20))
    assert curves(refused, "samples").notes == ("coverage: no verified samples yet",)


def test_unmeasured_costs_are_left_out_not_drawn_at_zero() -> None:
    a = contract_analysis()
    n = len(_coverage(a).k)
    unknown = replace(_axes(a), flops=(None,) * n)  # model shape unknown
    a = replace(a, cost=replace(a.cost, axes=unknown))
    assert curves(a, "flops").notes == ("FLOPs: not measured for this session",)
    coarse = replace(_axes(a), wall_s=(0.0, *_axes(a).wall_s[1:]))  # a clock too coarse at k=1
    a = replace(a, cost=replace(a.cost, axes=coarse))
    assert len(curves(a, "wall_s").x) == n - 1


def test_the_plot_draws_the_law_the_analysis_calls_better() -> None:
    power = curves(contract_analysis(), "samples")
    assert power.law == "power law"
    a = contract_analysis(better="beta_binomial")
    c = curves(a, "samples")
    assert c.law == "beta-binomial"
    law = _law(a.fit.beta_binomial)
    beyond = [y for k, y in zip(law.k, law.coverage, strict=True) if k >= 64]
    assert c.forecast_y == pytest.approx(beyond) and c.forecast_y != power.forecast_y
    assert c.forecast_x[-1] == pytest.approx(6400)


# -- the widget ----------------------------------------------------------------------------


def test_x_key_cycles_the_axes_and_wraps() -> None:
    asyncio.run(_test_x_key_cycles_the_axes_and_wraps())


async def _test_x_key_cycles_the_axes_and_wraps() -> None:
    app = PlotHost(contract_analysis())
    async with app.run_test(size=SIZE) as pilot:
        plot = app.query_one(CoveragePlot)
        seen = [plot.axis]
        for _ in AXES:
            await pilot.press("x")
            seen.append(plot.axis)
        assert seen == [*AXES, AXES[0]]
        await pilot.press("x")
        assert plot.shown[0].x == list(_axes(contract_analysis()).tokens)
        assert "tokens" in caption(app)


def test_refused_fit_reason_is_the_caption() -> None:
    asyncio.run(_test_refused_fit_reason_is_the_caption())


async def _test_refused_fit_reason_is_the_caption() -> None:
    app = PlotHost(contract_analysis(fit_refused="no problem solved yet"))
    async with app.run_test(size=SIZE):
        assert "no law fitted: no problem solved yet" in caption(app)


def test_the_caption_names_the_beta_binomial_when_it_is_drawn() -> None:
    asyncio.run(_test_the_caption_names_the_beta_binomial_when_it_is_drawn())


async def _test_the_caption_names_the_beta_binomial_when_it_is_drawn() -> None:
    app = PlotHost(contract_analysis(better="beta_binomial"))
    async with app.run_test(size=SIZE):
        assert app.query_one(CoveragePlot).shown[0].law == "beta-binomial"
        assert "beta-binomial alpha=0.3 beta=2 rmse=0.021, dashed beyond k=64" in caption(app)
        assert "power law" not in caption(app)


def test_overlay_draws_a_second_session_with_its_label() -> None:
    asyncio.run(_test_overlay_draws_a_second_session_with_its_label())


async def _test_overlay_draws_a_second_session_with_its_label() -> None:
    first = contract_analysis(path="/s/a.troop")
    second = contract_analysis(a=-1.2, b=-0.5, n=32, path="/s/b.troop")
    app = PlotHost(first, second)
    async with app.run_test(size=SIZE):
        shown = app.query_one(CoveragePlot).shown
        # Same model in both: the files tell them apart.
        assert [c.label for c in shown] == ["smollm2-135m (a.troop)", "smollm2-135m (b.troop)"]
        assert shown[1].x == [float(k) for k in _coverage(second).k]


def _synthetic_session(path: Path, coverage_only: bool = False) -> None:
    """A real session file with known verdicts: 12 problems x 24 samples, problem i passing
    every (i+2)-th sample from index i on, so coverage climbs with k and some stay unsolved."""
    s = Session.create(
        path,
        {
            "budget": 24,
            "coverage_only": coverage_only,
            "config": {
                "model": {
                    "name": "synthetic-135m",
                    "n_params": 134_515_008,
                    "n_layer": 30,
                    "n_embd": 576,
                }
            },
        },
    )
    problems = [
        StoredProblem(
            f"p{i:02d}", i, "arithmetic", f"What is {i} + 1?", 12, (), {"answer": str(i + 1)}
        )
        for i in range(12)
    ]
    s.add_problems(problems)
    run = s.begin_run({"parallel": 4})
    s.set_meta("verifier", {"name": "math-answer", "version": "1"})
    for p in problems:
        i = p.position
        for j in range(24):
            s.add_sample(
                SampleRecord(
                    p.problem_id,
                    j,
                    1000 * i + j,
                    0.8,
                    40,
                    0.95,
                    0.0,
                    32,
                    "answer",
                    tuple(range(20)),
                    12,
                    "eos",
                    None,
                    0.1,
                    -3.0,
                    run,
                )
            )
            ok = i < 9 and j >= i and (j - i) % (i + 2) == 0
            s.add_verdict(
                p.problem_id,
                j,
                session_file.tests_digest(p.data),
                Verdict(Status.PASS if ok else Status.FAIL, "math-answer", "1", 0.01, ""),
            )
    s.finish_run(run, "completed")
    s.close()


def test_plots_a_real_analysis(tmp_path: Path) -> None:
    asyncio.run(_test_plots_a_real_analysis(tmp_path))


async def _test_plots_a_real_analysis(tmp_path: Path) -> None:
    _synthetic_session(tmp_path / "s.troop")
    analysis = analyse_path(tmp_path / "s.troop")  # what the live screen shows
    axes = _axes(analysis)
    by_axis = {
        "samples": axes.samples,
        "tokens": axes.tokens,
        "flops": axes.flops,
        "wall_s": axes.wall_s,
        "usd": axes.usd,
    }
    app = PlotHost(analysis)
    async with app.run_test(size=SIZE) as pilot:
        plot = app.query_one(CoveragePlot)
        for axis in AXES:
            shown = plot.shown[0]
            assert shown.x == [x for x in by_axis[axis] if x is not None and x > 0], axis
            assert shown.coverage == list(_coverage(analysis).pass_at_k)
            # The synthetic verdicts follow a clean law.
            assert isinstance(analysis.fit.power_law, PowerLawFit), analysis.fit.power_law
            # The dashes start where the solid fit ends, at the current budget's cost.
            assert shown.forecast_x[0] == pytest.approx(max(shown.fit_x))
            assert shown.forecast_x[0] == pytest.approx(shown.x[-1])
            await pilot.press("x")


def test_the_caption_says_how_far_the_backtested_forecasts_missed(tmp_path: Path) -> None:
    asyncio.run(_test_the_caption_says_how_far_the_backtested_forecasts_missed(tmp_path))


async def _test_the_caption_says_how_far_the_backtested_forecasts_missed(tmp_path: Path) -> None:
    _synthetic_session(tmp_path / "s.troop")
    analysis = analyse_path(tmp_path / "s.troop")  # what the live screen shows
    assert isinstance(analysis.backtest, Backtest)
    summary = analysis.backtest.summary()  # 24 samples: fitted on the first 6 (1/4)
    assert summary is not None and summary.startswith("power law from 1/4 of the budget")
    app = PlotHost(analysis)
    async with app.run_test(size=SIZE):
        assert f"backtest: {summary}" in caption(app)


def test_coverage_only_session_shows_solved_against_samples_spent(tmp_path: Path) -> None:
    _synthetic_session(tmp_path / "s.troop", coverage_only=True)
    analysis = analyse_path(tmp_path / "s.troop")  # what the live screen shows
    coverage = analysis.coverage
    assert isinstance(coverage, SolvedVsSpent)

    async def scenario() -> None:
        app = PlotHost(analysis)
        async with app.run_test(size=SIZE):
            shown = app.query_one(CoveragePlot).shown[0]
            assert shown.x == list(coverage.k)
            assert shown.coverage == list(coverage.pass_at_k)
            assert shown.fit_x == shown.forecast_x == []  # no law for an adaptive budget
            assert "solved vs samples spent" in caption(app)
            assert "9/12 solved" in caption(app)

    asyncio.run(scenario())


# -- pictures ------------------------------------------------------------------------------


def test_snapshot_coverage_with_band_fit_and_forecast(snap_compare: Any) -> None:
    """A correct picture: a blue coverage curve rising from about .2 at k=1 to about .8 at
    k=64 inside a shaded band, an orange fitted line on top of it up to k=64 that continues
    as orange dashes to k=6.4k, named "smollm2-135m power law" in the legend (the law the
    analysis calls better); x ticks 1, 10, 100, 1k labelled "samples per problem"; the caption
    names the axis, 16/20 solved and "power law a=-1.6 b=-0.45 rmse=0.012"."""
    assert snap_compare(PlotHost(contract_analysis()), terminal_size=SIZE)


def test_snapshot_overlay_on_the_tokens_axis(snap_compare: Any) -> None:
    """A correct picture: after one press of x the axis reads "tokens (prompt + completion)"
    with ticks in k/M; two sessions, smollm2-135m (blue, with its band and orange dashed
    forecast) and gemma3-270m (green, higher, with its own green dashes), named in the legend
    with the law each forecast draws ("smollm2-135m power law", "gemma3-270m power law")."""
    app = PlotHost(
        contract_analysis(),
        contract_analysis("gemma3-270m", a=-1.2, b=-0.5, n=32, path="/s/b.troop"),
    )
    assert snap_compare(app, press=["x"], terminal_size=SIZE)


def test_snapshot_refused_fit_shows_the_reason(snap_compare: Any) -> None:
    """A correct picture: the coverage curve and band without any orange fit or dashes, and
    the caption's second line reads "no law fitted: fewer than 3 fit points" (both laws
    refused for that reason, so the analysis names no better one)."""
    app = PlotHost(contract_analysis(fit_refused="fewer than 3 fit points"))
    assert snap_compare(app, terminal_size=SIZE)
