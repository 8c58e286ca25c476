"""Analyses with known curves for the coverage plot, and an app that shows the plot alone."""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import Static

from troop.engine.analytics.results import Analysis, Fits, Refused, SessionInfo
from troop.engine.analytics.results_cost import Cost, CostAxes, Electricity, PerSolved
from troop.engine.analytics.results_curves import (
    BetaBinomialFit,
    HorizonForecast,
    LawCurve,
    PassAtK,
    PowerLawFit,
)
from troop.engine.storage.config import (
    BackendConfig,
    ModelIdentity,
    ProblemSetConfig,
    PromptFormatSetting,
    SamplingConfig,
)
from troop.tui.widgets.plot import CoveragePlot

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
        model=ModelIdentity(name=name),
        backend=BackendConfig(),
        problem_set=ProblemSetConfig(),
        sampling=SamplingConfig(),
        seed=None,
        prompt_format=PromptFormatSetting(),
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


def _coverage(analysis: Analysis) -> PassAtK:
    assert isinstance(analysis.coverage, PassAtK)
    return analysis.coverage


def _axes(analysis: Analysis) -> CostAxes:
    assert analysis.cost.axes is not None
    return analysis.cost.axes
