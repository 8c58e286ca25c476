"""A session's problems with their samples and verdicts, read from the store as the analysis
needs them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from troop.engine.analytics.results import VerifierRef
from troop.engine.storage import queries
from troop.engine.storage.session import Session, tests_digest


@dataclass
class ProblemSamples:
    """One problem's samples and verdicts, as the analysis needs them."""

    problem_id: str
    format: str
    prompt_tokens: int
    data: dict[str, Any]
    indices: list[int] = field(default_factory=list)  # sample indices, ascending
    temperatures: list[float] = field(default_factory=list)  # per sample
    completion_tokens: list[int] = field(default_factory=list)  # per sample
    logprobs: list[float] = field(default_factory=list)  # per sample, summed nats
    texts: list[str] = field(default_factory=list)  # per sample completion
    statuses: list[str | None] = field(default_factory=list)  # per sample; None: unverified
    # Per sample: the canonical answer its verdict recorded (math-answer's `key`, by which
    # answers math-verify calls equal vote together); None: no verdict or none recorded.
    keys: list[str | None] = field(default_factory=list)
    reference_key: str | None = None  # the expected answer's canonical form, when recorded


def load_problems(session: Session, verifier: VerifierRef | None) -> list[ProblemSamples]:
    """Every problem of the session with its samples in index order and, where `verifier` has
    judged them on the problem's current tests, their verdicts."""
    problems = {
        p.problem_id: ProblemSamples(p.problem_id, p.format, p.prompt_tokens, p.data)
        for p in session.problems()
    }
    digests = {pid: tests_digest(p.data) for pid, p in problems.items()}
    statuses: dict[tuple[str, int], str] = {}
    keys: dict[tuple[str, int], str | None] = {}
    with session.lock:  # verdicts and samples read together, between the run's writes
        if verifier is not None:
            rows = queries.verdict_rows(session, verifier.name, verifier.version)
            current = [v for v in rows if digests.get(v.problem_id) == v.tests_digest]
            statuses = {(v.problem_id, v.sample_index): v.status for v in current}
            keys = {(v.problem_id, v.sample_index): v.key for v in current}
            for v in current:
                if v.expected_key is not None:
                    problems[v.problem_id].reference_key = v.expected_key
        samples = queries.sample_briefs(session)
    for sample in samples:
        p = problems[sample.problem_id]
        p.indices.append(sample.sample_index)
        p.temperatures.append(sample.temperature)
        p.completion_tokens.append(sample.completion_tokens)
        p.logprobs.append(sample.logprob)
        p.texts.append(sample.text)
        key = (sample.problem_id, sample.sample_index)
        p.statuses.append(statuses.get(key))
        p.keys.append(keys.get(key))
    return list(problems.values())
