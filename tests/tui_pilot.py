"""The Pilot tests' harness: a private config folder, a wait for a condition, and the app on
a live screen whose run samples nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.tui_fakes import Clock, FakeRun
from troop.engine.runner import Launch
from troop.engine.settings import RunSettings
from troop.tui.app import TroopApp
from troop.tui.observer import LiveObserver
from troop.tui.screens.live import LiveScreen

SIZE = (120, 36)  # the terminal the Pilot tests run in: columns, rows


@pytest.fixture(name="config_home", autouse=True)
def config_home_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
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
