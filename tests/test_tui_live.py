"""The live screen through Pilot on a fake sampler: the observer's coalescing, the
scheduler's steering hooks, what the screen shows, and the keys that steer a run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Static

from tests.tui_fakes import Clock, make_session, script
from tests.tui_pilot import (
    SIZE,
    config_home_fixture,  # noqa: F401 - an autouse fixture
    fake_app,
    until,
)
from troop.engine.control import RunControl
from troop.engine.events import TokensDecoded
from troop.engine.scheduler import Scheduler
from troop.engine.work import PromptSpec, SamplingParams
from troop.tui.app import TroopApp
from troop.tui.observer import TAIL_CHARS, LiveObserver
from troop.tui.screens.ask import AskScreen, HelpScreen
from troop.tui.screens.live import LiveScreen

# -- the observer and the engine's steering hooks -----------------------------------------------


def test_observer_coalesces_a_token_flood_into_one_update_per_slot() -> None:
    clock = Clock(0.0)
    obs = LiveObserver(clock)
    from troop.engine.events import RunStarted, SampleStarted

    obs.on_event(RunStarted(1, 100, 0, 25, 4))
    for slot in range(4):
        obs.on_event(SampleStarted(slot, f"p{slot}", 0, 0.8, 1))
    obs.snapshot()
    for n in range(5000):
        obs.on_event(TokensDecoded(n % 4, f"p{n % 4}", 0, "ab", n // 4 + 1))
    clock.now = 2.0
    snap = obs.snapshot()
    assert sorted(snap.streams) == [0, 1, 2, 3]  # one coalesced state per slot
    assert all(len(s.text) <= 2 * TAIL_CHARS for s in snap.streams.values())
    assert snap.streams[1].n_tokens == 1250
    assert snap.tokens == 5000 and snap.tokens_per_s == pytest.approx(2500.0)
    assert obs.snapshot().streams == {}  # nothing new: nothing to redraw


def test_scheduler_takes_a_new_temperature_and_added_problems_mid_run() -> None:
    control = RunControl(2)
    a, b = PromptSpec("a", (1, 2), ()), PromptSpec("b", (1, 3), ())
    sched = Scheduler([a], set(), control, SamplingParams(temperatures=(0.8,)), 0)
    first = sched.next_item()
    assert first is not None and first.temperature == 0.8
    control.set_temperatures((0.2, 1.0))
    control.add_prompts([b, a])  # `a` again: already scheduled, not duplicated
    items = [sched.next_item() for _ in range(4)]
    assert [(i.prompt.problem_id, i.sample_index, i.temperature) for i in items if i] == [
        ("a", 1, 1.0),
        ("b", 0, 0.2),
        ("b", 1, 1.0),
    ]
    assert items[-1] is None


# -- the live screen (fake sampler) --------------------------------------------------------------


def test_live_screen_shows_streams_problems_and_status(tmp_path: Path) -> None:
    path = make_session(tmp_path / "fixture.sqlite")
    clock, runs = Clock(), []

    async def go() -> None:
        app = fake_app(path, clock, runs)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await until(pilot, lambda: screen.state.phase == "sampling")
            script(screen.observer, clock)
            screen.request_analysis(force=True)
            await until(pilot, lambda: screen.analysis is not None and not screen._analysing)
            screen.tick(force=True)  # redraw now, whatever the CPU-share throttle says
            await pilot.pause(0.2)
            pane = screen.query_one("#stream-2")
            assert "540 + 18 = 558" in str(pane.render())
            assert pane.border_title == "arith/002 #2 T0.8"
            assert screen.query_one("#stream-0").has_class("-pass")
            assert screen.query_one("#stream-3").has_class("-fail")
            table = screen.query_one("#problems", DataTable)
            assert table.row_count == 4
            assert [str(c) for c in table.get_row("arith/000")] == [
                "arith/000",
                "8",
                "8",
                "4",
                "0.500",
                "solved",
            ]
            status = str(screen.query_one("#status").render())
            for needle in ("sampling", "tok/s", "samples/s", "ETA", "FLOPs", "$", "sandbox bwrap"):
                assert needle in status, (needle, status)
            before = str(table.get_cell("arith/000", "status").style)
            await pilot.press("ctrl+t")  # the light theme: status colours follow it
            await until(pilot, lambda: str(table.get_cell("arith/000", "status").style) != before)
            clock.now = 112.0  # the flash fades
            await until(pilot, lambda: not screen.query_one("#stream-0").has_class("-pass"))

    asyncio.run(go())


def test_live_keys_steer_the_run(tmp_path: Path) -> None:
    path = make_session(tmp_path / "fixture.sqlite")
    clock, runs = Clock(), []

    async def answer(pilot: Any, app: TroopApp, text: str) -> None:
        await until(pilot, lambda: isinstance(app.screen, AskScreen))
        app.screen.query_one(Input).value = text
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, AskScreen))

    async def go() -> None:
        app = fake_app(path, clock, runs)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await until(pilot, lambda: runs and runs[0].running.is_set())
            run = runs[0]
            await pilot.press("p")
            assert run.control.paused and screen.state.phase == "paused"
            await pilot.press("p")
            assert not run.control.paused and screen.state.phase == "sampling"
            await pilot.press("t")
            await answer(pilot, app, "0.3,1.1")
            assert run.temperatures == (0.3, 1.1) and run.control.temperatures == (0.3, 1.1)
            await pilot.press("plus")
            await until(pilot, lambda: isinstance(app.screen, AskScreen))
            app.screen.query_one(Input).value = "4"  # lower than the budget: flagged
            await pilot.press("enter")
            assert isinstance(app.screen, AskScreen)
            assert "more than" in str(app.screen.query_one("#ask-error", Static).render())
            await answer(pilot, app, "20")
            await until(pilot, lambda: run.raised == [20])
            assert run.control.budget == 20
            await pilot.press("a")
            await answer(pilot, app, "3")
            await until(pilot, lambda: run.added == [(3, ())])
            other = make_session(tmp_path / "other.sqlite", problems=3, budget=4)
            await pilot.press("c")
            await answer(pilot, app, str(other))
            await until(pilot, lambda: screen.overlay is not None)
            assert screen.overlay.session.path == str(other)
            await pilot.press("x")
            plot = screen.query_one("#plot")
            assert getattr(plot, "axis", "tokens") == "tokens"
            await pilot.press("o")
            assert screen.query_one("#problems").sort_label == "pass@1"
            await pilot.press("s")
            await until(pilot, lambda: screen.state.phase == "cancelled")
            await pilot.press("r")  # continue: a new run on the same session
            await until(pilot, lambda: screen.state.phase == "sampling" and run.running.is_set())
            await pilot.press("q")
            await until(pilot, lambda: run.closed)

    asyncio.run(go())


def test_help_lists_every_key_of_the_live_screen(tmp_path: Path) -> None:
    path = make_session(tmp_path / "fixture.sqlite")

    async def go() -> None:
        app = fake_app(path, Clock(), [])
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            text = str(app.screen.query_one("#help-keys", Static).render())
            shown = {line.split("  ")[0] for line in text.splitlines()}
            for b in [*LiveScreen.BINDINGS, *TroopApp.BINDINGS]:
                assert (b.key_display or b.key) in shown, b
            assert "Enter" in shown
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, LiveScreen))

    asyncio.run(go())
