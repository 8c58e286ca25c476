"""SVG snapshots of each screen (pytest-textual-snapshot), with clocks, seeds and the cursor
blink frozen. Each test's docstring says what a correct picture shows; after a deliberate
change, look at the picture and accept it with `pytest --snapshot-update`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.tui_fakes import Clock, FakeRun, make_session, script
from troop.engine.runner import Launch
from troop.engine.settings import RunSettings
from troop.tui.app import TroopApp
from troop.tui.observer import LiveObserver
from troop.tui.screens.live import LiveScreen
from troop.tui.screens.setup import SetupScreen

SIZE = (120, 36)


@pytest.fixture(autouse=True)
def quiet_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sessions_home: Path) -> None:
    """Default theme, no recent sessions, nothing from the person's own settings."""
    monkeypatch.setenv("TROOP_CONFIG_HOME", str(tmp_path / "config"))
    sessions_home.mkdir(parents=True, exist_ok=True)


async def _until(pilot: Any, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the screen never got there"
        await pilot.pause(0.05)


def _live_app(tmp_path: Path) -> tuple[TroopApp, Clock]:
    # A fixed path: the title shows the file's name.
    path = make_session(tmp_path / "fixture.sqlite")
    clock = Clock()

    def factory(launch: Launch, observer: LiveObserver, notify: Any = None) -> FakeRun:
        return FakeRun(launch, observer, path=path)

    launch = Launch(RunSettings(session=path, parallel=4))
    app = TroopApp(
        lambda: LiveScreen(launch=launch, run_factory=factory, clock=clock), watch_themes=False
    )
    return app, clock


async def _scripted(pilot: Any, clock: Clock) -> None:
    """Feed the fixed stretch of a run, wait for the analysis, clear the toasts."""
    app = pilot.app
    screen = app.screen
    await _until(pilot, lambda: screen.state.phase == "sampling")
    script(screen.observer, clock)
    screen.request_analysis(force=True)
    await _until(pilot, lambda: screen.analysis is not None and not screen._analysing)
    await pilot.pause(0.3)
    app.clear_notifications()
    screen.tick(force=True)  # redraw now, whatever the CPU-share throttle says
    await pilot.pause(0.1)


def test_setup_screen(snap_compare: Any) -> None:
    """The setup screen as `troop` opens it: the title line says Enter starts; the form on the
    left is prefilled with model smollm2-135m, problem set arithmetic, subset 10, 10 samples
    per problem, 16 parallel slots, temperature 0.8, top-p 0.95, 256 max tokens, seed 0, GPU
    layers -1 and verifier "auto (by problem format)", with a Start sampling button and no
    field flagged; the model field has focus. On the right, "Recent sessions" lists
    "(none yet)". The footer shows the start, open, help, quit and theme keys. Dark theme."""
    app = TroopApp(lambda: SetupScreen(), watch_themes=False)
    assert snap_compare(app, terminal_size=SIZE)


def test_setup_screen_flags_bad_values(snap_compare: Any) -> None:
    """The setup screen after typing samples 0 and temperature -1: both fields are tinted
    red and a red line under each says what is wrong ("samples per problem: at least 1";
    "numbers >= 0, e.g. 0.8 or 0.2,0.8"); every other field is unflagged."""
    app = TroopApp(lambda: SetupScreen(), watch_themes=False)

    async def run_before(pilot: Any) -> None:
        screen = pilot.app.screen
        screen.query_one("#f-samples").value = "0"
        screen.query_one("#f-temperatures").value = "-1"
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_live_screen(snap_compare: Any, tmp_path: Path) -> None:
    """The live screen mid-run (fake sampler, frozen clock). Title: "troop · fixture.sqlite ·
    smollm2-135m · arithmetic". Four stream panes: arith/000 #0 with "The answer is 14." and a
    green border ("4 tok done · #0 pass"), arith/001 #1 still decoding (10 tok), arith/002 #2
    showing the last lines of a step-by-step multiplication (21 tok), arith/003 #3 with a red
    border ("#3 fail"). The problems table lists arith/000..003 with n 8, judged 8, correct
    4/2/1/0, pass@1 0.500/0.250/0.125/0.000 and status solved (green) x3, unsolved (red). The
    plot shows coverage rising from about 0.22 at k=1 to 0.75 at k=8 on a log x axis labelled
    "samples per problem", a shaded bootstrap band, and the forecast of the law the analysis
    calls better, the beta-binomial, dotted beyond k=8 towards 1 ("smollm2-135m
    beta-binomial" in the legend); its caption reads "beta-binomial alpha=2.09 beta=7.5
    rmse=0.00815". The status bar reads "sampling │ 3.9 tok/s · 0.2 samples/s │ 2/32
    samples · ETA 2.5 min │ 598 tok · 162G FLOPs · $0.000306 │ sandbox bwrap"."""
    app, clock = _live_app(tmp_path)

    async def run_before(pilot: Any) -> None:
        await _scripted(pilot, clock)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare: Any, tmp_path: Path) -> None:
    """`?` on the live screen: a centred dialog titled "Keys of the live session screen" lists
    every key with what it does: p pause/resume, s stop, r continue sampling, + raise budget,
    a add problems, t temperature, x x axis, c compare session, b browse samples, o sort
    table, e export report, ? help, q quit, Enter on a problem row, Tab, click header,
    Ctrl+T theme, Ctrl+Q quit; under it "Escape, q or ? closes this help." The dialog sits on
    the plain theme background (opaque: the live screen is not drawn behind it)."""
    app, clock = _live_app(tmp_path)

    async def run_before(pilot: Any) -> None:
        await _scripted(pilot, clock)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
