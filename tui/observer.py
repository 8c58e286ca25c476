"""The TUI's RunObserver: folds engine events into shared state that the UI samples on a timer.

The sampling thread may report thousands of tokens a second; posting a message per token
would make the UI fall behind and steal the GIL from sampling. Instead each event is a few
dictionary updates under a lock, and the screen takes a `Snapshot` ten times a second: the
token stream is coalesced per slot however fast it runs.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from troop.engine.events import (
    Event,
    RunFinished,
    RunStarted,
    SampleFinished,
    SampleStarted,
    SampleVerified,
    TokensDecoded,
)

#: Characters of each sample's text kept for its stream pane (the pane shows the tail).
TAIL_CHARS = 1200
#: Seconds of history the tokens/s and samples/s rates average over.
RATE_WINDOW_S = 5.0
#: Seconds between the points the rates are measured from.
HISTORY_STEP_S = 0.5


@dataclass(frozen=True)
class StreamState:
    """What one sampling slot is drawing, as its pane shows it."""

    slot: int  # the parallel slot (0-based)
    problem_id: str  # the problem being sampled
    sample_index: int  # the sample's 0-based index among the problem's samples
    temperature: float  # its softmax temperature
    n_tokens: int  # completion tokens drawn so far
    text: str  # the last TAIL_CHARS characters decoded so far
    done: bool = False  # the sample finished (the slot waits for its next one)
    verdict: str | None = None  # status of the last verdict for a sample this slot drew
    verdict_of: tuple[str, int] | None = None  # (problem, index) that verdict judged
    verdict_at: float = 0.0  # clock time the verdict arrived, seconds (drives the flash)


@dataclass(frozen=True)
class Snapshot:
    """The run as of one UI tick: counters, rates, and the slots that changed."""

    running: bool  # a run is under way (between RunStarted and RunFinished)
    streams: dict[int, StreamState]  # slots changed since the last snapshot, by slot
    samples: int  # samples stored by this run
    stored: int  # samples in the session, this run's included
    planned: int  # samples this run set out to draw (grows when the budget is raised)
    budget: int  # samples per problem aimed at
    problems: int  # problems in the work list
    tokens: int  # completion tokens drawn by this run, finished samples or not
    verdicts: int  # verdicts received by this run
    statuses: dict[str, int]  # this run's verdicts by status
    tokens_per_s: float  # recent completion tokens per second
    samples_per_s: float  # recent samples per second
    eta_s: float | None  # seconds to finish the planned samples at the recent rate
    elapsed_s: float  # seconds since the run started
    revision: int  # bumped on every event: equal revisions mean nothing happened


@dataclass
class _Totals:
    samples: int = 0
    already: int = 0
    planned: int = 0
    budget: int = 0
    problems: int = 0
    tokens: int = 0
    verdicts: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    started: float | None = None
    ended: float | None = None


class LiveObserver:
    """Receives engine events on the sampling and verification threads; `snapshot()` on the
    UI thread hands over what changed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock  # injectable so snapshot tests see frozen rates
        self._lock = threading.Lock()
        self._streams: dict[int, StreamState] = {}
        self._dirty: set[int] = set()
        self._owner: dict[tuple[str, int], int] = {}  # sample -> slot that drew it
        self._totals = _Totals()
        self._history: deque[tuple[float, int, int]] = deque()  # (time, tokens, samples)
        self._revision = 0

    # -- the sampling side ---------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        with self._lock:
            self._revision += 1
            if isinstance(event, TokensDecoded):
                s = self._streams.get(event.slot)
                if s is not None:
                    text = s.text + event.delta
                    if len(text) > 2 * TAIL_CHARS:  # trim rarely: slicing every token costs
                        text = text[-TAIL_CHARS:]
                    self._streams[event.slot] = replace(s, text=text, n_tokens=event.n_tokens)
                    self._dirty.add(event.slot)
                self._totals.tokens += 1
            elif isinstance(event, SampleStarted):
                old = self._streams.get(event.slot)
                self._streams[event.slot] = StreamState(
                    event.slot,
                    event.problem_id,
                    event.sample_index,
                    event.temperature,
                    0,
                    "",
                    verdict=old.verdict if old else None,
                    verdict_of=old.verdict_of if old else None,
                    verdict_at=old.verdict_at if old else 0.0,
                )
                self._owner[(event.problem_id, event.sample_index)] = event.slot
                self._dirty.add(event.slot)
            elif isinstance(event, SampleFinished):
                self._totals.samples += 1
                s = self._streams.get(event.slot)
                if s is not None:
                    self._streams[event.slot] = replace(s, done=True)
                    self._dirty.add(event.slot)
            elif isinstance(event, SampleVerified):
                self._totals.verdicts += 1
                status = str(event.verdict.status)
                self._totals.statuses[status] += 1
                key = (event.problem_id, event.sample_index)
                slot = self._owner.pop(key, None)
                if slot is not None and slot in self._streams:
                    self._streams[slot] = replace(
                        self._streams[slot], verdict=status, verdict_of=key, verdict_at=self.clock()
                    )
                    self._dirty.add(slot)
            elif isinstance(event, RunStarted):
                t = self._totals
                t.samples = t.tokens = t.verdicts = 0
                t.statuses.clear()
                t.already, t.planned = event.already_done, event.planned
                t.budget, t.problems = event.budget, event.problems
                t.started, t.ended = self.clock(), None
                self._history.clear()
            elif isinstance(event, RunFinished):
                self._totals.ended = self.clock()

    # -- the UI side ---------------------------------------------------------------------

    def set_target(self, budget: int, problems: int) -> None:
        """The budget was raised or problems were added: re-aim the progress numbers."""
        with self._lock:
            t = self._totals
            t.budget, t.problems = budget, problems
            t.planned = max(t.samples, budget * problems - t.already)

    def snapshot(self) -> Snapshot:
        """What changed since the last call (streams) and where the run stands (counters)."""
        with self._lock:
            now = self.clock()
            streams = {slot: self._streams[slot] for slot in self._dirty}
            self._dirty.clear()
            t = self._totals
            # Points every HISTORY_STEP_S of clock time, not every call: the rates do not
            # depend on how often the UI asks (and stay put under a frozen test clock).
            if not self._history or now - self._history[-1][0] >= HISTORY_STEP_S:
                self._history.append((now, t.tokens, t.samples))
            while len(self._history) > 1 and now - self._history[1][0] >= RATE_WINDOW_S:
                self._history.popleft()
            t0, tokens0, samples0 = self._history[0]
            span = now - t0
            running = t.started is not None and t.ended is None
            tps = (t.tokens - tokens0) / span if span > 0 and running else 0.0
            sps = (t.samples - samples0) / span if span > 0 and running else 0.0
            left = max(0, t.planned - t.samples)
            eta = left / sps if sps > 0 else (0.0 if left == 0 and t.started else None)
            end = t.ended if t.ended is not None else now
            return Snapshot(
                running=running,
                streams=streams,
                samples=t.samples,
                stored=t.already + t.samples,
                planned=t.planned,
                budget=t.budget,
                problems=t.problems,
                tokens=t.tokens,
                verdicts=t.verdicts,
                statuses=dict(t.statuses),
                tokens_per_s=tps,
                samples_per_s=sps,
                eta_s=eta,
                elapsed_s=(end - t.started) if t.started is not None else 0.0,
                revision=self._revision,
            )

    @property
    def revision(self) -> int:
        """Bumped on every event (compare with Snapshot.revision)."""
        with self._lock:
            return self._revision

    def streams(self) -> dict[int, StreamState]:
        """Every slot's current state (for a pane that was just mounted)."""
        with self._lock:
            return dict(self._streams)
