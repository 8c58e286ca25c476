"""What the engine reports while it runs: a closed union of events and the observer Protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from troop.verifiers.base import Verdict


@dataclass(frozen=True)
class SampleRecord:
    """One finished sample, exactly as stored in the session's `samples` table."""

    problem_id: str  # the problem this sample answers
    sample_index: int  # 0-based index among this problem's samples
    seed: int  # seed of this sample's own sampler chain (32-bit)
    temperature: float  # softmax temperature; 0 means greedy
    top_k: int  # top-k cut applied first; 0 disables it
    top_p: float  # nucleus mass kept; 1.0 disables it
    min_p: float  # min-p cut relative to the top token; 0.0 disables it
    max_tokens: int  # completion budget for this sample, tokens
    text: str  # decoded completion, up to (not including) a matched stop string
    tokens: tuple[int, ...]  # every completion token id drawn, the end-of-generation one excluded
    prompt_tokens: int  # length of the prompt this sample continued, tokens
    finish_reason: str  # "eos" (end-of-generation token), "stop" (stop string), "length"
    stop: str | None  # the stop string that ended the sample, if any
    wall_s: float  # seconds from the sample's first decode step to its last
    logprob: float  # sum over completion tokens of log p(token) under the raw model, nats
    # (backend sampling: under the truncated, tempered distribution each token was drawn from)
    run_id: int = 0  # the run (one `troop run` invocation) that drew it

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True)
class RunStarted:
    """A run began: how much work it plans."""

    run_id: int  # id of this run in the session
    planned: int  # samples this run will draw if not stopped
    already_done: int  # samples the session held before this run
    budget: int  # samples per problem this run aims at
    problems: int  # problems in the work list


@dataclass(frozen=True)
class PromptEvaluated:
    """A problem's prompt was evaluated once, to be shared by its samples."""

    problem_id: str  # the problem whose prompt was evaluated
    n_tokens: int  # prompt length, tokens
    wall_s: float  # seconds the evaluation took


@dataclass(frozen=True)
class SampleStarted:
    """A slot began drawing a sample."""

    slot: int  # which parallel slot (0-based) draws it
    problem_id: str  # the problem being sampled
    sample_index: int  # 0-based index among the problem's samples
    temperature: float  # the sample's temperature
    seed: int  # the sample's sampler seed


@dataclass(frozen=True)
class TokensDecoded:
    """A slot's sample grew by some text."""

    slot: int  # which parallel slot
    problem_id: str  # the problem being sampled
    sample_index: int  # index among the problem's samples
    delta: str  # text added since the last event for this slot (may be empty mid-character)
    n_tokens: int  # completion tokens drawn so far


@dataclass(frozen=True)
class SampleFinished:
    """A sample finished and is already durable in the session."""

    slot: int  # the slot that drew it, now free
    record: SampleRecord  # the stored sample


@dataclass(frozen=True)
class SampleVerified:
    """A verifier judged a stored sample; the verdict is already stored."""

    problem_id: str  # the sample's problem
    sample_index: int  # the sample's index
    verdict: Verdict  # the judgement


@dataclass(frozen=True)
class WorkerRestarted:
    """The llama.cpp worker died of a known, avoidable fault and sampling went on in a new one."""

    reason: str  # one line: what happened and what changed
    lost: int  # samples in flight when it died; drawn again, with their own seeds


@dataclass(frozen=True)
class RunFinished:
    """The run ended: completed, cancelled, or failed."""

    status: str  # "completed", "cancelled" or "failed"
    samples: int  # samples stored by this run
    completion_tokens: int  # tokens drawn by this run's stored samples
    prompt_tokens: int  # prompt tokens evaluated by this run (once per shared evaluation)
    wall_s: float  # seconds from start to end of the run
    error: str | None = field(default=None)  # why it failed, for status "failed"


Event = (
    RunStarted
    | PromptEvaluated
    | SampleStarted
    | TokensDecoded
    | SampleFinished
    | SampleVerified
    | WorkerRestarted
    | RunFinished
)


class RunObserver(Protocol):
    """Anything that watches a run: the TUI, the headless console, tests.

    Called on the sampling thread; an implementation that touches a UI must hand the event
    over to its own thread and return quickly.
    """

    def on_event(self, event: Event) -> None: ...


class NullObserver:
    """An observer that ignores everything."""

    def on_event(self, event: Event) -> None:
        pass


class Recorder:
    """An observer that keeps every event, for tests and scripts."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]
