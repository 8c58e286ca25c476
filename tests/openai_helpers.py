"""The OpenAI-backend tests' harness: quick retries, a fault server per test, and ways to
run a session against it and read back what was stored."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fault_server import MODEL, FaultServer
from troop.engine.control import RunControl
from troop.engine.events import Recorder
from troop.engine.run import RunSummary, execute, prepare
from troop.engine.settings import RunSettings
from troop.engine.storage.session import Session


@pytest.fixture(name="quick_retries", autouse=True)
def quick_retries_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault tests wait milliseconds between attempts, and a second for a silent server."""
    monkeypatch.setenv("TROOP_SERVER_BACKOFF", "0.01")
    monkeypatch.setenv("TROOP_SERVER_RETRIES", "3")
    monkeypatch.setenv("TROOP_SERVER_TIMEOUT", "1")


@pytest.fixture(name="fault")
def fault_fixture() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def settings(path: Path, url: str, **overrides: Any) -> RunSettings:
    base: dict[str, Any] = dict(
        session=path,
        backend="openai",
        base_url=url,
        model=MODEL,
        problems="arithmetic",
        limit=3,
        samples=4,
        parallel=4,
        max_tokens=32,
    )
    return RunSettings(**{**base, **overrides})


def run(s: RunSettings, observer: Any = None, control: RunControl | None = None) -> RunSummary:
    prep = prepare(s)
    try:
        return execute(prep, observer or Recorder(), control)
    finally:
        prep.close()


def rows(path: Path) -> list[tuple[Any, ...]]:
    with Session.open(path) as s:
        return [
            (
                r.problem_id,
                r.sample_index,
                r.seed,
                r.text,
                r.tokens,
                r.finish_reason,
                r.prompt_tokens,
                r.logprob,
            )
            for r in s.samples()
        ]


def prompt_of(path: Path, problem_id: str) -> str:
    with Session.open(path) as s:
        return next(p.prompt for p in s.problems() if p.problem_id == problem_id)


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("troop: error: "), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
