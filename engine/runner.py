"""One session runner for every front end: the whole life of a sampling run, from settings to
shutdown, for `troop run --headless` and the TUI alike.

It opens or creates the session (holding its lock), starts the verification sandbox before the
llama.cpp worker (its forks stay small), hands every stored sample to the verifier, re-judges
on live reload, steers the run (pause, resume, stop, raise the budget, add problems, change
temperatures) and shuts everything down. Front ends only show what it reports.
"""

from __future__ import annotations

import os
import shlex
import shutil
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from troop.engine.control import RunControl
from troop.engine.events import Event, RunObserver, WorkerRestarted
from troop.engine.formats import FORMATS
from troop.engine.run import (
    PreparedRun,
    RunSummary,
    add_problems,
    execute,
    prepare,
)
from troop.engine.settings import RunSettings
from troop.errors import TroopError

if TYPE_CHECKING:
    from troop.engine.storage.session import Session
    from troop.engine.verify import Verification
    from troop.engine.watch import LiveReload
    from troop.verifiers.base import Verifier
    from troop.verifiers.sandbox import Sandbox


@dataclass(frozen=True)
class VerifyOptions:
    """How samples are judged, with the same names as `troop run`'s options."""

    verifier: str | None = None  # registered name; None: the default for the problem format;
    # "none": do not verify
    command: str | None = None  # for the command verifier: the program and its arguments
    pattern: str | None = None  # for the regex verifier: the pattern a passing sample contains
    sandbox: str = "auto"  # isolation tier: auto, bwrap or rlimits
    verify_workers: int | None = None  # sandbox workers; None: the cores sampling leaves free
    problems: str | None = None  # the problem file given on the command line (live reload)

    @property
    def verifying(self) -> bool:
        return self.verifier != "none"


@dataclass(frozen=True)
class Launch:
    """A run to start: what to sample and how to judge it."""

    settings: RunSettings  # as `troop run` takes them; settings.session may be an existing file
    verify: VerifyOptions = VerifyOptions()  # how to judge samples


def relaunch(launch: Launch, session: Path) -> Launch:
    """The same launch aimed at an existing session file (resume rather than create)."""
    return replace(launch, settings=replace(launch.settings, session=session))


# -- verification set-up (also used by `troop verify` and `troop check`) ---------------------


def open_sandbox(verify: VerifyOptions, stack: ExitStack, *, sampling_threads: int = 0) -> Sandbox:
    """Start the verification workers (before any model is loaded: forks stay small).

    By default they get the cores sampling leaves free (at least one, at most four): a
    verification takes milliseconds, a sample seconds, so one worker keeps up on a laptop.
    """
    from troop.verifiers.answer_verifiers import SANDBOX_PRELOAD
    from troop.verifiers.sandbox import Sandbox

    cores = os.cpu_count() or 1
    workers = verify.verify_workers or max(1, min(4, cores - sampling_threads))
    # Imported (and warmed up) once per worker, so each forked job starts ready.
    preload = ("troop.verifiers.python_tests", *SANDBOX_PRELOAD)
    sandbox: Sandbox = stack.enter_context(
        Sandbox(workers=workers, tier=verify.sandbox, preload=preload)
    )
    return sandbox


def make_verifier(verify: VerifyOptions, problem_format: str) -> Verifier:
    """The verifier the options name, or the problem format's default."""
    from troop.verifiers import registry

    verifier: Verifier
    if verify.command is not None:
        if verify.verifier not in (None, "command"):
            raise TroopError("--command goes with --verifier command")
        argv = shlex.split(verify.command)
        if not argv:
            raise TroopError("--command is empty")
        verifier = registry.for_format(problem_format, "command", argv=argv)
        return verifier
    if verify.verifier == "command":
        raise TroopError("--verifier command needs --command 'PROGRAM ARGS'")
    if verify.pattern is not None:
        if verify.verifier != "regex":
            raise TroopError("--pattern goes with --verifier regex")
        verifier = registry.for_format(problem_format, "regex", pattern=verify.pattern)
        return verifier
    fmt = FORMATS.get(problem_format)
    default = fmt.default_verifier if fmt is not None else None
    verifier = registry.for_format(problem_format, verify.verifier or default)
    return verifier


