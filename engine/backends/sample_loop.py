"""What every sampler does around drawing a sample, local or served: the run's plumbing, the
events it reports, stop strings, and how a finished sample is recorded, stored and counted."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from troop.engine.control import RunControl
from troop.engine.events import (
    PromptEvaluated,
    RunObserver,
    SampleFinished,
    SampleRecord,
    SampleStarted,
    TokensDecoded,
)

if TYPE_CHECKING:
    from troop.engine.work import SamplingParams, WorkItem, WorkSource

#: Stores a finished sample; returns it as stored (with the run's id).
Store = Callable[[SampleRecord], SampleRecord]


@dataclass
class BatchStats:
    """Counters of one batched run."""

    prompt_tokens: int = 0  # tokens evaluated for shared prompts
    completion_tokens: int = 0  # tokens drawn for stored samples
    samples: int = 0  # samples finished
    steps: int = 0  # decode steps (a server-backed run: requests sent, retries included)


@dataclass(frozen=True)
class Drawing:
    """One call of a sampler's run(): where its work comes from and where its samples go."""

    scheduler: WorkSource  # hands out the samples to draw
    store: Store  # stores each finished sample
    observer: RunObserver  # hears every event
    control: RunControl  # pause, cancel and the live budget
    stats: BatchStats  # the run's counters, updated in place
    on_step: Callable[[], None] | None = None  # called after each decode step (the worker
    # sends one message per step with everything the step produced)

    def stepped(self) -> None:
        """A decode step is over: its events are all reported."""
        if self.on_step is not None:
            self.on_step()

    def prompt_evaluated(self, problem_id: str, n_tokens: int, t0: float) -> None:
        """A problem's prompt (`n_tokens` long) has been evaluated, since `perf_counter` t0."""
        self.stats.prompt_tokens += n_tokens
        self.observer.on_event(PromptEvaluated(problem_id, n_tokens, time.perf_counter() - t0))

    def started(self, slot: int, item: WorkItem, seed: int) -> None:
        """A sample has started in `slot`, drawn with `seed`."""
        self.observer.on_event(
            SampleStarted(slot, item.prompt.problem_id, item.sample_index, item.temperature, seed)
        )

    def decoded(self, slot: int, item: WorkItem, delta: str, n_tokens: int) -> None:
        """The sample in `slot` has grown by `delta`, to `n_tokens` completion tokens."""
        self.observer.on_event(
            TokensDecoded(slot, item.prompt.problem_id, item.sample_index, delta, n_tokens)
        )

    def finished(self, slot: int, record: SampleRecord) -> SampleRecord:
        """Store a finished sample, count it and report it; the record as stored."""
        stored = self.store(record)
        self.stats.samples += 1
        self.stats.completion_tokens += stored.completion_tokens
        self.observer.on_event(SampleFinished(slot=slot, record=stored))
        return stored


class SampleSource(ABC):
    """A sampler: draws the scheduler's samples, storing and reporting each as it finishes."""

    def run(
        self,
        scheduler: WorkSource,
        store: Store,
        observer: RunObserver,
        control: RunControl,
        stats: BatchStats | None = None,
        *,
        on_step: Callable[[], None] | None = None,
    ) -> BatchStats:
        """Sample until the scheduler is empty or the run is cancelled; `stats` (updated in
        place, so a caller still has the counts after an interruption) is returned."""
        stats = stats if stats is not None else BatchStats()
        self._draw(Drawing(scheduler, store, observer, control, stats, on_step))
        return stats

    @abstractmethod
    def _draw(self, drawing: Drawing) -> None:
        """Draw the scheduler's samples until it is empty or the run is cancelled."""


def find_stop(text: str, before: int, stops: Sequence[str]) -> tuple[int, str] | None:
    """Where the first of `stops` that ends in the new text (past `before`) starts, and which
    it is; None when none does."""
    for stop in stops:
        # Only a match ending in the new text is new; start early enough to catch a stop
        # string split across tokens or chunks.
        at = text.find(stop, max(0, before - len(stop) + 1))
        if at >= 0:
            return at, stop
    return None


def sample_record(
    item: WorkItem,
    params: SamplingParams,
    *,
    seed: int,
    text: str,
    tokens: tuple[int, ...],
    prompt_tokens: int,
    finish: tuple[str, str | None],
    started: float,
    logprob: float,
) -> SampleRecord:
    """A finished sample as the session stores it: `finish` is (finish reason, matched stop
    string), `started` its `perf_counter` start."""
    reason, stop = finish
    return SampleRecord(
        problem_id=item.prompt.problem_id,
        sample_index=item.sample_index,
        seed=seed,
        temperature=item.temperature,
        top_k=params.top_k,
        top_p=params.top_p,
        min_p=params.min_p,
        max_tokens=params.max_tokens,
        text=text,
        tokens=tokens,
        prompt_tokens=prompt_tokens,
        finish_reason=reason,
        stop=stop,
        wall_s=time.perf_counter() - started,
        logprob=logprob,
    )
