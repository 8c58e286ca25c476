"""A sampling run driven from the TUI: sandbox, model, verification and control, no widgets.

The same set-up functions as `troop run --headless` (troop.commands) start the sandbox and
the verifier, so the TUI samples and judges exactly as the headless run does. Everything
here blocks; the live screen calls it from a thread worker.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from troop.engine.control import RunControl
from troop.engine.events import RunObserver
from troop.engine.run import PreparedRun, RunSettings, RunSummary, add_problems, execute, prepare


@dataclass(frozen=True)
class VerifyOptions:
    """How samples are judged, with the same names as `troop run`'s options."""

    verifier: str | None = None  # registered name; None: the default for the problem format;
    # "none": do not verify
    command: str | None = None  # for the command verifier: the program and its arguments
    pattern: str | None = None  # for the regex verifier: the pattern a passing sample contains
    sandbox: str = "auto"  # isolation tier: auto, bwrap or rlimits
    verify_workers: int | None = None  # sandbox workers; None: the cores sampling leaves free

    @property
    def verifying(self) -> bool:
        return self.verifier != "none"


@dataclass(frozen=True)
class Launch:
    """A run to start: what to sample and how to judge it."""

    settings: RunSettings  # as `troop run` takes them; settings.session may be an existing file
    verify: VerifyOptions = VerifyOptions()  # how to judge samples


class LiveRun:
    """One session's sampling resources, kept between runs so "raise the budget" or "add
    problems" after a run ends samples again without reloading the model."""

    def __init__(self, launch: Launch, observer: RunObserver,
                 notify: Callable[[str], None] | None = None) -> None:
        self.launch = launch
        self.observer = observer
        self.notify = notify or (lambda _text: None)  # one-line news for a person (any thread)
        self.prep: PreparedRun | None = None
        self.verification: Any = None  # troop.engine.verify.Verification, when verifying
        self.verifier_name: str | None = None
        self.tier: str | None = None  # the sandbox tier, when verifying
        self._stack = ExitStack()
        self._lock = threading.Lock()
        self._temperatures: tuple[float, ...] | None = None  # override for remaining samples
        # Set when work is added while a run is live: if that run had already run dry, the
        # scheduler never saw it, so run_once goes round again.
        self._more = threading.Event()
        self._stop_pending = False  # a stop not yet honoured by a run
        self._prepare_lock = threading.Lock()
        self.control = RunControl(launch.settings.samples or 1)

    @property
    def session_path(self) -> Path | None:
        return self.prep.session.path if self.prep is not None else self.launch.settings.session

    def prepare(self) -> PreparedRun:
        """Start the sandbox (before the model: its forks stay small), load the model, open
        or create the session and hand the verifier any samples left unjudged."""
        with self._prepare_lock:  # the sampling and a steering worker may both ask
            return self.prep if self.prep is not None else self._prepare()

    def _prepare(self) -> PreparedRun:
        from troop import commands

        settings = self.launch.settings
        verify = self.launch.verify
        stack = self._stack
        sandbox = None
        if verify.verifying:
            threads = settings.threads or os.cpu_count() or 1
            sandbox = commands.open_sandbox(verify, stack, sampling_threads=threads)
            self.tier = sandbox.tier
        prep = prepare(settings)
        stack.callback(prep.close)
        if sandbox is not None:
            verification, verifier, _left = commands.start_verification(
                verify, prep, sandbox, self.observer)
            stack.callback(verification.close)
            self.verification = verification
            self.verifier_name = verifier.name
            # Edits to a problem file or a command verifier's program re-judge, as headless.
            reload = commands.start_live_reload(verify, prep, verification, self.notify)
            if reload is not None:
                stack.callback(reload.stop)
        self.prep = prep
        # Raised, not replaced: a pause or stop pressed while the model loaded still holds.
        self.control.raise_budget(prep.budget)
        return prep

    def run_once(self) -> RunSummary:
        """Sample until the budget is met or the run is stopped; runs again while work was
        added during a run that had already run dry (a raised budget, added problems)."""
        prep = self.prepare()
        while True:
            with self._lock:
                if self._stop_pending:  # stopped while the model loaded, or between two runs
                    self._stop_pending = False
                    return RunSummary("cancelled", prep.session.path, 0, 0, 0, 0.0,
                                      prep.session.sample_count(), self.target(), {})
                if self.control.cancelled:  # a stopped run leaves a cancelled control behind
                    self.control = RunControl(prep.budget)
                control = self.control
                if self._temperatures is not None:
                    control.set_temperatures(self._temperatures)
                self._more.clear()
            summary = execute(prep, self.observer, control, self.verification)
            with self._lock:
                if summary.status == "cancelled":
                    self._stop_pending = False  # this run was the one stopped
            adaptive = prep.settings.policy.adaptive
            if summary.status != "completed" or not self._more.is_set() or (
                    not adaptive and summary.stored >= self.target()):
                return summary

    def target(self) -> int:
        prep = self.prep
        return 0 if prep is None else prep.budget * len(prep.prompts)

    # -- steering (any thread) -----------------------------------------------------------

    def raise_budget(self, samples: int) -> int:
        """Aim for `samples` per problem (never lower); recorded in the session."""
        prep = self.prepare()
        with self._lock:
            budget = max(prep.budget, samples)
            if budget != prep.budget:
                prep.budget = budget
                prep.session.set_meta("budget", budget)
            self.control.raise_budget(budget)
            self._more.set()
        return budget

    def set_temperatures(self, temperatures: tuple[float, ...]) -> None:
        """Samples not yet started use these temperatures (each sample records its own)."""
        with self._lock:
            self._temperatures = temperatures
            self.control.set_temperatures(temperatures)

    def add_problems(self, *, more: int | None = None, ids: tuple[str, ...] = ()) -> list[str]:
        """Add `more` problems of the session's set (the next ones in order) or the named
        ones; a live run draws them as soon as its scheduler reaches them."""
        prep = self.prepare()
        with self._lock:
            specs = add_problems(prep, more=more or 0, problem_ids=ids)
            self.control.add_prompts(specs)
            self._more.set()
        return [s.problem_id for s in specs]

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop(self) -> None:
        with self._lock:
            self._stop_pending = True
            self.control.cancel()

    def close(self) -> None:
        """Stop the sandbox workers, free the model and close the session."""
        self._stack.close()


def relaunch(launch: Launch, session: Path) -> Launch:
    """The same launch aimed at an existing session file (resume rather than create)."""
    return replace(launch, settings=replace(launch.settings, session=session))
