"""Themes: the shipped ones validate, broken files are reported with their path and field,
and the chosen theme persists and restyles the running app when its file changes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.tui_pilot import (
    SIZE,
    config_home_fixture,  # noqa: F401 - an autouse fixture
    until,
)
from troop.tui import themes
from troop.tui.app import TroopApp

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
