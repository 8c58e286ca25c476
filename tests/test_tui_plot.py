"""The coverage plot on screen: the x key, its caption, an overlaid session, real sessions, and
the pictures it draws."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.plot_analyses import SIZE, PlotHost, _axes, _coverage, caption, contract_analysis
from troop.engine.analytics.analysis import analyse_path
from troop.engine.analytics.backtest import Backtest
from troop.engine.analytics.results_curves import PowerLawFit, SolvedVsSpent
from troop.engine.events import SampleRecord
from troop.engine.storage import session as session_file
from troop.engine.storage.session import Session, StoredProblem
from troop.tui.widgets.plot import AXES, CoveragePlot
from troop.verifiers.base import Status, Verdict

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
