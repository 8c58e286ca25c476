"""Messages the TUI's worker threads post to its screens: past-tense, one event each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from troop.engine.analytics.results import Analysis


@dataclass
class RunPrepared(Message):
    """The model is loaded, the session open and the sandbox started; sampling begins."""

    session_path: Path  # the session file being sampled into
    created: bool  # True if this run created the session, False if it resumed one
    tier: str | None  # sandbox tier verifying samples (bwrap or rlimits); None: not verifying
    verifier: str | None  # the verifier's name; None: not verifying
    budget: int  # samples per problem the run aims at
    problems: int  # problems in the work list


@dataclass
class RunEnded(Message):
    """A run stopped: its budget was met, it was stopped, or it failed."""

    status: str  # completed, cancelled or failed
    samples: int  # samples this run stored
    wall_s: float  # seconds the run took
    stored: int  # samples in the session now
    target: int  # samples the budget asks for


@dataclass
class RunFailed(Message):
    """Preparing or sampling raised an error a person should read."""

    message: str  # one line: what went wrong
    hint: str | None = None  # what to do about it, if known


@dataclass
class AnalysisUpdated(Message):
    """A fresh `analyse()` of the session (and of the overlay session, if any) is ready."""

    analysis: Analysis  # troop.engine.analytics.analysis.analyse_path() of the session
    overlay: Analysis | None  # the comparison session's analysis, or None
    seconds: float  # wall seconds the analysis took
    cpu_s: float  # CPU seconds it took (its worker thread), counted in the UI's CPU share


@dataclass
class ProblemsAdded(Message):
    """Problems were added to the session while it is open."""

    added: list[str]  # ids of the new problems


@dataclass
class ReportExported(Message):
    """A report of the session was written."""

    path: Path  # where it is


@dataclass
class ThemeFilesChanged(Message):
    """A theme file was created, edited or removed (posted from the file watcher's thread)."""

    path: Path  # the file that changed

    def can_replace(self, message: Message) -> bool:
        # An editor's save is several file events; one reload serves them all.
        return isinstance(message, ThemeFilesChanged)
