"""The questions the analysis, the reports and the setup screen ask of a session file, answered
as typed rows; with session.py, the only code that speaks SQL to it."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from troop.engine.storage.config import SessionConfig
from troop.engine.storage.session import Session


@dataclass(frozen=True, slots=True)
class VerdictRow:
    """One stored verdict's status, with the canonical answers its verifier recorded."""

    problem_id: str  # the judged sample's problem
    sample_index: int  # the judged sample's index within its problem
    tests_digest: str  # digest of the tests/answer it was judged against (session.tests_digest)
    status: str  # pass, fail, timeout, resource, crash, invalid, infra_error
    # The sample's canonical answer (the verdict's extra `key`: math-answer records the form
    # math-verify compares); None when the verifier recorded none.
    key: str | None
    expected_key: str | None  # the expected answer's canonical form (extra `expected_key`)


@dataclass(frozen=True, slots=True)
class SampleBrief:
    """A stored sample as the analysis reads it: no token ids, seed or timings."""

    problem_id: str  # the sample's problem
    sample_index: int  # 0-based index within its problem
    temperature: float  # sampling temperature it was drawn at
    completion_tokens: int  # its length, tokens
    logprob: float  # sum of log p(token) under the raw model, nats
    text: str  # the completion as decoded


@dataclass(frozen=True, slots=True)
class SampleKey:
    """Which sample: a problem and an index within it."""

    problem_id: str  # the sample's problem
    sample_index: int  # 0-based index within its problem


