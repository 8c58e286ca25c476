"""What a run samples, as the scheduler, the run control and every sampler see it: the session's
sampling settings, each problem's prompt, and the samples to draw with their seeds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings shared by every sample of a session."""

    temperatures: tuple[float, ...] = (0.8,)  # cycled by sample index: i % len(temperatures)
    top_k: int = 40  # applied first; 0 disables it (slow: top-p then sorts the whole vocabulary)
    top_p: float = 0.95  # nucleus mass kept; 1.0 disables it
    min_p: float = 0.0  # min-p cut relative to the most likely token; 0.0 disables it
    max_tokens: int = 256  # completion budget per sample, tokens
    ignore_eos: bool = False  # benchmarks: an end-of-generation token does not end the
    # sample, so every sample is exactly max_tokens long (as llama-batched-bench's are)


@dataclass(frozen=True)
class PromptSpec:
    """A problem's prompt, tokenized, and the strings that end its samples."""

    problem_id: str  # the problem it belongs to
    tokens: tuple[int, ...]  # the prompt, tokens (at least one)
    stop: tuple[str, ...]  # stop strings; the completion is cut before the first match


@dataclass(frozen=True)
class WorkItem:
    """One sample to draw."""

    prompt: PromptSpec  # what it continues
    sample_index: int  # 0-based index among the problem's samples
    seed: int  # its sampler seed
    temperature: float  # its temperature


def sample_seed(session_seed: int, problem_id: str, sample_index: int) -> int:
    """A 32-bit seed that depends only on (session seed, problem, index), so a resumed or
    re-ordered run draws each sample with the same seed."""
    digest = hashlib.sha256(f"{session_seed}\x00{problem_id}\x00{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class WorkSource(Protocol):
    """Where a sampler takes its samples from: the Scheduler, or the worker's queue of the
    samples its supervisor's Scheduler handed over."""

    def next_item(self) -> WorkItem | None:
        """The next sample to draw; None when there is none now."""

    @property
    def budget_seen(self) -> int:
        """The budget the last next_item() worked to: a sampler whose source ran dry looks
        again only once the run's budget (RunControl.budget) differs from it."""
