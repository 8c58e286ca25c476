"""Small modal screens: ask one value (checked inline before it is accepted), and the key help."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Static

#: Checks a typed value: None when it is acceptable, else one line saying what is wrong.
Check = Callable[[str], str | None]


def parse_temperatures(text: str) -> tuple[float, ...] | None:
    """ "0.2,0.8" -> (0.2, 0.8); None unless every value is a finite number >= 0."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        return None
    if not values or any(not (v >= 0 and v != float("inf")) for v in values):
        return None
    return values


def check_temperatures(text: str) -> str | None:
    return None if parse_temperatures(text) is not None else "numbers >= 0, e.g. 0.8 or 0.2,0.8"


class AskScreen(ModalScreen[str | None]):
    """Ask for one value; Enter accepts it when `check` passes, Escape cancels (None)."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(
        self,
        title: str,
        *,
        value: str = "",
        placeholder: str = "",
        check: Check | None = None,
        suggestions: Iterable[str] = (),
        note: str = "",
    ) -> None:
        super().__init__()
        self.title_text = title  # the question
        self.value = value  # prefilled answer
        self.placeholder = placeholder
        self.check = check
        self.suggestions = list(suggestions)  # completions offered while typing
        self.note = note  # a line under the field (units, what happens next)

    def compose(self) -> ComposeResult:
        with Vertical(id="ask", classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            suggester = SuggestFromList(self.suggestions) if self.suggestions else None
            yield Input(
                self.value,
                placeholder=self.placeholder,
                id="ask-input",
                suggester=suggester,
                select_on_focus=True,
            )
            yield Static("", id="ask-error", classes="field-error")
            if self.note:
                yield Static(self.note, classes="dialog-note", markup=False)

    def on_mount(self) -> None:
        if self.app.is_headless:
            self.query_one(Input).cursor_blink = False

    def on_input_changed(self, event: Input.Changed) -> None:
        self._show(self.check(event.value) if self.check else None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        problem = self.check(event.value) if self.check else None
        self._show(problem)
        if problem is None:
            self.dismiss(event.value.strip())

    def _show(self, problem: str | None) -> None:
        error = self.query_one("#ask-error", Static)
        error.update(problem or "")
        self.query_one(Input).set_class(problem is not None, "-invalid")

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every key of the screen underneath and of the app, with what it does."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "close")]

    def __init__(self, title: str, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title  # which screen's keys these are
        self.keys = keys  # (key as shown, what it does)

    def compose(self) -> ComposeResult:
        width = max(len(k) for k, _ in self.keys) + 2
        table = Text()
        for i, (key, does) in enumerate(self.keys):
            table.append(f"{key:<{width}}", style="bold")
            table.append(does + ("\n" if i < len(self.keys) - 1 else ""))
        with Vertical(id="help", classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            # Plain text, not a table widget: the dialog opens in one cheap paint.
            yield Static(table, id="help-keys")
            yield Static("Escape, q or ? closes this help.", classes="dialog-note")

    def action_close(self) -> None:
        self.dismiss(None)


def key_list(*binding_lists: Iterable[Binding | tuple[str, ...]]) -> list[tuple[str, str]]:
    """(key, description) for every binding given, in order, each key once."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for bindings in binding_lists:
        for b in bindings:
            binding = (
                b if isinstance(b, Binding) else Binding(b[0], b[1], b[2] if len(b) > 2 else "")
            )
            shown = binding.key_display or ", ".join(
                _KEY_NAMES.get(k.strip(), k.strip()) for k in binding.key.split(",")
            )
            if shown in seen:
                continue
            seen.add(shown)
            out.append((shown, binding.description or binding.action))
    return out


_KEY_NAMES = {
    "question_mark": "?",
    "plus": "+",
    "enter": "Enter",
    "escape": "Escape",
    "ctrl+t": "Ctrl+T",
    "ctrl+q": "Ctrl+Q",
    "ctrl+p": "Ctrl+P",
    "tab": "Tab",
    "ctrl+s": "Ctrl+S",
    "ctrl+o": "Ctrl+O",
}
