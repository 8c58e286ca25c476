"""Sample stream panes: the samples being decoded now, one pane per sampling slot."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Static

from troop.tui.observer import StreamState

#: Most panes shown; slots beyond these sample unseen (the counters still include them).
MAX_PANES = 6
#: Seconds a pane shows its verdict colour after a sample it drew was judged.
FLASH_S = 1.0


class StreamPane(Static):
    """One slot: its sample's problem, index, temperature and token count, the tail of its
    text, and a flash of the verdict when a sample it drew is judged."""

    DEFAULT_CLASSES = "stream"

    def __init__(self, slot: int) -> None:
        super().__init__("", id=f"stream-{slot}", markup=False)
        self.slot = slot  # the sampling slot this pane follows
        self.state: StreamState | None = None  # what it showed last
        self.border_title = f"slot {slot}"
        self.border_subtitle = "idle"

    def show(self, state: StreamState, now: float) -> None:
        """Redraw for a changed slot."""
        self.state = state
        self.border_title = f"{state.problem_id} #{state.sample_index} T{state.temperature:g}"
        verdict = ""
        if state.verdict is not None and state.verdict_of is not None:
            pid, index = state.verdict_of
            verdict = (
                f" · #{index} {state.verdict}"
                if pid == state.problem_id
                else f" · {pid} #{index} {state.verdict}"
            )
        self.border_subtitle = f"{state.n_tokens} tok{' done' if state.done else ''}{verdict}"
        self.set_class(state.done, "-done")
        # The pane's size is fixed by the grid: repaint it without a layout pass.
        self.update(self._tail(state.text), layout=False)
        self.flash(now)

    def flash(self, now: float) -> None:
        """Colour the border by the last verdict for FLASH_S seconds after it arrived."""
        s = self.state
        on = s is not None and s.verdict is not None and now - s.verdict_at < FLASH_S
        status = s.verdict if on and s is not None else None
        self.set_class(status == "pass", "-pass")
        self.set_class(status is not None and status != "pass", "-fail")

    def _tail(self, text: str) -> Text:
        """The last lines of `text` that fit the pane, wrapped as the pane wraps them."""
        width = max(1, self.content_size.width)
        height = max(1, self.content_size.height)
        # Only the last few hundred characters can be visible; wrapping more is wasted work.
        body = Text(text[-width * height * 2 :] if text else "", no_wrap=False)
        lines = body.wrap(self.app.console, width)
        return Text("\n").join(lines[-height:])


class StreamGrid(Grid):
    """The panes, two columns, as many as the run has slots (up to MAX_PANES)."""

    def __init__(self, slots: int, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.slots = max(1, min(MAX_PANES, slots))  # panes shown

    def on_mount(self) -> None:
        columns = 2 if self.slots > 1 else 1
        self.styles.grid_size_columns = columns
        self.styles.grid_size_rows = -(-self.slots // columns)

    def compose(self) -> ComposeResult:
        for slot in range(self.slots):
            yield StreamPane(slot)

    def update_streams(self, streams: dict[int, StreamState], now: float) -> None:
        """Redraw the panes whose slots changed; fade flashes that have run their time."""
        for pane in self.query(StreamPane):
            state = streams.get(pane.slot)
            if state is not None:
                pane.show(state, now)
            elif pane.has_class("-pass") or pane.has_class("-fail"):
                pane.flash(now)
