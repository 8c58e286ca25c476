"""The live screen's keys that reach past the run: overlay a second session, browse the
samples, export a report.

A mixin of LiveScreen (tui/screens/live.py), like Steering: the dialogs and screens it opens
are its own, and the report is written by a thread worker that posts ReportExported.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual import work

from troop.engine.settings import sessions_dir
from troop.engine.storage import queries
from troop.errors import TroopError
from troop.tui.messages import ReportExported, RunFailed
from troop.tui.screens.ask import AskScreen

if TYPE_CHECKING:
    from textual.screen import Screen

    from troop.engine.analytics.results import Analysis

    _ScreenPart = Screen[None]  # what LiveScreen brings besides this mixin
else:
    _ScreenPart = object


class CompareExport(_ScreenPart):
    """Keys that show the session beside another one, sample by sample, or as a report."""

    # Provided by LiveScreen.
    session_path: Path | None
    overlay: Analysis | None
    overlay_path: Path | None

    last_export: Path | None = None  # the report the export key wrote last

    if TYPE_CHECKING:  # LiveScreen's own methods

        def request_analysis(self, *, force: bool = False) -> None: ...

    def action_compare(self) -> None:
        recent = queries.recent_sessions(sessions_dir())
        others = [str(r.path) for r in recent if r.path != self.session_path]

        def check(text: str) -> str | None:
            path = Path(text).expanduser()
            if not text.strip():
                return "a session file"
            return None if path.is_file() else f"{text}: no such file"

        def done(value: str | None) -> None:
            if value is None:
                return
            self.overlay_path = Path(value).expanduser()
            self.overlay = None
            self.request_analysis(force=True)

        self.app.push_screen(
            AskScreen(
                "Overlay a second session on the coverage plot:",
                value=others[0] if others else "",
                check=check,
                suggestions=others,
                placeholder="path to a .sqlite session",
            ),
            done,
        )

    def action_browse(self, problem_id: str | None = None) -> None:
        try:
            from troop.tui.screens.browser import SampleBrowser
        except ImportError:
            self.notify("the sample browser is not available", severity="warning")
            return
        if self.session_path is None or not self.session_path.exists():
            self.notify("no samples yet", severity="warning")
            return
        self.app.push_screen(SampleBrowser(self.session_path, problem_id=problem_id))

    def action_export(self) -> None:
        if self.session_path is None or not self.session_path.exists():
            self.notify("no session to export yet", severity="warning")
            return
        self.notify("writing the report…", timeout=2)
        self._export(self.session_path)

    @work(thread=True, group="export", exit_on_error=False, description="exporting")
    def _export(self, path: Path) -> None:
        from troop.engine.analytics.analysis import analyse
        from troop.engine.storage.session import Session

        try:
            from troop.reports.report import write_session_report
        except ImportError:
            self.post_message(RunFailed("reports are not available in this installation"))
            return
        out = path.with_name(f"{path.stem}-report.html")
        try:
            with Session.open(path) as session:
                # A fresh analysis at the report's full bootstrap (the live one uses fewer
                # replicates), handed to the writer as the typed Analysis it is.
                write_session_report(session, analyse(session), "html", out)
        except TroopError as exc:
            self.post_message(RunFailed(f"export: {exc.message}", exc.hint))
            return
        self.post_message(ReportExported(out))

    def on_report_exported(self, message: ReportExported) -> None:
        self.last_export = message.path
        self.notify(str(message.path), title="report written", timeout=8)
