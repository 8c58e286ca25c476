"""The troop app: a thin shell that installs themes and opens the first screen."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import select
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from troop.engine.runner import Launch
from troop.errors import TroopError
from troop.tui import themes
from troop.tui.messages import ThemeFilesChanged

#: Textual's own theme, used only if troop's default theme file is itself broken.
LAST_RESORT_THEME = "textual-dark"


class TroopApp(App[int]):
    """Holds the screens; everything else lives in them (tui/screens/setup.py, live.py)."""

    CSS_PATH = "app.tcss"
    TITLE = "troop"
    BINDINGS = [
        Binding("ctrl+t", "next_theme", "theme", key_display="Ctrl+T"),
        Binding("ctrl+q", "quit", "quit", key_display="Ctrl+Q", priority=True),
    ]

    def __init__(
        self,
        start: Callable[[], Screen[None]] | None = None,
        *,
        watch_themes: bool = True,
        watch_terminal: bool = False,
    ) -> None:
        driver = None
        if watch_terminal and sys.platform != "win32":
            from troop.tui.terminal import HangupSafeDriver

            driver = HangupSafeDriver
        super().__init__(driver_class=driver)
        # Leave when the terminal hangs up (its window closed, its ssh dropped), even where no
        # SIGHUP arrives: a TUI must not keep sampling, or spin, on a terminal that is gone.
        self.watch_terminal = watch_terminal
        self.start = start  # makes the first screen; None: the setup screen
        self.watch_themes = watch_themes  # reload theme files when they change (watchdog)
        self.chosen_theme = themes.saved_theme() or themes.DEFAULT_THEME  # the person's pick
        self.theme_sources: dict[str, Path] = {}  # file of each theme loaded from themes/
        self.theme_problems: list[str] = []  # messages of refused theme files
        self._applying = False  # True while the app (not a person) sets the theme
        self._watcher: themes.ThemeWatcher | None = None

    def on_mount(self) -> None:
        # A closed terminal (SIGHUP) or a polite kill (SIGTERM) stops sampling and leaves,
        # rather than spinning on a terminal that is gone.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, lambda: self.call_later(self.action_quit))
        if self.watch_terminal:
            self.set_interval(1.0, self._check_terminal)
        # Everything imported so far (Textual, numpy, llama.cpp bindings...) lives as long as
        # the app: keep it out of the collector's scans, whose pauses would delay key presses.
        gc.freeze()
        self.load_themes()
        if self.watch_themes:
            self._watcher = themes.ThemeWatcher(
                themes.theme_dirs(), self._theme_files_changed
            ).start()
        from troop.tui.screens.setup import SetupScreen

        self.push_screen(self.start() if self.start is not None else SetupScreen())

    def _check_terminal(self) -> None:
        poller = select.poll()
        poller.register(
            sys.__stdin__.fileno() if sys.__stdin__ else 0,
            select.POLLHUP | select.POLLERR | select.POLLNVAL,
        )
        if poller.poll(0):
            self.on_terminal_hangup()

    def on_terminal_hangup(self) -> None:
        """The terminal is gone (tui/terminal.py, or the poll above): leave as `q` does."""
        if self.watch_terminal:
            self.watch_terminal = False
            self.call_later(self.action_quit)

    def _theme_files_changed(self, path: Path) -> None:
        self.post_message(ThemeFilesChanged(path))  # from the watcher's thread

    def on_unmount(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

    # -- themes -------------------------------------------------------------------------

    def load_themes(self) -> None:
        """(Re)read every theme file, report refused ones, apply the chosen theme (or the
        default when it is missing or broken)."""
        loaded = themes.load_themes()
        for gone in set(self.theme_sources) - set(loaded.themes):
            self.unregister_theme(gone)  # its file was removed or broken
        for theme in loaded.themes.values():
            self.register_theme(theme)
        self.theme_sources = loaded.sources
        self.theme_problems = [str(e) for e in loaded.errors]
        for problem in self.theme_problems:
            self.notify(problem, title="theme file refused", severity="error", timeout=10)
        name = self.chosen_theme
        if name not in self.available_themes:
            if name != themes.DEFAULT_THEME:
                self.notify(
                    f"theme {name!r} is unavailable; using {themes.DEFAULT_THEME}",
                    severity="warning",
                )
            name = themes.DEFAULT_THEME
        if name not in self.available_themes:
            name = LAST_RESORT_THEME
        self._apply(name)

    def _apply(self, name: str) -> None:
        self._applying = True
        try:
            if self.theme == name:
                # Same name, new colours: rebuild the stylesheet's variables.
                self.refresh_css(animate=False)
                self.theme_changed_signal.publish(self.current_theme)
            else:
                self.theme = name
        finally:
            self._applying = False

    def watch_theme(self, name: str) -> None:
        if not self._applying and name != self.chosen_theme:
            self.chosen_theme = name  # picked by a person (key or command palette): keep it
            themes.save_theme(name)

    def on_theme_files_changed(self, message: ThemeFilesChanged) -> None:
        self.load_themes()

    def action_next_theme(self) -> None:
        """Cycle through the themes from theme files (troop's and the person's own)."""
        names = sorted(self.theme_sources) or [LAST_RESORT_THEME]
        current = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(current + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2)

    # -- leaving ------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Stop any live sampling (stored samples stay) and free the model before exiting."""
        from troop.tui.screens.live import LiveScreen

        for screen in reversed(self.screen_stack):
            if isinstance(screen, LiveScreen):
                await screen.shutdown()
        self.exit(0)


# -- entry points (troop/commands.py) ------------------------------------------------------


def _run(start: Callable[[], Screen[None]] | None) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise TroopError(
            "the TUI needs a terminal", hint="use `troop run --headless` to sample without one"
        )
    app = TroopApp(start, watch_terminal=True)
    app.run()
    return app.return_code or 0


def run_setup() -> int:
    """`troop` with no command: the setup screen."""
    return _run(None)


def run_live(launch: Launch) -> int:
    """`troop run` without --headless: straight into the live screen with those settings
    (checked by the command line before the TUI starts)."""
    from troop.tui.screens.live import LiveScreen

    return _run(lambda: LiveScreen(launch=launch))


def run_open(session: Path) -> int:
    """`troop open SESSION`: browse a stored session, `r` continues sampling it; a session
    another process is sampling is followed live, read-only, until that run ends."""
    from troop.engine.storage.lock import holder
    from troop.engine.storage.session import Session
    from troop.tui.screens.live import LiveScreen

    Session.open(session).close()  # a missing or foreign file fails here, as one line
    follow = holder(session)
    return _run(lambda: LiveScreen(session_path=session, follow=follow))
