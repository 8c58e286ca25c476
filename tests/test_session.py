"""The session file is a documented SQLite schema that users query directly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from troop.engine.events import SampleRecord
from troop.engine.storage.session import SCHEMA_VERSION, Session, StoredProblem
from troop.errors import SessionError


def record(i: int, text: str = "42") -> SampleRecord:
    return SampleRecord(
        problem_id="p1",
        sample_index=i,
        seed=123,
        temperature=0.8,
        top_k=40,
        top_p=0.95,
        min_p=0.0,
        max_tokens=16,
        text=text,
        tokens=(1, 2, 70000),
        prompt_tokens=9,
        finish_reason="eos",
        stop=None,
        wall_s=0.5,
        logprob=-1.5,
        run_id=1,
    )


def new(path: Path) -> Session:
    s = Session.create(path, {"config": {"seed": 0}, "budget": 2})
    s.add_problems(
        [StoredProblem("p1", 0, "arithmetic", "What is 6*7?", 9, ("\n\n",), {"answer": "42"})]
    )
    s.begin_run({"parallel": 1})
    return s


def test_schema_has_the_documented_columns(tmp_path: Path) -> None:
    with new(tmp_path / "s.sqlite") as s:
        s.add_sample(record(0, "The answer is 42.\x1b[31m[bold]"))
    con = sqlite3.connect(tmp_path / "s.sqlite")
    cols = {r[1] for r in con.execute("PRAGMA table_info(samples)")}
    assert {
        "problem_id",
        "sample_index",
        "seed",
        "temperature",
        "text",
        "completion_tokens",
        "finish_reason",
    } <= cols
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = con.execute("SELECT text, completion_tokens FROM samples").fetchone()
    assert row == ("The answer is 42.\x1b[31m[bold]", 3)  # raw text, exactly as given
    con.close()


def test_round_trip_and_duplicates_refused(tmp_path: Path) -> None:
    with new(tmp_path / "s.sqlite") as s:
        s.add_sample(record(0))
        s.add_sample(record(1, "41"))
        with pytest.raises(sqlite3.IntegrityError):
            s.add_sample(record(1, "again"))
    with Session.open(tmp_path / "s.sqlite") as s:
        got = list(s.samples())
        assert got == [record(0), record(1, "41")]
        assert s.done() == {("p1", 0), ("p1", 1)}
        assert s.meta("budget") == 2 and s.meta("schema_version") == SCHEMA_VERSION
        assert s.quick_check() == "ok"


def test_refuses_files_that_are_not_sessions(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match="no such session"):
        Session.open(tmp_path / "missing.sqlite")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(SessionError, match="not a troop session"):
        Session.open(other)
    with pytest.raises(SessionError, match="already exists"):
        Session.create(other, {})
    newer = tmp_path / "newer.sqlite"
    new(newer).set_meta("schema_version", SCHEMA_VERSION + 1)
    with pytest.raises(SessionError, match="schema"):
        Session.open(newer)
