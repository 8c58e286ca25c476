"""The TUI driven through Textual's Pilot: setup, live session, steering keys, themes; and one
real session on the real model from the setup screen to a browsed failure and a report."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Static

from tests.tui_fakes import Clock, FakeRun, make_session, script
from troop.engine.control import RunControl
from troop.engine.events import TokensDecoded
from troop.engine.run import RunSettings
from troop.engine.runner import Launch
from troop.engine.scheduler import PromptSpec, SamplingParams, Scheduler
from troop.tui import themes
from troop.tui.app import TroopApp
from troop.tui.ask import AskScreen, HelpScreen
from troop.tui.live import LiveScreen
from troop.tui.observer import TAIL_CHARS, LiveObserver
from troop.tui.setup import SetupScreen

SIZE = (120, 36)


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Theme choice and user themes go to this test's own folder."""
    home = tmp_path / "config"
    monkeypatch.setenv("TROOP_CONFIG_HOME", str(home))
    return home


async def until(pilot: Any, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until `condition()` holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {condition}")
        await pilot.pause(0.05)


def fake_app(path: Path, clock: Clock, runs: list[FakeRun]) -> TroopApp:
    def factory(launch: Launch, observer: LiveObserver, notify: Any = None) -> FakeRun:
        run = FakeRun(launch, observer, path=path)
        runs.append(run)
        return run

    launch = Launch(RunSettings(session=path, parallel=4))
    return TroopApp(
        lambda: LiveScreen(launch=launch, run_factory=factory, clock=clock), watch_themes=False
    )


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


# -- themes -----------------------------------------------------------------------------------


def test_shipped_themes_validate_one_dark_one_light() -> None:
    loaded = themes.load_themes([themes.builtin_dir()])
    assert not loaded.errors
    assert {"troop-dark", "troop-light"} <= set(loaded.themes)
    assert loaded.themes["troop-dark"].dark and not loaded.themes["troop-light"].dark


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name = 'x'\n[colors]\nprimary = 'not-a-colour'\n", "colors.primary"),
        ("name = 'x'\nshade = 1\n[colors]\nprimary = '#fff'\n", "unknown key 'shade'"),
        ("name = 'x'\n[colors]\nsecondary = '#fff'\n", "needs 'primary'"),
        ("name = = 'x'\n", "not valid TOML"),
        ("name = 'x'\ndark = 'yes'\n[colors]\nprimary = '#fff'\n", "'dark'"),
    ],
)
def test_a_broken_theme_file_is_refused_with_its_path_and_field(
    tmp_path: Path, text: str, needle: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(themes.ThemeError) as info:
        themes.load_theme_file(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_a_broken_chosen_theme_is_reported_and_the_default_used(config_home: Path) -> None:
    (config_home / "themes").mkdir(parents=True)
    (config_home / "themes" / "mine.toml").write_text("name = 'mine'\n[colors]\nprimary = 7\n")
    themes.save_theme("mine")

    async def go() -> None:
        app = TroopApp(watch_themes=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert app.theme == themes.DEFAULT_THEME
            assert any("mine.toml" in p for p in app.theme_problems)
            assert any("mine.toml" in n.message for n in app._notifications)
            assert themes.saved_theme() == "mine"  # the choice stays, for when it is fixed

    asyncio.run(go())


def test_theme_key_cycles_and_the_choice_persists() -> None:
    async def go() -> str:
        app = TroopApp(watch_themes=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert app.theme == "troop-dark"
            await pilot.press("ctrl+t")
            return app.theme

    picked = asyncio.run(go())
    assert picked == "troop-light" and themes.saved_theme() == "troop-light"

    async def again() -> str:
        app = TroopApp(watch_themes=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            return app.theme

    assert asyncio.run(again()) == "troop-light"


def test_editing_a_theme_file_restyles_the_running_app(config_home: Path) -> None:
    folder = config_home / "themes"
    folder.mkdir(parents=True)
    path = folder / "mine.toml"
    path.write_text("name = 'mine'\n[colors]\nprimary = '#112233'\nbackground = '#000000'\n")
    themes.save_theme("mine")

    async def go() -> None:
        app = TroopApp()  # with the watchdog observer
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert app.theme == "mine"
            before = app.theme_variables["primary"]
            path.write_text(
                "name = 'mine'\n[colors]\nprimary = '#aa5500'\nbackground = '#000000'\n"
            )
            await until(pilot, lambda: app.current_theme.primary == "#aa5500")
            assert app.theme_variables["primary"] != before  # the stylesheet was rebuilt
            path.write_text("name = 'mine'\n[colors]\nprimary = 'nope'\n")  # broken: reported
            await until(pilot, lambda: app.theme == themes.DEFAULT_THEME)
            assert any("colors.primary" in p for p in app.theme_problems)

    asyncio.run(go())


# -- the setup screen -------------------------------------------------------------------------


def test_setup_is_prefilled_so_enter_starts_the_default_session() -> None:
    started: list[Launch] = []

    async def go() -> None:
        app = TroopApp(lambda: SetupScreen(start=started.append), watch_themes=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.focused, Input)
            await pilot.press("enter")
            await until(pilot, lambda: bool(started))

    asyncio.run(go())
    s = started[0].settings
    assert (s.model, s.problems, s.limit, s.samples) == ("smollm2-135m", "arithmetic", 10, 10)
    assert started[0].verify.verifier is None  # the format's default verifier


def test_setup_starts_a_server_session_when_a_url_is_given() -> None:
    """A server URL switches the backend: the model field then names the served model."""
    started: list[Launch] = []

    async def go() -> None:
        app = TroopApp(lambda: SetupScreen(start=started.append), watch_themes=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            screen.query_one("#f-base_url", Input).value = "ftp://x"
            await pilot.pause()
            assert "http(s)://" in str(screen.query_one("#e-base_url", Static).render())
            screen.query_one("#f-base_url", Input).value = "http://127.0.0.1:9/v1"
            screen.query_one("#f-model", Input).value = "served-model"
            screen.query_one("#f-api_key_env", Input).value = "MY_KEY"
            await pilot.pause()
            await pilot.press("enter")
            await until(pilot, lambda: bool(started))

    asyncio.run(go())
    s = started[0].settings
    assert (s.backend, s.base_url, s.model, s.api_key_env) == (
        "openai",
        "http://127.0.0.1:9/v1",
        "served-model",
        "MY_KEY",
    )


def test_setup_flags_invalid_values_inline_and_refuses_to_start() -> None:
    started: list[Launch] = []

    async def go() -> None:
        app = TroopApp(lambda: SetupScreen(start=started.append), watch_themes=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            for key, value in (
                ("samples", "0"),
                ("temperatures", "-1"),
                ("top_p", "2"),
                ("model", "no-such-model"),
                ("problems", "nope.jsonl"),
            ):
                screen.query_one(f"#f-{key}", Input).value = value
            await pilot.pause()
            errors = {
                key: str(screen.query_one(f"#e-{key}", Static).render())
                for key in ("samples", "temperatures", "top_p", "model", "problems")
            }
            assert "at least 1" in errors["samples"]
            assert ">= 0" in errors["temperatures"]
            assert "(0, 1]" in errors["top_p"]
            assert "smollm2-135m" in errors["model"]
            assert "no such file" in errors["problems"]
            assert screen.query_one("#f-samples").has_class("-invalid")
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is screen and not started
            # Fixing a field clears its flag.
            screen.query_one("#f-samples", Input).value = "3"
            await pilot.pause()
            assert not screen.query_one("#f-samples").has_class("-invalid")

    asyncio.run(go())


def test_setup_lists_recent_sessions_and_opens_one(sessions_home: Path) -> None:
    sessions_home.mkdir(parents=True)
    path = make_session(sessions_home / "old.sqlite")
    opened: list[Path] = []

    async def go() -> None:
        app = TroopApp(lambda: SetupScreen(open_session=opened.append), watch_themes=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            table = app.screen.query_one("#recent", DataTable)
            assert table.row_count == 1
            assert [str(c) for c in table.get_row_at(0)][:2] == ["old.sqlite", "32/32"]
            await pilot.press("ctrl+o")
            await until(pilot, lambda: bool(opened))

    asyncio.run(go())
    assert opened == [path]


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
                "0.50",
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
            assert screen.overlay["session"]["path"] == str(other)
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
                lambda: live.analysis is not None and live.analysis["session"]["verified"] == 12,
                timeout=30,
            )
            table = live.query_one("#problems", DataTable)
            await until(pilot, lambda: table.row_count == 3)
            assert all(str(table.get_row_at(i)[1]) == "4" for i in range(3))
            rows = {r["id"]: r for r in live.analysis["problems"]}
            failed = next((pid for pid, r in rows.items() if r["correct"] < r["n"]), None)
            assert failed is not None, "every sample passed: no failure to browse"
            table.focus()
            table.move_cursor(row=table.get_row_index(failed))
            await pilot.press("enter")
            from troop.tui.browser import SampleBrowser

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
