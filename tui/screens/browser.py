"""The sample browser: step through a session's samples, failures first, and see why each failed."""

from __future__ import annotations

import difflib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import Screen
from textual.visual import Visual
from textual.widgets import Footer, Select, Static

from troop.engine.formats import CODE_FORMATS
from troop.engine.storage.rows import StoredProblem, StoredVerdict
from troop.engine.storage.session import Session
from troop.errors import TroopError
from troop.tui.screens.browser_dialogs import CopyDialog, MarkDialog
from troop.tui.screens.sample_text import (
    answer_text,
    extracted_code,
    highlighted,
    inert,
    verdict_text,
)

ALL = "all"  # filter value: no filtering on this field
FAILED = "failed"  # status filter value: every verified sample that did not pass
UNVERIFIED = "unverified"  # status of a sample with no current verdict
#: Labels offered when marking; any other label may be typed.
MARK_LABELS = ("false positive", "false negative", "flaky test", "wrong reference", "interesting")


@dataclass(frozen=True)
class Entry:
    """One sample in the browser's list; its text is read only when it is shown."""

    problem_id: str  # the sample's problem
    sample_index: int  # its index within the problem
    temperature: float  # softmax temperature it was drawn at
    status: str  # current verdict status (pass, fail, timeout...), or "unverified"

    @property
    def failed(self) -> bool:
        # infra_error is the sandbox's failure, never the sample's (see verifiers.base.Status).
        return self.status not in ("pass", UNVERIFIED, "infra_error")

    @property
    def key(self) -> tuple[str, int]:
        return (self.problem_id, self.sample_index)


def _temperature(value: float) -> str:
    return f"{value:g}"


