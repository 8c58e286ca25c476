"""The setup screen through Pilot: its defaults, a server URL, fields flagged inline, and the
recent sessions it opens."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import DataTable, Input, Static

from tests.tui_fakes import make_session
from tests.tui_pilot import (
    SIZE,
    config_home_fixture,  # noqa: F401 - an autouse fixture
    until,
)
from troop.engine.runner import Launch
from troop.tui.app import TroopApp
from troop.tui.screens.setup import SetupScreen

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
