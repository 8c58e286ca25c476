"""The report's forecasts as blocks: the fitted laws, what they forecast, and their backtest."""

# The coverage section's second half: every figure is one the analysis computed (its Fits and
# its Backtest), formatted here and never refitted.

from __future__ import annotations

from troop.engine.analytics.fits import LAW_NAMES
from troop.engine.analytics.results import Analysis, Fits, Refused
from troop.engine.analytics.results_curves import LawFit, TargetBudget
from troop.engine.numbers import MISSING, count, fraction, interval, number
from troop.reports import plots
from troop.reports.blocks import Block, Heading, Image, Para, Table

Rows = list[tuple[str, ...]]


def _law_rows(fit: Fits) -> tuple[Rows, Rows, Rows]:
    """Rows of the fits table, the forecasts table and the budget-for-target table."""
    fits: Rows = []
    forecasts: Rows = []
    budgets: Rows = []
    laws: tuple[tuple[str, LawFit | Refused], ...] = (
        ("power_law", fit.power_law),
        ("beta_binomial", fit.beta_binomial),
    )
    for key, law in laws:
        name = LAW_NAMES[key]
        if isinstance(law, Refused):
            fits.append((name, f"not fitted: {law.reason}", MISSING, MISSING, ""))
            continue
        params = ", ".join(f"{n} = {number(v)}" for n, v in law.parameters().items())
        span = f"{count(law.k_from)}–{count(law.k_to)}"
        better = "better fit" if fit.better == key else ""
        fits.append((name, params, number(law.rmse), span, better))
        for p in law.forecast:
            forecasts.append((name, count(p.k), fraction(p.coverage), interval(p.low, p.high)))
        for b in law.budget_for:
            budgets.append((name, fraction(b.target), budget_k(b.k), interval_k(b)))
    return fits, forecasts, budgets


def budget_k(k: float | None) -> str:
    """A forecast budget: None means the law never reaches the target; under 1, one sample
    already does."""
    if k is None:
        return "beyond reach"
    return "≤ 1" if k <= 1 else count(k)


def interval_k(b: TargetBudget) -> str:
    """A forecast budget's interval; an upper end the analysis left out (not finite) reads ∞."""
    if b.low is None and b.high is None:
        return MISSING
    low = budget_k(b.low) if b.low is not None else MISSING
    high = budget_k(b.high) if b.high is not None else "∞"
    return f"[{low}, {high}]"


def law_tables(fit: Fits) -> list[Block]:
    """The fitted laws, their forecast coverage at larger budgets, and the budget each says a
    target coverage needs (the last two only where a law was fitted)."""
    fits, forecasts, budgets = _law_rows(fit)
    blocks: list[Block] = [
        Table(
            ("law", "parameters", "rmse", "fitted k", ""),
            tuple(fits),
            (False, False, True, False, False),
            caption="Fitted scaling laws",
        )
    ]
    if forecasts:
        blocks.append(
            Table(
                ("law", "k", "forecast coverage", "interval"),
                tuple(forecasts),
                (False, True, True, True),
                caption="Forecast coverage at larger budgets",
            )
        )
    if budgets:
        blocks.append(
            Table(
                ("law", "target coverage", "samples per problem", "interval"),
                tuple(budgets),
                (False, True, True, True),
                caption="Forecast budget to reach a coverage",
            )
        )
    return blocks


def backtest_section(analysis: Analysis) -> list[Block]:
    """How far each law's forecast, fitted on part of the budget, missed the coverage seen."""
    bt = analysis.backtest
    blocks: list[Block] = [Heading(3, "Backtest of the forecasts")]
    if isinstance(bt, Refused):
        return [*blocks, Para(f"Not available: {bt.reason}.", note=True)]
    conf = round(100 * bt.confidence)
    rows = tuple(
        (
            f"1/{f.fraction} ({count(f.m)})",
            LAW_NAMES[f.law],
            fraction(f.coverage),
            fraction(f.error) if f.error is not None else f"not fitted: {f.refused}",
            "" if f.inside is None else ("yes" if f.inside else "no"),
        )
        for f in bt.forecasts
    )
    blocks.append(
        Para(
            f"Each law is fitted on the first m samples of every problem alone and "
            f"forecasts coverage at n = {count(bt.n)}, where all the samples show "
            f"{fraction(bt.observed)} ({conf}% interval "
            f"{interval(bt.low, bt.high)}). {bt.summary() or ''}"
        )
    )
    blocks.append(
        Table(
            (
                "fitted on (m)",
                "law",
                f"forecast at {count(bt.n)}",
                "absolute error",
                f"inside the {conf}% interval",
            ),
            rows,
            (False, False, True, True, False),
            caption="Forecasts from part of the budget against the observed value",
        )
    )
    png = plots.backtest(analysis)
    if png:
        blocks.append(
            Image(
                "backtest",
                png,
                "Forecast coverage at the full budget against "
                "the samples per problem the laws were fitted on, with the "
                "observed coverage and its interval.",
                "Backtest: each law fitted "
                "on the first m samples per problem, forecasting the coverage at "
                "the full budget (band: the observed value's interval).",
            )
        )
    return blocks