class SampleBrowser(Screen[None]):
    """Every sample of one session with its verdict, extracted code and a diff against a pass."""

    CSS_PATH = "browser.tcss"
    BINDINGS = [
        Binding("n", "next_failed", "next failed"),
        Binding("p", "previous_failed", "previous failed"),
        Binding("j", "step(1)", "next"),
        Binding("k", "step(-1)", "previous"),
        Binding("m", "mark", "mark"),
        Binding("u", "unmark", "unmark"),
        Binding("c", "copy", "copy to file"),
        Binding("C", "copy_to", "copy to…"),
        Binding("r", "reload", "reload", show=False),
        Binding("escape", "close", "close"),
    ]

    def __init__(
        self, session_path: Path, problem_id: str | None = None, status: str | None = None
    ) -> None:
        super().__init__()
        # An own connection: a sampling thread may be writing the file meanwhile (WAL allows it).
        self.session = Session.open(session_path)
        self.session_path = session_path
        self.problems: dict[str, StoredProblem] = {}
        self.status_filter = status or ALL  # status to show: ALL, FAILED or one status
        self.problem_filter = problem_id or ALL  # problem to show, or ALL
        self.temperature_filter = ALL  # temperature to show (as written by _temperature), or ALL
        self.entries: list[Entry] = []  # every stored sample, in work-list order
        self.shown: list[Entry] = []  # the entries that pass the filters
        self.current: Entry | None = None  # the sample on screen
        self._verifier: dict[str, str] | None = None  # session meta "verifier": name, version
        self._data_version = -1  # the file's PRAGMA data_version when last read
        self._loading = False  # a background re-read is under way
        self._options: dict[str, list[str]] = {}  # each filter's offered values, as last set
        # What the panels show: (sample, passing sample diffed against); None: nothing yet.
        self._rendered: tuple[Entry, Entry | None] | None = None

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="browser-filters"):
            for name in ("status", "problem", "temperature"):
                yield Select[str](
                    [(Text(f"{name}: {ALL}"), ALL)], id=f"{name}-filter", allow_blank=False
                )
            yield Static(id="browser-position")
        with Grid(id="browser-panels"):
            for name in ("sample", "code", "verdict", "diff"):
                with VerticalScroll(id=f"{name}-panel", classes="browser-panel"):
                    yield Static(id=f"{name}-text", classes="browser-text")
        yield Static(id="browser-marks")
        yield Footer()

    def on_mount(self) -> None:
        self._reload()
        first_failed = next((e for e in self.shown if e.failed), None)
        self._select(first_failed or (self.shown[0] if self.shown else None))
        self.query_one("#sample-panel").focus()  # arrows scroll the sample; tab reaches filters
        # Cheap poll: PRAGMA data_version moves only when another connection commits.
        self.set_interval(2.0, self._poll)

    def on_unmount(self) -> None:
        with self.session.lock:  # after any background read's current query
            self.session.close()

    # -- data ------------------------------------------------------------------------------

    def _poll(self) -> None:
        if self._loading or self.session.data_version() == self._data_version:
            return
        self._loading = True
        self._load_in_background()

    @work(
        thread=True,
        exclusive=True,
        group="browser-reload",
        exit_on_error=False,
        description="re-read the session's sample index",
    )
    def _load_in_background(self) -> None:
        # Reading a large session's index takes a while (0.3 s for 16k samples): off the UI
        # thread while a run writes; only the result crosses over.
        try:
            self.app.call_from_thread(self._apply_index, *self._read_index())
        except (sqlite3.Error, RuntimeError):  # closed under us: the screen or app went away
            return
        finally:
            self._loading = False

    def _reload(self) -> None:
        """Re-read the index and verdicts, keeping the filters and the current sample."""
        self._apply_index(*self._read_index())

    def _read_index(self) -> tuple[int, dict[str, StoredProblem], Any, list[Entry]]:
        version = self.session.data_version()
        problems = {p.problem_id: p for p in self.session.problems()}
        verifier = self.session.meta("verifier")
        # Statuses only: re-read while a run writes, so captured outputs stay on disk.
        statuses = (
            self.session.current_statuses(verifier["name"], verifier["version"]) if verifier else {}
        )
        entries = [
            Entry(s.problem_id, s.sample_index, s.temperature, statuses.get(s.key, UNVERIFIED))
            for s in self.session.sample_list()
        ]
        return version, problems, verifier, entries

    def _apply_index(
        self,
        version: int,
        problems: dict[str, StoredProblem],
        verifier: Any,
        entries: list[Entry],
    ) -> None:
        if not self.is_attached:
            return
        self._data_version, self.problems, self._verifier = version, problems, verifier
        self.entries = entries
        self._fill_filters()
        self._apply_filters()

    def _fill_filters(self) -> None:
        statuses = sorted({e.status for e in self.entries})
        temperatures = sorted({e.temperature for e in self.entries})
        self._set_options("status", [ALL, FAILED, *statuses], self.status_filter)
        self._set_options("problem", [ALL, *self.problems], self.problem_filter)
        self._set_options(
            "temperature", [ALL, *map(_temperature, temperatures)], self.temperature_filter
        )

    def _set_options(self, field: str, values: list[str], value: str) -> None:
        select: Select[str] = self.query_one(f"#{field}-filter", Select)
        if value not in values:
            values.append(value)  # a filter asked for by the caller stays, even if empty now
        with select.prevent(Select.Changed):
            if self._options.get(field) != values:
                select.set_options([(Text(f"{field}: {v}"), v) for v in values])
                self._options[field] = values
            select.value = value

    def _apply_filters(self) -> None:
        def keep(e: Entry) -> bool:
            return (
                (
                    self.status_filter == ALL
                    or (
                        e.failed if self.status_filter == FAILED else e.status == self.status_filter
                    )
                )
                and self.problem_filter in (ALL, e.problem_id)
                and self.temperature_filter in (ALL, _temperature(e.temperature))
            )

        self.shown = [e for e in self.entries if keep(e)]
        current = self.current
        if current is not None:
            current = next((e for e in self.shown if e.key == current.key), None)
        self._select(current or (self.shown[0] if self.shown else None))

    def set_filters(
        self,
        status: str | None = None,
        problem: str | None = None,
        temperature: str | None = None,
    ) -> None:
        """Change filters (None leaves one as it is); the view follows."""
        self.status_filter = status or self.status_filter
        self.problem_filter = problem or self.problem_filter
        self.temperature_filter = temperature or self.temperature_filter
        self._fill_filters()
        self._apply_filters()

    @on(Select.Changed)
    def _filter_changed(self, event: Select.Changed) -> None:
        if event.value != event.select.value:
            return  # stale: the filter was set again since (e.g. by _fill_filters)
        value = str(event.value)
        name = {
            "status-filter": "status",
            "problem-filter": "problem",
            "temperature-filter": "temperature",
        }.get(event.select.id or "")
        if name is not None:
            self.set_filters(**{name: value})

    # -- actions ---------------------------------------------------------------------------

    def action_next_failed(self) -> None:
        self._jump(1, failed=True)

    def action_previous_failed(self) -> None:
        self._jump(-1, failed=True)

    def action_step(self, step: int) -> None:
        self._jump(step, failed=False)

    def _jump(self, step: int, failed: bool) -> None:
        if not self.shown:
            return
        start = self.shown.index(self.current) if self.current in self.shown else -step
        n = len(self.shown)
        for i in range(1, n + 1):
            candidate = self.shown[(start + step * i) % n]  # wraps around
            if not failed or candidate.failed:
                self._select(candidate)
                return
        self.notify("no failed sample among those shown", severity="warning")

    def action_mark(self) -> None:
        if self.current is None:
            return
        entry = self.current

        def store(result: tuple[str, str] | None) -> None:
            if result is None:
                return
            try:
                self.session.add_mark(entry.problem_id, entry.sample_index, *result)
            except TroopError as exc:
                self.notify(str(exc), severity="error", markup=False)
            self._show_marks()

        labels = [*MARK_LABELS, *sorted({m.label for m in self.session.marks()})]
        self.app.push_screen(MarkDialog(entry, labels), store)

    def action_unmark(self) -> None:
        if self.current is None:
            return
        e = self.current
        marks = [m for m in self.session.marks(e.problem_id) if m.sample_index == e.sample_index]
        for m in marks:
            self.session.remove_mark(m.problem_id, m.sample_index, m.label)
        if marks:
            self.notify(f"removed {len(marks)} mark(s)", markup=False)
        self._show_marks()

    def default_copy_path(self) -> Path | None:
        """Where `c` writes the current sample: next to the session file."""
        if self.current is None:
            return None
        safe = re.sub(r"[^\w.-]+", "_", self.current.problem_id).strip("_") or "problem"
        name = f"{self.session_path.stem}-{safe}-{self.current.sample_index}.txt"
        return self.session_path.parent / name

    def action_copy(self) -> None:
        path = self.default_copy_path()
        if path is not None:
            self._copy(path)

    def action_copy_to(self) -> None:
        path = self.default_copy_path()
        if path is not None:
            self.app.push_screen(
                CopyDialog(path), lambda chosen: self._copy(Path(chosen)) if chosen else None
            )

    def _copy(self, path: Path) -> None:
        """Write the sample's text exactly as decoded (it is data, not for display)."""
        record = self.session.sample(*self.current.key) if self.current else None
        if record is None:
            return
        path = path.expanduser()
        try:
            path.write_text(record.text, encoding="utf-8")
        except OSError as exc:
            self.notify(f"cannot write {path}: {exc.strerror}", severity="error", markup=False)
            return
        self.notify(f"copied to {path}", markup=False)

    def action_reload(self) -> None:
        self._reload()

    def action_close(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.dismiss(None)
        else:
            self.app.exit()

    # -- display ---------------------------------------------------------------------------

    def _select(self, entry: Entry | None) -> None:
        self.current = entry
        position = self.query_one("#browser-position", Static)
        failed = sum(e.failed for e in self.shown)
        if entry is None:
            self._rendered = None
            position.update(Text(f"no samples match · {len(self.entries)} stored"))
            for name in ("sample", "code", "verdict", "diff"):
                self._panel(name, "", Text(""))
            self.query_one("#sample-text", Static).update(Text("no samples match these filters"))
            self._show_marks()
            return
        at = self.shown.index(entry) + 1
        position.update(
            Text(
                f"{entry.problem_id} #{entry.sample_index} · {entry.status}"
                f" · {at} of {len(self.shown)} shown · {failed} failed"
            )
        )
        passing = self._passing(entry)
        if self._rendered == (entry, passing):
            self._show_marks()
            return  # a reload changed nothing here: keep the panels' scroll positions
        self._rendered = (entry, passing)
        record = self.session.sample(entry.problem_id, entry.sample_index)
        problem = self.problems.get(entry.problem_id)
        verdict = self._verdict(entry)
        text = inert(record.text) if record is not None else ""
        # A program is highlighted as code, extracted, diffed as code.
        code_format = problem is not None and problem.format in CODE_FORMATS
        title = f"sample {entry.sample_index} of {entry.problem_id} · T={entry.temperature:g}"
        if record is not None:
            title += (
                f" · seed {record.seed} · {record.completion_tokens} tokens"
                f" · {record.finish_reason}"
            )
        self._panel("sample", title, highlighted(text, code_format, markdown=True))
        code = extracted_code(record.text if record else "", problem) if code_format else None
        if code_format:
            self._panel(
                "code",
                "extracted code",
                highlighted(inert(code), True)
                if code is not None
                else Text("no code found in the sample"),
            )
        else:
            self._panel("code", "extracted answer", answer_text(verdict, problem))
        self._panel("verdict", "verifier", verdict_text(verdict))
        verdict_panel = self.query_one("#verdict-panel")
        verdict_panel.set_class(entry.failed, "-failed")
        verdict_panel.set_class(entry.status == "pass", "-passed")
        self._show_diff(entry, passing, record.text if record else "", code, problem)
        self._show_marks()

    def _verdict(self, entry: Entry) -> StoredVerdict | None:
        if self._verifier is None:
            return None
        rows = self.session.current_verdicts(
            self._verifier["name"], self._verifier["version"], *entry.key
        )
        return rows.get(entry.key)

    def _panel(self, name: str, title: str, content: Visual | RenderableType) -> None:
        self.query_one(f"#{name}-panel").border_title = Text(title)
        self.query_one(f"#{name}-text", Static).update(content)
        self.query_one(f"#{name}-panel", VerticalScroll).scroll_home(animate=False)

    def _passing(self, entry: Entry) -> Entry | None:
        """The first passing sample of the entry's problem other than itself."""
        return next(
            (
                e
                for e in self.entries
                if e.problem_id == entry.problem_id and e.status == "pass" and e.key != entry.key
            ),
            None,
        )

    def _show_diff(
        self,
        entry: Entry,
        passing: Entry | None,
        text: str,
        code: str | None,
        problem: StoredProblem | None,
    ) -> None:
        if passing is None:
            self._panel("diff", "diff", Text(f"no passing sample of {entry.problem_id} to compare"))
            return
        other = self.session.sample(passing.problem_id, passing.sample_index)
        other_text = other.text if other is not None else ""
        what = "text"
        if code is not None:
            other_code = extracted_code(other_text, problem)
            if other_code is not None:
                text, other_text, what = code, other_code, "extracted code"
        lines = difflib.unified_diff(
            inert(other_text).splitlines(),
            inert(text).splitlines(),
            f"sample {passing.sample_index} (pass)",
            f"sample {entry.sample_index}",
            lineterm="",
        )
        diff = Text()
        added, removed = self._theme_colour("text-success"), self._theme_colour("text-error")
        for line in lines:
            style = (
                added
                if line.startswith("+") and not line.startswith("+++")
                else removed
                if line.startswith("-") and not line.startswith("---")
                else ""
            )
            diff.append(line + "\n", style=style)
        title = f"diff of the {what} against passing sample {passing.sample_index}"
        self._panel("diff", title, diff if diff.plain else Text("identical"))

    def _theme_colour(self, name: str) -> str:
        # Diff colours come from the theme like every other colour (Text needs a plain colour).
        return self.app.theme_variables.get(name, "")

    def _show_marks(self) -> None:
        line = self.query_one("#browser-marks", Static)
        e = self.current
        marks = (
            []
            if e is None
            else [m for m in self.session.marks(e.problem_id) if m.sample_index == e.sample_index]
        )
        line.set_class(bool(marks), "-marked")
        if not marks:
            line.update(Text("no marks · m marks this sample"))
            return
        line.update(
            Text(inert(" · ".join(f"{m.label}: {m.note}" if m.note else m.label for m in marks)))
        )