@dataclass(frozen=True, slots=True)
class SampleTokens:
    """What one stored sample cost in tokens."""

    problem_id: str  # the sample's problem
    prompt_tokens: int  # length of the prompt it continued, tokens (shared, paid once per eval)
    completion_tokens: int  # its own length, tokens


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One sampling run as stored in `runs`."""

    run_id: int  # the run's number, ascending in start order
    started_at: float  # unix time, seconds
    finished_at: float | None  # unix time, seconds; None while running or after a crash
    status: str  # running, completed, cancelled, failed
    settings: dict[str, Any]  # parallel, threads, gpu_layers, kv cache, versions (JSON)


@dataclass(frozen=True, slots=True)
class RunSpan:
    """When one run sampled, for wall-clock totals."""

    started_at: float  # unix time, seconds
    # Unix time, seconds: when it finished; for a run without an end (running, crashed) its
    # last stored sample, or its start when it stored none.
    ended_at: float


@dataclass(frozen=True, slots=True)
class TierCount:
    """How many verdicts one sandbox tier gave."""

    tier: str  # bwrap or rlimits
    verdicts: int  # verdicts judged under it


@dataclass(frozen=True, slots=True)
class VerifierVersion:
    """A verifier version that has judged samples of the session."""

    verifier: str  # registered verifier name, e.g. python-tests
    version: str  # its version; verdicts of other versions are kept apart


@dataclass(frozen=True, slots=True)
class FileSummary:
    """A session file at a glance; what could not be read is None or "?"."""

    samples: int | None  # samples stored
    problems: int | None  # problems in the session
    budget: int | None  # samples per problem aimed at
    model: str  # model name
    problem_set: str  # problem set name


# -- verdicts ---------------------------------------------------------------------------------


def verdict_rows(session: Session, verifier: str, version: str) -> list[VerdictRow]:
    """Every stored verdict of this verifier version, whatever tests it was judged against
    (compare `tests_digest` with the problem's current one to keep the current ones)."""
    with session.lock:
        rows = session.conn.execute(
            "SELECT problem_id, sample_index, tests_digest, status,"
            " json_extract(extra, '$.key'), json_extract(extra, '$.expected_key')"
            " FROM verdicts WHERE verifier = ? AND version = ?",
            (verifier, version),
        ).fetchall()
    return [VerdictRow(r[0], r[1], r[2], r[3], _text(r[4]), _text(r[5])) for r in rows]


def leading_version(session: Session, verifier: str) -> str | None:
    """The version of this verifier that judged the most samples; None: it judged none."""
    with session.lock:
        row = session.conn.execute(
            "SELECT version FROM verdicts WHERE verifier = ? GROUP BY version"
            " ORDER BY COUNT(*) DESC LIMIT 1",
            (verifier,),
        ).fetchone()
    return None if row is None else str(row[0])


def tier_counts(session: Session, verifier: str) -> list[TierCount]:
    """The sandbox tiers this verifier's verdicts were judged under, most used first."""
    with session.lock:
        rows = session.conn.execute(
            "SELECT tier, COUNT(*) FROM verdicts WHERE verifier = ? GROUP BY tier ORDER BY 2 DESC",
            (verifier,),
        ).fetchall()
    return [TierCount(r[0], r[1]) for r in rows]


def verifier_versions(session: Session) -> list[VerifierVersion]:
    """Every verifier version with verdicts in the session, by name then version."""
    with session.lock:
        rows = session.conn.execute(
            "SELECT DISTINCT verifier, version FROM verdicts ORDER BY verifier, version"
        ).fetchall()
    return [VerifierVersion(str(r[0]), str(r[1])) for r in rows]


# -- samples ----------------------------------------------------------------------------------


def sample_briefs(session: Session) -> list[SampleBrief]:
    """Every stored sample without its token ids, by problem then index."""
    with session.lock:
        rows = session.conn.execute(
            "SELECT problem_id, sample_index, temperature, completion_tokens, logprob, text"
            " FROM samples ORDER BY problem_id, sample_index"
        ).fetchall()
    return [SampleBrief(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


def drawn_order(session: Session) -> list[SampleKey]:
    """Every stored sample in the order it was stored (the order the budget was spent)."""
    with session.lock:
        rows = session.conn.execute(
            "SELECT problem_id, sample_index FROM samples ORDER BY created_at, rowid"
        ).fetchall()
    return [SampleKey(r[0], r[1]) for r in rows]


def sample_tokens(session: Session) -> list[SampleTokens]:
    """Every stored sample's token counts, in storage order."""
    with session.lock:
        rows = session.conn.execute(
            "SELECT problem_id, prompt_tokens, completion_tokens FROM samples"
        ).fetchall()
    return [SampleTokens(r[0], r[1], r[2]) for r in rows]


# -- runs and prompts -------------------------------------------------------------------------


def runs(session: Session) -> list[RunRecord]:
    """Every sampling run, oldest first."""
    with session.lock:
        rows = session.conn.execute(
            "SELECT run_id, started_at, finished_at, status, settings FROM runs ORDER BY run_id"
        ).fetchall()
    return [RunRecord(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]


def run_spans(session: Session) -> list[RunSpan]:
    """When each run sampled, by run."""
    with session.lock:
        rows = session.conn.execute(
            "SELECT r.started_at, COALESCE(r.finished_at, MAX(s.created_at), r.started_at)"
            " FROM runs r LEFT JOIN samples s ON s.run_id = r.run_id GROUP BY r.run_id"
        ).fetchall()
    return [RunSpan(r[0], r[1]) for r in rows]


def prompt_eval_tokens(session: Session) -> list[int]:
    """The length, in tokens, of every shared prompt evaluation, in storage order."""
    with session.lock:
        rows = session.conn.execute("SELECT n_tokens FROM prompt_evals").fetchall()
    return [int(r[0]) for r in rows]


# -- files ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecentSession:
    """A session file in a sessions folder, as a list of recent sessions shows it."""

    path: Path  # the file
    modified: float  # unix time of its last change
    samples: int | None  # samples stored (None: unreadable)
    budget: int | None  # samples per problem aimed at
    problems: int | None  # problems in the session
    model: str  # model name
    problem_set: str  # problem set name


def recent_sessions(folder: Path, limit: int = 12) -> list[RecentSession]:
    """The newest `limit` session files in `folder`, newest first, read without writing."""
    try:
        files = sorted(folder.glob("*.sqlite"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return []
    out = []
    for path in files[:limit]:
        summary = summarise_file(path)
        try:
            modified = path.stat().st_mtime
        except OSError:
            modified = 0.0
        out.append(
            RecentSession(
                path,
                modified,
                summary.samples,
                summary.budget,
                summary.problems,
                summary.model,
                summary.problem_set,
            )
        )
    return out


def summarise_file(path: Path) -> FileSummary:
    """A session file's counts and names, read without writing to it (SQLite read-only, so a
    run writing it meanwhile is not disturbed); what cannot be read stays None or "?"."""
    samples = budget = problems = None
    model = problem_set = "?"
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)) as conn:
            samples = int(conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
            problems = int(conn.execute("SELECT COUNT(*) FROM problems").fetchone()[0])
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            budget = json.loads(meta.get("budget", "null"))
            config = SessionConfig.from_json(json.loads(meta.get("config", "{}")))
            model = config.model.name or "?"
            problem_set = config.problem_set.name or "?"
    except (sqlite3.Error, ValueError):
        pass
    return FileSummary(samples, problems, budget, model, problem_set)


def _text(value: object) -> str | None:
    """A JSON value extracted by SQLite as text (numbers recorded as keys vote as strings)."""
    return None if value is None else str(value)
