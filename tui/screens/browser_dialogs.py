"""The sample browser's dialogs: a mark's label and note, and where to copy a sample."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label


class _Sample(Protocol):
    """What a dialog names: the browser's Entry."""

    @property
    def problem_id(self) -> str: ...

    @property
    def sample_index(self) -> int: ...


class MarkDialog(ModalScreen[tuple[str, str] | None]):
    """Asks for a mark's label and note; enter in the note stores it, escape cancels."""

    CSS_PATH = "browser.tcss"
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, entry: _Sample, labels: list[str]) -> None:
        super().__init__(classes="browser-dialog")
        self.entry = entry
        self.labels = labels

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"mark sample {self.entry.sample_index} of {self.entry.problem_id}"))
            yield Input(
                value=self.labels[0],
                placeholder="label",
                id="mark-label",
                suggester=SuggestFromList(self.labels, case_sensitive=False),
            )
            yield Input(placeholder="note (optional)", id="mark-note")
            yield Label(Text("enter: store · escape: cancel"), classes="browser-hint")

    @on(Input.Submitted, "#mark-label")
    def _label_done(self) -> None:
        self.query_one("#mark-note", Input).focus()

    @on(Input.Submitted, "#mark-note")
    def _note_done(self) -> None:
        label = self.query_one("#mark-label", Input).value.strip()
        if not label:
            self.notify("a mark needs a label", severity="warning")
            self.query_one("#mark-label", Input).focus()
            return
        self.dismiss((label, self.query_one("#mark-note", Input).value))

    def action_cancel(self) -> None:
        self.dismiss(None)


class CopyDialog(ModalScreen[str | None]):
    """Asks where to copy the sample; enter writes, escape cancels."""

    CSS_PATH = "browser.tcss"
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, path: Path) -> None:
        super().__init__(classes="browser-dialog")
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("copy the sample's text to"))
            yield Input(value=str(self.path), id="copy-path")
            yield Label(Text("enter: write · escape: cancel"), classes="browser-hint")

    @on(Input.Submitted)
    def _done(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