def watched_files(verify: VerifyOptions, session: Session) -> tuple[Path | None, Path | None]:
    """The problem file (if the session's set is a file) and a command verifier's program."""
    spec = verify.problems or session.config().problem_set.name
    problem_file = Path(spec) if spec is not None and Path(spec).is_file() else None
    verifier_file = None
    if verify.command:
        argv = shlex.split(verify.command)
        # `python check.py`: the script is what a person edits; `./check`: the program itself.
        candidates = [Path(a) for a in argv[1:2]] + [Path(shutil.which(argv[0]) or argv[0])]
        verifier_file = next((c for c in candidates if c.is_file()), None)
    return problem_file, verifier_file


class _Telling:
    """Forwards every event, and says a worker restart in one line to a person."""

    def __init__(self, inner: RunObserver, notify: Callable[[str], None]) -> None:
        self.inner = inner
        self.notify = notify

    def on_event(self, event: Event) -> None:
        if isinstance(event, WorkerRestarted):
            lost = f" ({event.lost} samples in flight drawn again)" if event.lost else ""
            self.notify(event.reason + lost)
        self.inner.on_event(event)


class SessionRunner:
    """One session's sampling resources, kept between runs so "raise the budget" or "add
    problems" after a run ends samples again without reloading the model; every method but
    the steering ones blocks (a front end calls them from a thread)."""

    def __init__(
        self, launch: Launch, observer: RunObserver, notify: Callable[[str], None] | None = None
    ) -> None:
        self.launch = launch
        self.notify = notify or (lambda _text: None)  # one-line news for a person (any thread)
        self.observer: RunObserver = _Telling(observer, self.notify)
        self.prep: PreparedRun | None = None
        self.verification: Verification | None = None
        self.verifier: Verifier | None = None
        self.sandbox: Sandbox | None = None
        self.left_unjudged = 0  # samples an earlier run left unjudged, judged on prepare
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
        path: Path | None = (
            self.prep.session.path if self.prep is not None else self.launch.settings.session
        )
        return path

    @property
    def verifier_name(self) -> str | None:
        return self.verifier.name if self.verifier is not None else None

    @property
    def tier(self) -> str | None:
        """The sandbox tier, when verifying."""
        return self.sandbox.tier if self.sandbox is not None else None

    def prepare(self) -> PreparedRun:
        """Start the sandbox, start the llama.cpp worker and load the model, open or create
        the session and hand the verifier any samples left unjudged."""
        with self._prepare_lock:  # the sampling and a steering thread may both ask
            return self.prep if self.prep is not None else self._prepare()

    def _prepare(self) -> PreparedRun:
        from troop.engine import openai_run

        settings = self.launch.settings
        verify = self.launch.verify
        stack = self._stack
        if verify.verifying:
            # A server samples elsewhere: every core here is free to verify.
            local = openai_run.select_backend(settings) == "llamacpp"
            threads = (settings.threads or os.cpu_count() or 1) if local else 0
            self.sandbox = open_sandbox(verify, stack, sampling_threads=threads)
        prep = prepare(settings)
        stack.callback(prep.close)
        if self.sandbox is not None:
            self._start_verification(prep, self.sandbox)
        self.prep = prep
        # Raised, not replaced: a pause or stop pressed while the model loaded still holds.
        self.control.raise_budget(prep.budget)
        return prep

    def _start_verification(self, prep: PreparedRun, sandbox: Sandbox) -> None:
        """The verifier, recorded in the session, judging what earlier runs left unjudged;
        edits to a problem file or a command verifier's program re-judge."""
        from troop.engine.verify import Verification, pending

        verify = self.launch.verify
        fmt = next(iter(prep.problems.values())).format
        verifier = make_verifier(verify, fmt)
        prep.session.set_meta("verifier", {"name": verifier.name, "version": verifier.version})
        verification = Verification(prep.session, verifier, sandbox, self.observer)
        self._stack.callback(verification.close)
        left = pending(prep.session, verifier)
        for sample in left:
            verification.submit(sample.problem, sample.sample_index, sample.text)
        self.verification, self.verifier, self.left_unjudged = verification, verifier, len(left)
        reload = self._live_reload(prep, verification, fmt)
        if reload is not None:
            self._stack.callback(reload.stop)

    def _live_reload(
        self, prep: PreparedRun, verification: Verification, fmt: str
    ) -> LiveReload | None:
        from troop.engine.watch import LiveReload

        verify = self.launch.verify
        problem_file, verifier_file = watched_files(verify, prep.session)
        if problem_file is None and verifier_file is None:
            return None
        return LiveReload(
            prep.session,
            verification,
            problem_file=problem_file,
            verifier_file=verifier_file,
            rebuild=lambda: make_verifier(verify, fmt),
            notify=self.notify,
        ).start()

    def run_once(self) -> RunSummary:
        """Sample until the budget is met or the run is stopped; runs again while work was
        added during a run that had already run dry (a raised budget, added problems)."""
        prep = self.prepare()
        while True:
            with self._lock:
                if self._stop_pending:  # stopped while the model loaded, or between two runs
                    self._stop_pending = False
                    return RunSummary(
                        "cancelled",
                        prep.session.path,
                        0,
                        0,
                        0,
                        0.0,
                        prep.session.sample_count(),
                        self.target(),
                        {},
                    )
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
            if (
                summary.status != "completed"
                or not self._more.is_set()
                or (not adaptive and summary.stored >= self.target())
            ):
                return summary

    def target(self) -> int:
        prep = self.prep
        target: int = 0 if prep is None else prep.budget * len(prep.prompts)
        return target

    def solved(self) -> tuple[int, int, dict[str, int]] | None:
        """(problems with a pass, problems, verdicts by status this run), when verifying."""
        prep, verifier, verification = self.prep, self.verifier, self.verification
        if prep is None or verifier is None or verification is None:
            return None
        statuses = prep.session.current_statuses(verifier.name, verifier.version)
        passed = {pid for (pid, _), status in statuses.items() if status == "pass"}
        return len(passed), len(prep.problems), dict(verification.statuses)

    # -- steering (any thread) -----------------------------------------------------------

    def raise_budget(self, samples: int) -> int:
        """Aim for `samples` per problem (never lower); recorded in the session."""
        prep = self.prepare()
        with self._lock:
            budget: int = max(prep.budget, samples)
            if budget != prep.budget:
                prep.budget = budget
                prep.session.set_meta("budget", budget)
            self._more.set()
            control = self.control
        control.raise_budget(budget)
        return budget

    def set_temperatures(self, temperatures: tuple[float, ...]) -> None:
        """Samples not yet started use these temperatures (each sample records its own)."""
        with self._lock:
            self._temperatures = temperatures
            control = self.control
        control.set_temperatures(temperatures)

    def add_problems(self, *, more: int | None = None, ids: tuple[str, ...] = ()) -> list[str]:
        """Add `more` problems of the session's set (the next ones in order) or the named
        ones; a live run draws them as soon as its scheduler reaches them."""
        prep = self.prepare()
        with self._lock:
            specs = add_problems(prep, more=more or 0, problem_ids=ids)
            self._more.set()
            control = self.control
        control.add_prompts(specs)
        return [s.problem_id for s in specs]

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop(self) -> None:
        with self._lock:
            self._stop_pending = True
            control = self.control
        control.cancel()

    def close(self) -> None:
        """Stop the sandbox workers, the llama.cpp worker and the session."""
        self._stack.close()


def run_settings_error(settings: RunSettings, verify: VerifyOptions) -> str | None:
    """A combination of run and verify options that cannot work, as one line; None if fine."""
    if settings.policy.name in ("until-solved", "promising") and not verify.verifying:
        return (
            f"--policy {settings.policy.name} needs a verifier to know when a problem is "
            "solved; drop --verifier none"
        )
    return None
