"""The coverage plot draws only numbers from the analysis, on every budget axis."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.plot_analyses import _axes, _coverage, contract_analysis
from troop.engine.analytics.results import Refused
from troop.engine.analytics.results_curves import (
    BetaBinomialFit,
    CoverageRefused,
    LawCurve,
    PowerLawFit,
)
from troop.tui.widgets.plot import curves


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
