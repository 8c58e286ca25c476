"""The session file's rows as Session returns them: problems, verdicts, marks and the browsing
index of samples, with a problem's stored data read as typed fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProblemRecord:
    """A problem's stored data (`problems.data`) read as the fields the engine uses. Verifiers
    are handed the stored mapping itself (StoredProblem.data): that is their documented API,
    and it carries keys troop does not read (a problem file's `pattern`, `match`). A key that
    is missing or holds another type reads None (empty for `test_list`)."""

    id: str | None  # the problem's id as loaded (the session's key is StoredProblem.problem_id)
    format: str | None  # humaneval, mbpp, gsm8k, math, arithmetic, ...
    prompt: str | None  # the problem's own text, before any chat template or raw framing
    answer: str | None  # the expected final answer (answer-style formats)
    entry_point: str | None  # the function the tests call (code formats)
    test: str | None  # the test program a code verifier runs (HumanEval)
    test_list: tuple[str, ...]  # individual assert statements (MBPP)
    reference: str | None  # the data's own solution, when it has one
    source: str | None  # where it came from: "path:LINE" or "builtin:NAME:INDEX"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProblemRecord:
        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        tests = data.get("test_list")
        return cls(
            id=text("id"),
            format=text("format"),
            prompt=text("prompt"),
            answer=text("answer"),
            entry_point=text("entry_point"),
            test=text("test"),
            test_list=tuple(t for t in tests if isinstance(t, str))
            if isinstance(tests, list)
            else (),
            reference=text("reference"),
            source=text("source"),
        )


@dataclass(frozen=True)
class StoredProblem:
    """A problem as the session keeps it."""

    problem_id: str  # unique id within the session
    position: int  # order in the work list
    format: str  # problem format name
    prompt: str  # text sent to the model
    prompt_tokens: int  # its length, tokens
    stop: tuple[str, ...]  # stop strings
    # The problem as loaded (JSON object): what verifiers are handed, exactly as stored.
    data: dict[str, Any]

    @property
    def record(self) -> ProblemRecord:
        """The stored data's fields, typed."""
        return ProblemRecord.from_json(self.data)


@dataclass(frozen=True)
class Mark:
    """A person's label on one sample (e.g. "false positive"), kept in the session."""

    problem_id: str  # the marked sample's problem
    sample_index: int  # the marked sample's index within its problem
    label: str  # the judgement; one mark per (sample, label)
    note: str  # free text, may be empty
    created_at: float  # unix time of the last edit, seconds


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    """One verifier version's stored judgement of one sample."""

    problem_id: str  # the judged sample's problem
    sample_index: int  # the judged sample's index within its problem
    verifier: str  # registered verifier name, e.g. python-tests
    version: str  # the verifier's version
    tests_digest: str  # digest of the problem's tests/answer it was judged against
    status: str  # pass, fail, timeout, resource, crash, invalid, infra_error
    duration_s: float  # wall seconds the verification took
    output: str  # captured output of the checked program (capped), or the reason
    truncated: bool  # True when `output` was cut at the cap
    detail: str  # one line a person reads
    tier: str  # sandbox tier: bwrap or rlimits (empty when none ran)
    # Verifier-specific facts (JSON object), e.g. the extracted answer or the tests passed.
    extra: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ListedSample:
    """A stored sample as an index for browsing lists it: which one, and its temperature."""

    problem_id: str  # the sample's problem
    sample_index: int  # 0-based index within its problem
    temperature: float  # sampling temperature it was drawn at

    @property
    def key(self) -> tuple[str, int]:
        """(problem, index), as verdicts are keyed."""
        return (self.problem_id, self.sample_index)
