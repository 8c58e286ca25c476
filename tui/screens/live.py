"""The live session screen: sample streams, problems table, coverage plot and status bar.

Sampling runs in a thread worker (engine/runner.py, which drives the llama.cpp worker process)
and reports through a LiveObserver that the screen samples ten times a second; analyses run
in their own thread worker, spaced so they never take more than a small share of the machine.
Nothing here blocks the UI thread. Its keys that steer the run are in steering.py, and those
that reach past it (compare, browse, export) in compare_export.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from troop.engine.numbers import count, duration
from troop.engine.runner import Launch, SessionRunner
from troop.engine.settings import RunSettings
from troop.engine.storage.lock import Holder
from troop.errors import TroopError
from troop.tui.messages import AnalysisUpdated, RunEnded, RunFailed, RunPrepared
from troop.tui.observer import LiveObserver, Snapshot
from troop.tui.screens.ask import HelpScreen, key_list
from troop.tui.screens.compare_export import CompareExport
from troop.tui.screens.steering import Steering
from troop.tui.widgets.problems_table import ProblemsTable
from troop.tui.widgets.status_bar import RunState, StatusBar
from troop.tui.widgets.streams import StreamGrid

if TYPE_CHECKING:
    from troop.engine.analytics.results import Analysis

try:  # the plot and the browser are separate modules; the screen works without them
    from troop.tui.widgets.plot import CoveragePlot
except ImportError:  # pragma: no cover - only while a checkout lacks the module
    CoveragePlot = None  # type: ignore[assignment,misc]

#: Bootstrap replicates for the live plot's band (the exported report uses the full default).
LIVE_BOOTSTRAP = 200
#: Seconds between analyses (and plot redraws) at least; stretched like the redraws when the
#: UI is over its CPU share.
ANALYSIS_EVERY_S = 3.0
#: Most redraws per second of the streams and status bar.
TICKS_PER_S = 10
#: Share of one core the UI may use while sampling (its thread, plus the analyses' CPU time):
#: above it, streams and status are redrawn less often (down to once per MAX_REDRAW_S) and
#: analyses are spaced out as much, so the UI never slows sampling much on a small machine
#: however many tokens arrive. Keys are handled at once regardless.
UI_SHARE = 0.04
MAX_REDRAW_S = 1.0
#: Parallel slots when continuing a session opened with `troop open`.
OPEN_PARALLEL = 16
#: Seconds between looks at a followed session's file (another process samples it).
FOLLOW_EVERY_S = 1.0

#: Keys that are not screen bindings but do something here (listed in the help).
EXTRA_KEYS = [
    ("Enter", "on a problem row: browse that problem's samples"),
    ("Tab", "move focus: problems table, plot"),
    ("click header", "sort the problems table by that column"),
]

#: Makes the run: (launch, observer, notify=callable) -> SessionRunner or a test's stand-in.
RunFactory = Callable[..., Any]


def _open_launch(path: Path) -> Launch:
    return Launch(RunSettings(session=path, parallel=OPEN_PARALLEL))


class LiveScreen(Steering, CompareExport, Screen[None]):
    """One session, live: what is being sampled, per-problem results, coverage and spend."""

    CSS_PATH = "live.tcss"

    BINDINGS = [
        Binding("p", "pause", "pause/resume"),
        Binding("s", "stop", "stop"),
        Binding("r", "continue", "continue sampling"),
        Binding("plus", "raise_budget", "raise budget", key_display="+"),
        Binding("a", "add_problems", "add problems"),
        Binding("t", "temperature", "temperature"),
        Binding("x", "cycle_axis", "x axis"),
        Binding("c", "compare", "compare session"),
        Binding("b", "browse", "browse samples"),
        Binding("o", "sort", "sort table"),
        Binding("e", "export", "export report"),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "quit_session", "quit"),
    ]

    def __init__(
        self,
        *,
        launch: Launch | None = None,
        session_path: Path | None = None,
        run_factory: RunFactory = SessionRunner,
        clock: Callable[[], float] = time.monotonic,
        observer: LiveObserver | None = None,
        follow: Holder | None = None,
    ) -> None:
        super().__init__()
        if launch is None and session_path is None:
            raise ValueError("LiveScreen needs a launch or a session to open")
        self.launch = launch or _open_launch(session_path)  # type: ignore[arg-type]
        self.clock = clock  # injectable: snapshot tests freeze it
        self.observer = observer or LiveObserver(clock)
        self.run_factory = run_factory
        self.run: Any = None  # SessionRunner (or a test's stand-in), made on first sampling
        self.session_path: Path | None = session_path or self.launch.settings.session
        # Another process samples this session: follow its rows, read-only, until it ends.
        self.following = follow
        self._file_mark: tuple[float, ...] = ()
        self._followed_at = 0.0
        phase = "loading" if launch is not None else ("following" if follow else "browsing")
        self.state = RunState(phase)
        self.analysis: Analysis | None = None  # the session's latest analysis
        self.overlay: Analysis | None = None  # the comparison session's analysis
        self.overlay_path: Path | None = None  # the comparison session's file
        self.sampler: Worker[None] | None = None  # the sampling worker while it runs
        self._start_sampling = launch is not None
        self._analysing = False
        self._analysis_owed = False  # a forced analysis was asked for while one ran
        self._analysed_at = -1e9  # perf_counter time of the last analysis request
        self._analysis_wait = ANALYSIS_EVERY_S
        self._analysed_counts: tuple[int, int, int] = (-1, -1, -1)
        self._last: Snapshot | None = None
        self._redraw_every = 1 / TICKS_PER_S  # seconds between redraws, adapted to UI_SHARE
        self._next_redraw = 0.0  # perf_counter time of the next redraw
        self._cpu_mark = (time.perf_counter(), time.thread_time())  # (wall, UI thread CPU)
        self._analysis_cpu = 0.0  # CPU seconds spent in analysis workers, for the share
        self.ui_share = 0.0  # the UI's last measured share of one core (see UI_SHARE)
        self._closed = False  # unmounted: a finishing worker closes the run
        self.last_error: str | None = None  # the last failure shown, as one line

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="title", markup=False)
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield StreamGrid(self.launch.settings.parallel, id="streams")
                yield ProblemsTable(id="problems")
            if CoveragePlot is not None:
                yield CoveragePlot(id="plot")
            else:
                yield Static("coverage plot unavailable", id="plot")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self._title()
        self.set_interval(1 / TICKS_PER_S, self.tick)
        if self._start_sampling:
            self.start_sampling()
        else:
            self.request_analysis(force=True)
        self.query_one(ProblemsTable).focus()

    def _title(self) -> None:
        name = self.session_path.name if self.session_path else "new session"
        s = self.launch.settings
        what = (
            f"{s.model or 'smollm2-135m'} · {s.problems or 'arithmetic'}"
            if self.state.phase == "loading"
            else ""
        )
        if self.analysis is not None:
            # The model and problem set are as the session's file has them: names may be missing.
            info = self.analysis.session
            what = f"{info.model.name or '?'} · {info.problem_set.name or '?'}"
        self.query_one("#title", Static).update(f"troop · {name} · {what}".rstrip(" ·"))

    # -- the tick: streams, status, and when to analyse --------------------------------------

    def tick(self, *, force: bool = False) -> None:
        """Redraw streams and status from a fresh snapshot, as often as UI_SHARE allows."""
        wall, cpu = time.perf_counter(), time.thread_time() + self._analysis_cpu
        if wall - self._cpu_mark[0] >= 1.0:
            # This thread does the UI's work (handlers, layout, painting) and the analysis
            # workers the rest: their CPU time per second is what the UI takes from sampling.
            # Redraw (and analyse) less often when over.
            share = self.ui_share = (cpu - self._cpu_mark[1]) / (wall - self._cpu_mark[0])
            if share > UI_SHARE:
                self._redraw_every = min(MAX_REDRAW_S, self._redraw_every * 1.5)
            elif share < UI_SHARE / 2:
                self._redraw_every = max(1 / TICKS_PER_S, self._redraw_every / 1.5)
            self._cpu_mark = (wall, cpu)
        # No run and no event since the last redraw: nothing on screen can have changed.
        idle = (
            self._last is not None
            and not self._last.running
            and self.observer.revision == self._last.revision
        )
        # Behind another screen (help, browser) the panes are not drawn: skip the work.
        if force or (wall >= self._next_redraw and not idle and self.is_current):
            self._next_redraw = wall + self._redraw_every
            now = self.clock()
            snap = self.observer.snapshot()
            self._last = snap
            self.query_one(StreamGrid).update_streams(snap.streams, now)
            self.query_one(StatusBar).render_status(self.state, snap, self.analysis)
        if self.following is not None and wall - self._followed_at >= FOLLOW_EVERY_S:
            self._followed_at = wall
            self._follow()
        self.request_analysis()

    def _follow(self) -> None:
        """Re-analyse when the followed session's file changed; notice when its run ends."""
        from troop.engine.storage.lock import holder

        assert self.session_path is not None
        mark: tuple[float, ...] = ()
        for path in (
            self.session_path,
            self.session_path.with_name(self.session_path.name + "-wal"),
        ):
            with contextlib.suppress(OSError):
                st = path.stat()
                mark += (st.st_mtime_ns, st.st_size)
        if mark != self._file_mark:
            self._file_mark = mark
            self.request_analysis(force=True)
        if holder(self.session_path) is None:
            who = self.following
            self.following = None
            self._phase("browsing")
            self.request_analysis(force=True)
            self.notify(
                f"the run of pid {who.pid if who else '?'} ended; `r` continues sampling here",
                title="session",
            )

    def request_analysis(self, *, force: bool = False) -> None:
        """Analyse again if samples or verdicts arrived and enough time has passed."""
        if self.session_path is None:
            return
        if self._analysing:
            self._analysis_owed = self._analysis_owed or force  # redo once this one lands
            return
        snap = self._last
        counts = (snap.samples, snap.verdicts, snap.problems) if snap else (0, 0, 0)
        now = time.perf_counter()
        if not force and (
            counts == self._analysed_counts or now - self._analysed_at < self._analysis_wait
        ):
            return
        self._analysing = True
        self._analysed_at = now
        self._analysed_counts = counts
        self._analyse(self.session_path, self.overlay_path, self.overlay)

    @work(thread=True, group="analysis", exit_on_error=False, description="analysing")
    def _analyse(self, path: Path, overlay_path: Path | None, overlay: Analysis | None) -> None:
        from troop.engine.analytics.analysis import AnalysisOptions, analyse_path

        t0, c0 = time.perf_counter(), time.thread_time()
        options = AnalysisOptions(bootstrap=LIVE_BOOTSTRAP)
        try:
            analysis: Analysis | None = analyse_path(path, options)
            if overlay_path is not None and overlay is None:
                overlay = analyse_path(overlay_path, options)
        except TroopError as exc:
            self.post_message(RunFailed(f"analysis: {exc.message}", exc.hint))
            analysis = None
        finally:
            self._analysing = False
        if analysis is not None:
            self.post_message(
                AnalysisUpdated(
                    analysis, overlay, time.perf_counter() - t0, time.thread_time() - c0
                )
            )

    def on_analysis_updated(self, message: AnalysisUpdated) -> None:
        # Stretched as far as the redraws are (their CPU share counts this analysis too):
        # drawing the plot costs the UI thread as much as a few dozen stream redraws.
        throttle = self._redraw_every * TICKS_PER_S
        self._analysis_wait = ANALYSIS_EVERY_S * throttle
        self._analysis_cpu += message.cpu_s
        if self._analysis_owed:  # a forced request (run ended, overlay) came in meanwhile
            self._analysis_owed = False
            self.call_later(self.request_analysis, force=True)
        if (message.analysis, message.overlay) == (self.analysis, self.overlay):
            return  # nothing new to draw
        self.analysis = message.analysis
        self.overlay = message.overlay
        info = message.analysis.session
        problems = message.analysis.problems
        self.state = RunState(
            self.state.phase,
            self.state.tier,
            self.state.temperatures,
            info.samples,
            (info.budget or 0) * len(problems),
        )
        self.query_one(ProblemsTable).update_problems(problems)
        if CoveragePlot is not None:
            self.query_one(CoveragePlot).update_analysis(message.analysis, message.overlay)
        self.query_one(StatusBar).render_status(self.state, self._last, self.analysis)
        self._title()

    # -- sampling ---------------------------------------------------------------------------

    def start_sampling(self) -> None:
        """Start (or continue) sampling in a thread worker; no-op if already sampling."""
        if self.sampler is not None and self.sampler.state in (
            WorkerState.PENDING,
            WorkerState.RUNNING,
        ):
            return
        if self.run is None:
            self.run = self.new_run()
        self._phase("loading" if getattr(self.run, "prep", None) is None else "sampling")
        self.sampler = self._sample()

    def new_run(self) -> Any:
        """The run object, made on first use; its news (live reloads) become notifications."""

        def notify(text: str) -> None:  # called from a watcher thread
            self.app.call_from_thread(self.notify, text, title="troop")

        return self.run_factory(self.launch, self.observer, notify=notify)

    @work(thread=True, group="sampling", exit_on_error=False, description="sampling")
    def _sample(self) -> None:
        run = self.run
        try:
            self._sample_once(run)
        finally:
            if self._closed:  # the screen went away while sampling: free what it held
                run.close()

    def _sample_once(self, run: Any) -> None:
        try:
            if run.prep is None:
                prep = run.prepare()
                self.post_message(
                    RunPrepared(
                        run.session_path,
                        prep.created,
                        run.tier,
                        run.verifier_name,
                        prep.budget,
                        len(prep.prompts),
                    )
                )
            summary = run.run_once()
        except TroopError as exc:
            self.post_message(RunFailed(exc.message, exc.hint))
            return
        except Exception as exc:  # a bug: say so rather than let the worker die silently
            self.post_message(RunFailed(f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(
            RunEnded(
                summary.status, summary.samples, summary.wall_s, summary.stored, summary.target
            )
        )

    def on_run_prepared(self, message: RunPrepared) -> None:
        self.session_path = message.session_path
        self.state = RunState(
            "sampling",
            message.tier,
            self.state.temperatures,
            self.state.stored,
            message.budget * message.problems,
        )
        self._title()
        verb = "created" if message.created else "resumed"
        self.notify(f"{verb} {message.session_path}", title="session")

    def on_run_ended(self, message: RunEnded) -> None:
        self._phase(message.status)
        self.request_analysis(force=True)
        if message.status == "completed":
            self.notify(
                f"{count(message.stored)}/{count(message.target)} samples stored in "
                f"{duration(message.wall_s)}",
                title="run completed",
            )

    def on_run_failed(self, message: RunFailed) -> None:
        if self.state.phase in ("loading", "sampling", "stopping", "paused"):
            self._phase("failed")
        self.last_error = message.message
        text = message.message + (f"\n{message.hint}" if message.hint else "")
        self.notify(text, title="error", severity="error", timeout=10)

    def _phase(self, phase: str) -> None:
        s = self.state
        self.state = RunState(phase, s.tier, s.temperatures, s.stored, s.target)
        self.query_one(StatusBar).render_status(self.state, self._last, self.analysis)

    @property
    def sampling(self) -> bool:
        return self.sampler is not None and self.sampler.state in (
            WorkerState.PENDING,
            WorkerState.RUNNING,
        )

    # -- keys -------------------------------------------------------------------------------

    def action_pause(self) -> None:
        if not self.sampling or self.run is None:
            self.notify("nothing is sampling", severity="warning")
            return
        if self.run.control.paused:
            self.run.resume()
            self._phase("sampling")
        else:
            self.run.pause()
            self._phase("paused")

    def action_stop(self) -> None:
        if not self.sampling or self.run is None:
            self.notify("nothing is sampling", severity="warning")
            return
        self.run.stop()
        self._phase("stopping")

    def action_continue(self) -> None:
        if self.sampling:
            self.notify("already sampling")
            return
        if self.session_path is not None:
            from troop.engine.storage.lock import SessionBusy, holder

            busy = holder(self.session_path)
            if busy is not None and busy.pid != os.getpid():
                # Another process samples it: refused at once, in one line.
                self.notify(SessionBusy(self.session_path, busy).message, severity="error")
                return
        self.start_sampling()

    def action_cycle_axis(self) -> None:
        if CoveragePlot is not None:
            self.query_one(CoveragePlot).action_cycle_axis()

    @on(DataTable.RowSelected, "#problems")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_browse(str(event.row_key.value))

    @on(DataTable.HeaderSelected, "#problems")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        self.query_one(ProblemsTable).sort_by_column("position" if key == "id" else key)

    def action_sort(self) -> None:
        label = self.query_one(ProblemsTable).cycle_sort()
        self.notify(f"problems sorted by {label}", timeout=2)

    def action_help(self) -> None:
        keys = key_list(self.BINDINGS) + EXTRA_KEYS + key_list(self.app.BINDINGS)
        self.app.push_screen(HelpScreen("Keys of the live session screen", keys))

    async def action_quit_session(self) -> None:
        await self.app.action_quit()

    # -- leaving ----------------------------------------------------------------------------

    def on_unmount(self) -> None:
        # The app may exit without `q` (a test ending, a signal): stop the sampling thread so
        # the process can end; the worker frees the model once the run has stopped.
        self._closed = True
        if self.run is not None:
            self.run.stop()
            if not self.sampling:
                self.run.close()

    async def shutdown(self) -> None:
        """Stop sampling (stored samples stay), wait for the worker, free the model."""
        if self.run is not None and self.sampling:
            self.run.stop()
            self._phase("stopping")
        if self.sampler is not None:
            # A failed run was already reported (RunFailed); here it only has to be over.
            with contextlib.suppress(Exception):
                await self.sampler.wait()
        if self.run is not None:
            run, self.run = self.run, None
            await asyncio.to_thread(run.close)
