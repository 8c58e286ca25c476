"""The real terminal, made safe to lose.

When a terminal goes away mid-run (its window closed, its ssh connection dropped), reads from
it and writes to it fail with EIO. Textual's own driver lets either failure kill the thread it
happens in: a dead input thread panics the app, and a dead output thread leaves its bounded
queue without a reader, so the next thirty writes, and the driver's final `close()`, block the
event loop forever (the TUI then neither samples nor exits). This driver turns both failures
into one event: output from then on is dropped, and the app is asked to leave the way `q` does
(live sampling stopped, stored samples kept, the worker freed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from textual.app import App
from textual.drivers.linux_driver import LinuxDriver


class TerminalOutput:
    """The terminal's output stream for Textual's writer thread: writes that fail because the
    terminal is gone are dropped and reported once through `on_hangup`."""

    def __init__(self, file: IO[str], on_hangup: Callable[[], None]) -> None:
        self._file = file
        self._on_hangup = on_hangup
        self.hung_up = False

    def _gone(self) -> None:
        if not self.hung_up:
            self.hung_up = True
            self._on_hangup()

    def write(self, text: str) -> int:
        if not self.hung_up:
            try:
                return self._file.write(text)
            except OSError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.hung_up:
            try:
                self._file.flush()
            except OSError:
                self._gone()

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return True


class HangupSafeDriver(LinuxDriver):
    """Textual's Linux driver, but a terminal that disappears ends the app cleanly."""

    def __init__(self, app: App[Any], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.output = TerminalOutput(self._file, self._hang_up)  # type: ignore[arg-type]
        self._file = self.output  # type: ignore[assignment]

    def _hang_up(self) -> None:
        """Called from the input or the output thread: drop output from now on and ask the app
        to leave (the app's `on_terminal_hangup` acts once, however often it is asked)."""
        self.output.hung_up = True
        on_hangup = getattr(self._app, "on_terminal_hangup", None)
        if on_hangup is not None:
            self._app.call_later(on_hangup)  # thread-safe: posts a message to the app

    def run_input_thread(self) -> None:
        try:
            super().run_input_thread()
        except OSError:
            self._hang_up()
