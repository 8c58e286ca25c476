"""The TUI on the real model: from the setup screen to a browsed failure and a report, and a
run steered to a raised budget and a new temperature."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from tests.tui_pilot import (
    SIZE,
    config_home_fixture,  # noqa: F401 - an autouse fixture
    until,
)
from troop.engine.runner import Launch
from troop.engine.settings import RunSettings
from troop.tui.app import TroopApp
from troop.tui.screens.ask import AskScreen
from troop.tui.screens.live import LiveScreen

# -- the real thing ---------------------------------------------------------------------------


@pytest.mark.model
def test_real_session_from_setup_to_a_failed_sample_and_a_report(sessions_home: Path) -> None:
    """Setup -> Enter -> the real model samples and the verifier judges -> the problems table
    fills -> Enter on a problem opens the browser on it -> `e` writes the HTML report."""

    async def go() -> None:
        app = TroopApp(watch_themes=False)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause()
            setup = app.screen
            for key, value in (
                ("subset", "3"),
                ("samples", "4"),
                ("parallel", "4"),
                ("max_tokens", "24"),
            ):
                setup.query_one(f"#f-{key}", Input).value = value
            setup.query_one("#f-model", Input).focus()
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, LiveScreen))
            live = app.screen
            await until(pilot, lambda: live.state.phase == "completed", timeout=500)
            await until(
                pilot,
                lambda: live.analysis is not None and live.analysis.session.verified == 12,
                timeout=30,
            )
            table = live.query_one("#problems", DataTable)
            await until(pilot, lambda: table.row_count == 3)
            assert all(str(table.get_row_at(i)[1]) == "4" for i in range(3))
            rows = {r.problem_id: r for r in live.analysis.problems}
            failed = next((pid for pid, r in rows.items() if r.correct < r.n), None)
            assert failed is not None, "every sample passed: no failure to browse"
            table.focus()
            table.move_cursor(row=table.get_row_index(failed))
            await pilot.press("enter")
            from troop.tui.screens.browser import SampleBrowser

            await until(pilot, lambda: isinstance(app.screen, SampleBrowser))
            browser = app.screen
            assert browser.problem_filter == failed
            await until(pilot, lambda: browser.current is not None)
            assert browser.current.problem_id == failed and browser.current.failed
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is live)
            await pilot.press("e")
            await until(pilot, lambda: getattr(live, "last_export", None) is not None, timeout=120)
            report = live.last_export
            assert report.is_file() and report.suffix == ".html"
            assert failed in report.read_text(encoding="utf-8")
            await pilot.press("q")

    asyncio.run(go())
    sessions = list(sessions_home.glob("*.sqlite"))
    assert len(sessions) == 1


@pytest.mark.model
def test_real_run_takes_a_raised_budget_and_a_new_temperature(sessions_home: Path) -> None:
    """Paused at once, the run gets temperature 0.3 and a budget of 3; resumed, it draws the
    remaining samples at 0.3 (recorded per sample) up to 3 per problem."""
    path = sessions_home / "steer.sqlite"
    launch = Launch(
        RunSettings(session=path, problems="arithmetic:2", samples=2, parallel=2, max_tokens=12)
    )

    async def go() -> None:
        app = TroopApp(lambda: LiveScreen(launch=launch), watch_themes=False)
        async with app.run_test(size=SIZE) as pilot:
            live = app.screen
            await until(pilot, lambda: live.state.phase == "sampling", timeout=120)
            await pilot.press("p")
            live.run.set_temperatures((0.3,))
            await pilot.press("plus")
            await until(pilot, lambda: isinstance(app.screen, AskScreen))
            app.screen.query_one(Input).value = "3"
            await pilot.press("enter")
            await until(pilot, lambda: live.run.prep.budget == 3)
            await pilot.press("p")
            await until(pilot, lambda: live.state.phase == "completed", timeout=500)
            await pilot.press("q")

    asyncio.run(go())
    import sqlite3

    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT problem_id, sample_index, temperature FROM samples").fetchall()
        budget = json.loads(
            conn.execute("SELECT value FROM meta WHERE key = 'budget'").fetchone()[0]
        )
    assert budget == 3 and len(rows) == 6
    assert any(t == pytest.approx(0.3) for _, _, t in rows)  # drawn after the change
