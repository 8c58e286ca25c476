"""What a verifier is and what it says: the Verdict, its statuses, the Verifier protocol, and
how the built-in verifiers read each built-in format's samples."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

#: How the built-in verifiers read a sample of each built-in problem format: "code" (they run
#: the problem's tests on it), "boxed" (its final LaTeX answer, in `\boxed{}`) or "number" (the
#: number it ends with). The verifiers sit below the engine and cannot ask its format registry
#: (troop.engine.formats), so they keep this much of it; tests/test_formats.py keeps the two in
#: step.
SAMPLE_STYLES: dict[str, str] = {
    "humaneval": "code",
    "mbpp": "code",
    "gsm8k": "number",
    "math": "boxed",
    "arithmetic": "number",
}


class Status(enum.StrEnum):
    """How a sample fared. Only PASS counts as solved; INFRA_ERROR is never a FAIL."""

    PASS = "pass"  # the tests (or the answer check) accepted the sample
    FAIL = "fail"  # the sample ran and was judged wrong (assertion, wrong answer, early exit)
    TIMEOUT = "timeout"  # wall or CPU time limit hit
    RESOURCE = "resource"  # memory, file size, open files or process limit hit
    CRASH = "crash"  # the sample's process died abnormally (signal, killed its parent...)
    INVALID = "invalid"  # nothing to run or judge: no code block, no parsable answer
    INFRA_ERROR = "infra_error"  # the sandbox itself failed; retried, never counted as fail


@dataclass(frozen=True)
class Verdict:
    """One verifier's judgement of one sample, as stored in the session's `verdicts` table."""

    status: Status  # the outcome
    verifier: str  # the verifier's registered name, e.g. "python-tests"
    version: str  # the verifier's version; verdicts of another version are recomputed
    duration_s: float  # wall seconds the verification took, sandbox start-up included
    output: str  # captured stdout+stderr of the checked program (capped), or the reason
    truncated: bool = False  # True when `output` was cut at the cap
    detail: str = ""  # one line a person reads: "AssertionError in check()", "no code block"
    tier: str = ""  # sandbox tier used: "bwrap" or "rlimits"
    extra: dict[str, Any] = field(default_factory=dict)  # verifier-specific facts (e.g. the
    # extracted answer), JSON-serialisable

    @property
    def passed(self) -> bool:
        return self.status is Status.PASS


@dataclass(frozen=True)
class Check:
    """What a verifier needs to judge one sample: the sample's text and its problem."""

    text: str  # the sample's completion, exactly as stored
    problem: dict[str, Any]  # the problem as stored in the session (`problems.data`): id,
    # format, prompt, answer, entry_point, test, test_list, reference


@runtime_checkable
class Verifier(Protocol):
    """A plugin that judges samples. Built-ins and third-party verifiers register the same way:
    an entry point in the group `troop.verifiers` naming a zero-argument factory."""

    name: str  # registered name
    version: str  # bump when judgements may change: stored verdicts of older versions expire

    def applies_to(self, problem_format: str) -> bool:
        """Whether this verifier can judge problems of this format."""
        ...

    def verify(self, check: Check, sandbox: Any) -> Verdict:
        """Judge one sample, running anything untrusted through `sandbox`. Must not raise for
        a bad sample: every outcome is a Verdict."""
        ...


def partial_credit(extra: Mapping[str, Any]) -> float | None:
    """A verdict's share of its problem's tests that the sample passed (tests passed / tests
    run, in [0, 1]), from the `extra` of test-based verifiers; None where none were counted
    (other verifiers, verdicts stored before tests were counted, nothing ran)."""
    passed, run = extra.get("tests_passed"), extra.get("tests_run")
    if not isinstance(passed, int) or not isinstance(run, int) or run <= 0:
        return None
    return min(1.0, max(0.0, passed / run))


def credit_label(extra: Mapping[str, Any]) -> str | None:
    """The partial credit as people read it, "3 of 7 tests passed"; None where none."""
    if partial_credit(extra) is None:
        return None
    return f"{extra['tests_passed']} of {extra['tests_run']} tests passed"
