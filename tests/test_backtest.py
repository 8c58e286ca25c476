"""The backtest: forecasts fitted on the first m samples of every problem against the coverage
all n samples show, on planted populations and through analyse()."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_analysis import _make_session
from troop.engine.analytics import backtest, passk
from troop.engine.analytics.analysis import analyse_path
from troop.engine.analytics.results import Refused


def planted(problems: int, n: int, alpha: float, beta: float, seed: int) -> np.ndarray:
    """Pass/fail of n independent samples per problem, success rates drawn from a Beta."""
    rng = np.random.default_rng(seed)
    rates = rng.beta(alpha, beta, problems)
    return np.asarray(rng.random((problems, n)) < rates[:, None])


def run_backtest(outcomes: np.ndarray) -> backtest.Backtest:
    problems, n = outcomes.shape
    c = outcomes.sum(axis=1)
    cov = passk.coverage(np.full(problems, n), c, np.array([n]), replicates=1000, seed=0)
    ms = backtest.prefixes(n)
    passes = backtest.prefix_passes([np.flatnonzero(row) for row in outcomes], [m for _, m in ms])
    return backtest.backtest(
        n, passes, ms, float(cov.pass_at_k[-1]), float(cov.low[-1]), float(cov.high[-1]), 0.95
    )


@pytest.mark.parametrize(("alpha", "beta", "seed"), [(0.3, 3.0, 0), (0.5, 8.0, 1), (0.2, 1.0, 2)])
def test_a_planted_beta_population_is_forecast_closely_by_the_beta_binomial_law(
    alpha: float,
    beta: float,
    seed: int,
) -> None:
    result = run_backtest(planted(600, 256, alpha, beta, seed))
    assert [(f.fraction, f.m) for f in result.forecasts][::2] == [(16, 16), (8, 32), (4, 64)]
    for f in result.forecasts:
        assert f.refused is None and f.coverage is not None and f.error is not None
        assert f.error == pytest.approx(abs(f.coverage - result.observed))
    beta_binomial = [f for f in result.forecasts if f.law == "beta_binomial"]
    # The law is the truth here: from 1/16 of the budget it misses by a few points at most,
    # and from 1/8 and 1/4 it stays within the observed value's bootstrap interval.
    assert all(f.error is not None and f.error < 0.04 for f in beta_binomial)
    assert all(f.inside for f in beta_binomial if f.fraction <= 8)


def test_the_error_is_large_when_the_prefix_misleads() -> None:
    # Half the problems become solvable only after their first 64 samples (a drifting
    # sampler): whatever a law learns from the first 16 cannot forecast that.
    outcomes = planted(300, 256, 0.3, 3.0, 3)
    outcomes[:150, :64] = False
    outcomes[:150, 64:] |= np.random.default_rng(4).random((150, 192)) < 0.2
    result = run_backtest(outcomes)
    early = [f for f in result.forecasts if f.fraction == 16]
    assert all(f.error is not None and f.error > 0.1 and not f.inside for f in early)


def test_prefix_coverage_matches_the_unbiased_estimator_at_k_equal_m() -> None:
    # A prefix of m samples is a fair draw of m: over many orders of the same samples, the
    # share of problems with a pass among their first m averages to the unbiased pass@m.
    outcomes = planted(200, 64, 0.4, 4.0, 5)
    n = outcomes.shape[1]
    c = outcomes.sum(axis=1)
    rng = np.random.default_rng(6)
    orders = 300
    for _, m in backtest.prefixes(n):
        exact = passk.curves(np.full(len(c), n), c, np.array([m]))[:, 0]
        estimate = float(exact.mean())
        # Variance of one order's prefix coverage: each problem's indicator is Bernoulli(pass@m).
        sd = float(np.sqrt((exact * (1 - exact)).sum())) / len(c)
        shares = []
        for _ in range(orders):
            shuffled = [np.flatnonzero(rng.permutation(row)) for row in outcomes]
            shares.append(float((backtest.prefix_passes(shuffled, [m])[0] > 0).mean()))
        assert abs(shares[0] - estimate) < 4 * sd  # one order: within the estimator's spread
        assert abs(float(np.mean(shares)) - estimate) < 4 * sd / np.sqrt(orders)


@pytest.mark.parametrize("m", [4, 25, 625, 10_000])
def test_prefix_coverage_is_the_mean_unbiased_estimator(m: int) -> None:
    c = np.random.default_rng(m).binomial(m, np.array([0.0, 0.001, 0.02, 0.3, 0.9, 1.0] * 20))
    ks = passk.k_grid(m)
    expected = passk.mean_curve(np.full(len(c), m), c)[ks - 1]
    assert backtest.prefix_coverage(m, c, ks) == pytest.approx(expected, abs=1e-10, rel=1e-10)
    assert backtest.prefix_coverage(m, np.zeros(5, dtype=np.int64), ks).tolist() == [0.0] * len(ks)


def test_prefix_passes_counts_passes_before_m() -> None:
    positions = [np.array([0, 5, 9]), np.array([], dtype=np.int64), np.array([4])]
    # Positions are 0-based: a pass at position 4 is within the first 5, not the first 4.
    assert backtest.prefix_passes(positions, [4, 5, 10]).tolist() == [
        [1, 0, 0],
        [1, 0, 1],
        [3, 0, 1],
    ]


def test_prefixes_and_refusals() -> None:
    assert backtest.prefixes(16) == [(4, 4)]
    assert backtest.prefixes(40) == [(8, 5), (4, 10)]
    assert backtest.prefixes(100) == [(16, 6), (8, 12), (4, 25)]
    assert backtest.refusal(64) is None
    assert backtest.refusal(15) == (
        "needs at least 16 verified samples per problem (a quarter of them to fit on), has 15"
    )


def test_every_analysis_carries_the_backtest(tmp_path: Path) -> None:
    outcomes = planted(30, 64, 0.5, 3.0, 7)
    statuses = {f"q{j}": ["pass" if x else "fail" for x in row] for j, row in enumerate(outcomes)}
    # An unjudged sample is skipped: the prefix is of each problem's judged samples.
    statuses["q0"] = [None, *statuses["q0"]]
    result = analyse_path(_make_session(tmp_path / "s.troop", statuses))
    data = result.to_json()
    json.dumps(data, allow_nan=False)
    bt = result.backtest
    assert isinstance(bt, backtest.Backtest)
    assert bt.n == 64 and bt.observed == result.coverage.pass_at_k[-1]
    assert [(f.law, f.m) for f in bt.forecasts] == [
        ("power_law", 4),
        ("beta_binomial", 4),
        ("power_law", 8),
        ("beta_binomial", 8),
        ("power_law", 16),
        ("beta_binomial", 16),
    ]
    by = {(f.law, f.m): f for f in bt.forecasts}
    expected = run_backtest(outcomes)
    for f in expected.forecasts:
        assert by[(f.law, f.m)].coverage == pytest.approx(f.coverage)
    summary = data["backtest"]["summary"]  # the JSON carries the one-line summary too
    assert summary == bt.summary()
    assert summary.startswith("power law from 1/8 of the budget ")
    assert "; beta-binomial " in summary


def test_the_backtest_is_refused_with_a_reason(tmp_path: Path) -> None:
    few = analyse_path(
        _make_session(tmp_path / "few.troop", {"a": ["pass", "fail"] * 4, "b": ["fail"] * 8})
    )
    assert few.backtest == Refused(
        "needs at least 16 verified samples per problem (a quarter of them to fit on), has 8"
    )
    adaptive = analyse_path(
        _make_session(
            tmp_path / "adaptive.troop",
            {"a": ["fail"] * 20 + ["pass"]},
            meta={"coverage_only": True},
        )
    )
    assert adaptive.backtest == Refused("coverage-only session: its budget followed the verdicts")
    none = analyse_path(_make_session(tmp_path / "none.troop", {"a": [None] * 20}))
    assert isinstance(none.backtest, Refused)
