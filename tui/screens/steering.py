"""The live screen's steering keys: raise the budget, add problems, change the temperature.

A mixin of LiveScreen (tui/screens/live.py): each key asks for a value in a dialog that checks it
inline, then a thread worker applies it to the run (loading the model first when the
session was only opened), and sampling starts again if the run had ended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work

from troop.errors import TroopError
from troop.tui.messages import ProblemsAdded, RunFailed
from troop.tui.screens.ask import AskScreen, check_temperatures, parse_temperatures
from troop.tui.widgets.status_bar import RunState

if TYPE_CHECKING:
    from textual.screen import Screen

    from troop.engine.analytics.results import Analysis

    _ScreenPart = Screen[None]  # what LiveScreen brings besides this mixin
else:
    _ScreenPart = object


class Steering(_ScreenPart):
    """Keys that change a run while it samples (or before it continues)."""

    # Provided by LiveScreen.
    run: Any
    observer: Any
    launch: Any
    state: RunState
    analysis: Analysis | None

    if TYPE_CHECKING:  # LiveScreen's own methods

        def new_run(self) -> Any: ...
        def start_sampling(self) -> None: ...
        def request_analysis(self, *, force: bool = False) -> None: ...
        def _phase(self, phase: str) -> None: ...
        @property
        def sampling(self) -> bool: ...

    def action_raise_budget(self) -> None:
        current = self._budget()

        def check(text: str) -> str | None:
            try:
                value = int(text)
            except ValueError:
                return "a whole number of samples per problem"
            return None if value > current else f"more than the current budget ({current})"

        def done(value: str | None) -> None:
            if value is not None:
                self._steer("raise", int(value))

        self.app.push_screen(
            AskScreen(
                f"Raise the budget (now {current} samples per problem) to:",
                value=str(max(1, current) * 2),
                check=check,
                note="Stored samples stay; sampling continues up to the new budget.",
            ),
            done,
        )

    def action_add_problems(self) -> None:
        def check(text: str) -> str | None:
            text = text.strip()
            if not text:
                return "a number of problems, or problem ids separated by commas"
            if text.isdigit() and int(text) <= 0:
                return "a positive number"
            return None

        def done(value: str | None) -> None:
            if value is None:
                return
            if value.isdigit():
                self._steer("add", int(value))
            else:
                self._steer("add", tuple(v.strip() for v in value.split(",") if v.strip()))

        self.app.push_screen(
            AskScreen(
                "Add problems from the session's problem set:",
                value="5",
                check=check,
                placeholder="N (the next N problems) or ids: a,b,c",
                note="They are stored in the session and sampled up to the budget.",
            ),
            done,
        )

    def action_temperature(self) -> None:
        # The session's sampling settings are as its file has them: temperatures may be missing.
        stored = self.analysis.session.sampling.temperatures if self.analysis else None
        current = self.state.temperatures or tuple(
            stored or self.launch.settings.temperatures or (0.8,)
        )

        def done(value: str | None) -> None:
            if value is None:
                return
            temps = parse_temperatures(value)
            assert temps is not None
            if self.run is None:
                self.run = self.new_run()
            self.run.set_temperatures(temps)
            s = self.state
            self.state = RunState(s.phase, s.tier, temps, s.stored, s.target)
            self.notify(
                "samples not yet started use temperature " + ",".join(f"{t:g}" for t in temps)
            )

        self.app.push_screen(
            AskScreen(
                "Temperature(s) for the remaining samples:",
                value=",".join(f"{t:g}" for t in current),
                check=check_temperatures,
                note="A comma list is cycled over sample indices. Each sample records its own "
                "temperature.",
            ),
            done,
        )

    # -- steering in a worker (may load the model first) -----------------------------------

    def _budget(self) -> int:
        if self.run is not None and getattr(self.run, "prep", None) is not None:
            return int(self.run.prep.budget)
        budget = self.analysis.session.budget if self.analysis else None
        return int(budget or self.launch.settings.samples or 0)

    def _steer(self, what: str, value: Any) -> None:
        if self.run is None:
            self.run = self.new_run()
        if getattr(self.run, "prep", None) is None:
            self._phase("loading")
        self._steer_worker(what, value)

    @work(thread=True, group="steer", exit_on_error=False, description="steering")
    def _steer_worker(self, what: str, value: Any) -> None:
        run = self.run
        try:
            if what == "raise":
                budget = run.raise_budget(value)
                message: Any = None
                self.app.call_from_thread(self.notify, f"budget raised to {budget} per problem")
            else:
                more, ids = (value, ()) if isinstance(value, int) else (0, value)
                message = ProblemsAdded(run.add_problems(more=more, ids=ids))
        except TroopError as exc:
            self.post_message(RunFailed(exc.message, exc.hint))
            return
        except Exception as exc:  # a bug: say so rather than let the worker die silently
            self.post_message(RunFailed(f"{type(exc).__name__}: {exc}"))
            return
        self.observer.set_target(run.prep.budget, len(run.prep.prompts))
        if message is not None:
            self.post_message(message)
        self.app.call_from_thread(self._after_steer)

    def _after_steer(self) -> None:
        if self.sampling:
            self._phase("sampling" if not self.run.control.paused else "paused")
        else:
            self.start_sampling()
        self.request_analysis(force=True)

    def on_problems_added(self, message: ProblemsAdded) -> None:
        if message.added:
            self.notify(
                f"added {len(message.added)}: {', '.join(message.added[:6])}"
                + ("…" if len(message.added) > 6 else ""),
                title="problems",
            )
        else:
            self.notify("no new problems: the session already has them", severity="warning")
