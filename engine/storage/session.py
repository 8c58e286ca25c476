"""The session file: one SQLite database (WAL) holding configuration, problems and samples."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from array import array
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from troop.engine.events import SampleRecord
from troop.engine.storage.config import SessionConfig
from troop.engine.storage.rows import ListedSample, Mark, StoredProblem, StoredVerdict
from troop.engine.storage.schema import SCHEMA, SCHEMA_VERSION
from troop.errors import SessionError


class Session:
    """An open session file. Every write commits at once, so a crash loses nothing stored."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        # Sampling and verification threads share the connection; sqlite3 needs them serialised.
        self.lock = threading.RLock()

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, meta: dict[str, Any]) -> Session:
        if path.exists():
            raise SessionError(f"{path}: already exists")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SessionError(f"{path}: cannot create its folder: {exc.strerror}") from exc
        conn = _connect(path)
        with conn:
            conn.executescript(SCHEMA)
            rows = {"schema_version": SCHEMA_VERSION, "created_at": time.time(), **meta}
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in rows.items()],
            )
        return cls(path, conn)

    @classmethod
    def open(cls, path: Path) -> Session:
        if not path.exists():
            raise SessionError(f"{path}: no such session file")
        if path.is_dir():
            raise SessionError(f"{path}: is a folder, not a session file")
        with path.open("rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                raise SessionError(f"{path}: not a troop session (not an SQLite file)")
        conn = _connect(path)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise SessionError(f"{path}: not a troop session ({exc})") from exc
        if row is None:
            conn.close()
            raise SessionError(f"{path}: not a troop session (no schema version)")
        version = json.loads(row[0])
        if version != SCHEMA_VERSION:
            conn.close()
            raise SessionError(
                f"{path}: session schema {version}, this troop reads {SCHEMA_VERSION}"
            )
        with conn:
            conn.executescript(SCHEMA)  # adds tables newer than the file, e.g. verdicts
        return cls(path, conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta ------------------------------------------------------------------------------

    def meta(self, key: str, default: Any = None) -> Any:
        with self.lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def config(self) -> SessionConfig:
        """The configuration the session was made with; a file without one reads empty."""
        return SessionConfig.from_json(self.meta("config"))

    def set_meta(self, key: str, value: Any) -> None:
        with self.lock, self.conn:
            self.conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    # -- problems --------------------------------------------------------------------------

    def add_problems(self, problems: list[StoredProblem]) -> None:
        with self.lock, self.conn:
            self.conn.executemany(
                "INSERT INTO problems(problem_id, position, format, prompt, prompt_tokens, stop,"
                " data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        p.problem_id,
                        p.position,
                        p.format,
                        p.prompt,
                        p.prompt_tokens,
                        json.dumps(list(p.stop)),
                        json.dumps(p.data),
                    )
                    for p in problems
                ],
            )

    def problems(self) -> list[StoredProblem]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT problem_id, position, format, prompt, prompt_tokens, stop, data"
                " FROM problems ORDER BY position"
            ).fetchall()
        return [
            StoredProblem(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), json.loads(r[6]))
            for r in rows
        ]

    def update_problem_data(self, problem_id: str, data: Mapping[str, Any]) -> None:
        """Replace a problem's tests/answer (its prompt stays: samples were drawn for it)."""
        with self.lock, self.conn:
            self.conn.execute(
                "UPDATE problems SET data = ? WHERE problem_id = ?", (json.dumps(data), problem_id)
            )

    # -- runs ------------------------------------------------------------------------------

    def begin_run(self, settings: dict[str, Any]) -> int:
        with self.lock, self.conn:
            cur = self.conn.execute(
                "INSERT INTO runs(started_at, status, settings) VALUES (?, 'running', ?)",
                (time.time(), json.dumps(settings)),
            )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def set_run_settings(self, run_id: int, settings: dict[str, Any]) -> None:
        """Replace a run's recorded settings (its worker was restarted with other ones)."""
        with self.lock, self.conn:
            self.conn.execute(
                "UPDATE runs SET settings = ? WHERE run_id = ?", (json.dumps(settings), run_id)
            )

    def finish_run(self, run_id: int, status: str, error: str | None = None) -> None:
        with self.lock, self.conn:
            self.conn.execute(
                "UPDATE runs SET finished_at = ?, status = ?, error = ? WHERE run_id = ?",
                (time.time(), status, error, run_id),
            )

    def add_prompt_eval(self, run_id: int, problem_id: str, n_tokens: int, wall_s: float) -> None:
        with self.lock, self.conn:
            self.conn.execute(
                "INSERT INTO prompt_evals(run_id, problem_id, n_tokens, wall_s)"
                " VALUES (?, ?, ?, ?)",
                (run_id, problem_id, n_tokens, wall_s),
            )

    # -- samples ---------------------------------------------------------------------------

    def add_sample(self, record: SampleRecord) -> None:
        """Store one finished sample durably; a duplicate (problem, index) is an error."""
        tokens = array("i", record.tokens)
        with self.lock, self.conn:
            self.conn.execute(
                "INSERT INTO samples(problem_id, sample_index, seed, temperature, top_k, top_p,"
                " min_p, max_tokens, text, tokens, prompt_tokens, completion_tokens,"
                " finish_reason, stop, wall_s, logprob, run_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.problem_id,
                    record.sample_index,
                    record.seed,
                    record.temperature,
                    record.top_k,
                    record.top_p,
                    record.min_p,
                    record.max_tokens,
                    record.text,
                    tokens.tobytes(),
                    record.prompt_tokens,
                    record.completion_tokens,
                    record.finish_reason,
                    record.stop,
                    record.wall_s,
                    record.logprob,
                    record.run_id,
                    time.time(),
                ),
            )

    def done(self) -> set[tuple[str, int]]:
        """Every (problem, index) already stored."""
        with self.lock:
            rows = self.conn.execute("SELECT problem_id, sample_index FROM samples").fetchall()
        return {(r[0], r[1]) for r in rows}

    def sample_count(self) -> int:
        with self.lock:
            row = self.conn.execute("SELECT COUNT(*) FROM samples").fetchone()
        return int(row[0])

    def samples(
        self, problem_id: str | None = None, sample_index: int | None = None
    ) -> Iterator[SampleRecord]:
        sql = (
            "SELECT problem_id, sample_index, seed, temperature, top_k, top_p, min_p, max_tokens,"
            " text, tokens, prompt_tokens, finish_reason, stop, wall_s, logprob, run_id"
            " FROM samples"
        )
        args: tuple[str | int, ...] = ()
        if problem_id is not None:
            sql += " WHERE problem_id = ?"
            args = (problem_id,)
            if sample_index is not None:
                sql += " AND sample_index = ?"
                args = (problem_id, sample_index)
        sql += " ORDER BY problem_id, sample_index"
        with self.lock:
            rows = self.conn.execute(sql, args).fetchall()
        for r in rows:
            tokens = array("i")
            tokens.frombytes(r[9])
            yield SampleRecord(
                problem_id=r[0],
                sample_index=r[1],
                seed=r[2],
                temperature=r[3],
                top_k=r[4],
                top_p=r[5],
                min_p=r[6],
                max_tokens=r[7],
                text=r[8],
                tokens=tuple(tokens),
                prompt_tokens=r[10],
                finish_reason=r[11],
                stop=r[12],
                wall_s=r[13],
                logprob=r[14],
                run_id=r[15],
            )

    def sample(self, problem_id: str, sample_index: int) -> SampleRecord | None:
        """One stored sample, or None when it is not (yet) stored."""
        for record in self.samples(problem_id, sample_index):
            return record
        return None

    def sample_list(self) -> list[ListedSample]:
        """Every stored sample, in work-list order: a light index for browsing, without the
        texts."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT s.problem_id, s.sample_index, s.temperature FROM samples s"
                " JOIN problems p ON p.problem_id = s.problem_id"
                " ORDER BY p.position, s.sample_index"
            ).fetchall()
        return [ListedSample(r[0], r[1], r[2]) for r in rows]

    def data_version(self) -> int:
        """Changes whenever another connection (e.g. a sampling run) commits to the file."""
        with self.lock:
            row = self.conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    # -- verdicts -------------------------------------------------------------------------

    def add_verdict(
        self, problem_id: str, sample_index: int, tests_digest: str, verdict: Any
    ) -> None:
        """Store a verdict (a troop.verifiers.base.Verdict); re-judging replaces the old row."""
        with self.lock, self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO verdicts(problem_id, sample_index, verifier, version,"
                " tests_digest, status, duration_s, output, truncated, detail, tier, extra,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    problem_id,
                    sample_index,
                    verdict.verifier,
                    verdict.version,
                    tests_digest,
                    str(verdict.status),
                    verdict.duration_s,
                    verdict.output,
                    int(verdict.truncated),
                    verdict.detail,
                    verdict.tier,
                    json.dumps(verdict.extra),
                    time.time(),
                ),
            )

    def verdict_keys(self, verifier: str, version: str) -> set[tuple[str, int, str]]:
        """(problem, index, tests digest) of every stored verdict of this verifier version."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT problem_id, sample_index, tests_digest FROM verdicts"
                " WHERE verifier = ? AND version = ?",
                (verifier, version),
            ).fetchall()
        return {(r[0], r[1], r[2]) for r in rows}

    def current_verdicts(
        self,
        verifier: str,
        version: str,
        problem_id: str | None = None,
        sample_index: int | None = None,
    ) -> dict[tuple[str, int], StoredVerdict]:
        """Verdicts of this verifier version judged against each problem's current tests,
        keyed by (problem, index); optionally of one problem or sample."""
        sql = (
            "SELECT problem_id, sample_index, tests_digest, status, duration_s, output,"
            " truncated, detail, tier, extra FROM verdicts WHERE verifier = ? AND version = ?"
        )
        args: tuple[str | int, ...] = (verifier, version)
        if problem_id is not None:
            sql += " AND problem_id = ?"
            args += (problem_id,)
            if sample_index is not None:
                sql += " AND sample_index = ?"
                args += (sample_index,)
        digests = self._digests()
        with self.lock:
            rows = self.conn.execute(sql, args).fetchall()
        return {
            (r[0], r[1]): StoredVerdict(
                problem_id=r[0],
                sample_index=r[1],
                verifier=verifier,
                version=version,
                tests_digest=r[2],
                status=r[3],
                duration_s=r[4],
                output=r[5],
                truncated=bool(r[6]),
                detail=r[7],
                tier=r[8],
                extra=json.loads(r[9] or "{}"),
            )
            for r in rows
            if digests.get(r[0]) == r[2]
        }

    def current_statuses(self, verifier: str, version: str) -> dict[tuple[str, int], str]:
        """The status of every verdict `current_verdicts` would return, by (problem, index):
        cheap enough to re-read while a run writes (no captured output is read)."""
        digests = self._digests()
        with self.lock:
            rows = self.conn.execute(
                "SELECT problem_id, sample_index, tests_digest, status FROM verdicts"
                " WHERE verifier = ? AND version = ?",
                (verifier, version),
            ).fetchall()
        return {(r[0], r[1]): r[3] for r in rows if digests.get(r[0]) == r[2]}

    def _digests(self) -> dict[str, str]:
        """Each problem's current tests digest: verdicts judged against another are outdated."""
        return {p.problem_id: tests_digest(p.data) for p in self.problems()}

    # -- marks ---------------------------------------------------------------------------

    def add_mark(self, problem_id: str, sample_index: int, label: str, note: str = "") -> None:
        """Label a stored sample; marking it again with the same label replaces the note."""
        label = label.strip()
        if not label:
            raise SessionError("a mark needs a label", "e.g. 'false positive' or 'flaky test'")
        try:
            with self.lock, self.conn:
                self.conn.execute(
                    "INSERT INTO marks(problem_id, sample_index, label, note, created_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(problem_id, sample_index, label)"
                    " DO UPDATE SET note = excluded.note, created_at = excluded.created_at",
                    (problem_id, sample_index, label, note, time.time()),
                )
        except sqlite3.IntegrityError as exc:
            # The foreign key: only stored samples can be marked.
            raise SessionError(
                f"{self.path}: no sample {sample_index} of problem {problem_id!r} to mark"
            ) from exc

    def remove_mark(self, problem_id: str, sample_index: int, label: str) -> bool:
        """Drop one mark; False when there was none."""
        with self.lock, self.conn:
            cur = self.conn.execute(
                "DELETE FROM marks WHERE problem_id = ? AND sample_index = ? AND label = ?",
                (problem_id, sample_index, label),
            )
        return cur.rowcount > 0

    def marks(self, problem_id: str | None = None) -> list[Mark]:
        """Every mark (of one problem), in sample order then oldest first."""
        sql = "SELECT problem_id, sample_index, label, note, created_at FROM marks"
        args: tuple[str, ...] = ()
        if problem_id is not None:
            sql += " WHERE problem_id = ?"
            args = (problem_id,)
        sql += " ORDER BY problem_id, sample_index, created_at, label"
        with self.lock:
            rows = self.conn.execute(sql, args).fetchall()
        return [Mark(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def quick_check(self) -> str:
        with self.lock:
            row = self.conn.execute("PRAGMA quick_check").fetchone()
        return str(row[0])


def tests_digest(data: Mapping[str, Any]) -> str:
    """Pins what a verdict was judged against: a problem's tests and answer, not its prompt."""
    pinned = {k: data.get(k) for k in ("answer", "entry_point", "test", "test_list", "pattern")}
    return hashlib.sha256(json.dumps(pinned, sort_keys=True).encode()).hexdigest()


def _connect(path: Path) -> sqlite3.Connection:
    try:
        # The sampling thread writes while a UI thread may read: one connection, serialized
        # by the caller, is simplest; WAL lets other processes (sqlite3 CLI) read meanwhile.
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a committed sample survives a crash of troop; only an OS crash or
        # power cut can drop the last few commits, never corrupt the file.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
    except sqlite3.Error as exc:
        raise SessionError(f"{path}: cannot open as SQLite: {exc}") from exc
    return conn
