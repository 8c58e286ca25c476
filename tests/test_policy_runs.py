"""Real runs on the default model through the command line: each policy stops solved or
settled problems early, and a cancelled run resumes, under its policy or another."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import troop
from tests.policy_helpers import record
from troop.engine.control import RunControl
from troop.engine.events import Event, Recorder, SampleFinished
from troop.engine.policy import PolicySpec, make_allocation
from troop.engine.run import execute, prepare
from troop.engine.settings import RunSettings
from troop.engine.storage.session import Session
from troop.engine.verify import Verification
from troop.verifiers import registry
from troop.verifiers.sandbox import Sandbox

# -- real runs ---------------------------------------------------------------------------------

# arithmetic:4:3 holds "What is 4 + 9?", which the default model answers right in most samples,
# and harder ones it rarely does; small budgets keep these runs to seconds.
RESUME = ["run", "--headless", "--parallel", "8", "--max-tokens", "32"]
RUN = [*RESUME, "--problems", "arithmetic:4:3"]


def counts(path: Path, run_id: int | None = None) -> Counter[str]:
    with Session.open(path) as s:
        sql = "SELECT problem_id FROM samples" + (" WHERE run_id = ?" if run_id else "")
        return Counter(r[0] for r in s.conn.execute(sql, (run_id,) if run_id else ()))


def passes(path: Path) -> dict[str, int]:
    """Each solved problem's number of passing samples."""
    with Session.open(path) as s:
        rows = s.conn.execute("SELECT problem_id FROM verdicts WHERE status = 'pass'")
        return dict(Counter(r[0] for r in rows))


@pytest.mark.model
def test_until_solved_run_draws_fewer_samples_for_solved_problems(tmp_path: Path) -> None:
    n, path = 12, tmp_path / "s.sqlite"
    out = troop(*RUN, "--samples", str(n), "--policy", "until-solved", "--session", str(path))
    assert out.returncode == 0, out.stderr
    assert "resume with" not in out.stderr  # completing below N*P is completion here
    per = counts(path)
    solved = passes(path)
    assert solved, "the default model solves 4 + 9 in most samples"
    assert sum(per.values()) <= n * 4
    for pid in solved:
        assert per[pid] < n  # fixed would have drawn n
    unsolved = [per[pid] for pid in per if pid not in solved]
    assert max(unsolved) > n  # the freed budget went to them
    show = json.loads(troop("show", str(path)).stdout)
    assert show["coverage_only"] is True
    assert show["policy"] == {"name": "until-solved", "cap": 4.0, "chunk": None}
    with Session.open(path) as s:
        (settings,) = s.conn.execute("SELECT settings FROM runs").fetchone()
    assert json.loads(settings)["policy"]["name"] == "until-solved"


@pytest.mark.model
def test_promising_run_stops_at_the_first_pass_within_the_budget(tmp_path: Path) -> None:
    n, path = 12, tmp_path / "s.sqlite"
    out = troop(*RUN, "--samples", str(n), "--policy", "promising", "--session", str(path))
    assert out.returncode == 0, out.stderr
    per = counts(path)
    solved = passes(path)
    assert solved, "the default model solves 4 + 9 in most samples"
    assert sum(per.values()) <= n * 4
    with Session.open(path) as s:
        stored = s.conn.execute("SELECT problem_id, created_at FROM samples").fetchall()
        known = dict(
            s.conn.execute(
                "SELECT problem_id, MIN(created_at) FROM verdicts WHERE status = 'pass'"
                " GROUP BY problem_id"
            ).fetchall()
        )
        assert s.meta("coverage_only") is True
        assert s.meta("policy") == {"name": "promising", "cap": 4.0, "chunk": None, "credit": 0.5}
    # Once a problem's first pass is known, only samples already being decoded (at most the 8
    # slots) follow it.
    for pid, at in known.items():
        assert sum(1 for p, t in stored if p == pid and t > at) <= 8


@pytest.mark.model
def test_until_solved_resumes_after_a_cancel_and_then_with_fixed(tmp_path: Path) -> None:
    n, path = 8, tmp_path / "s.sqlite"
    settings = RunSettings(
        session=path,
        problems="arithmetic:4:3",
        samples=n,
        parallel=8,
        max_tokens=32,
        policy=PolicySpec("until-solved"),
    )
    control = RunControl(n)

    class CancelAfterTen(Recorder):
        def on_event(self, event: Event) -> None:
            super().on_event(event)
            if isinstance(event, SampleFinished) and len(self.of(SampleFinished)) == 10:
                control.cancel()

    prep = prepare(settings)
    with Sandbox(workers=1) as sandbox:
        verification = Verification(
            prep.session, registry.for_format("arithmetic"), sandbox, Recorder()
        )
        try:
            first = execute(prep, CancelAfterTen(), control, verification)
        finally:
            verification.close(wait=True)  # every stored sample judged
            prep.close()
    assert first.status == "cancelled" and first.stored < n * 4
    solved_before = set(passes(path))
    # Resume through the CLI: stored passes stop their problems at once; it completes.
    out = troop(*RESUME, "--policy", "until-solved", "--session", str(path))
    assert out.returncode == 0, out.stderr
    assert "run completed" in out.stdout
    second = counts(path, run_id=2)
    assert not solved_before & set(second)  # nothing more drawn for problems already solved
    assert sum(counts(path).values()) <= n * 4
    # Another policy is allowed; the session stays coverage-only. fixed tops every problem up
    # to N, the early-stopped ones included.
    out = troop(*RESUME, "--session", str(path))
    assert out.returncode == 0, out.stderr
    assert all(c >= n for c in counts(path).values())
    with Session.open(path) as s:
        assert s.meta("coverage_only") is True
        assert s.meta("policy") == {"name": "fixed"}
        policies = [
            json.loads(r[0])["policy"]["name"]
            for r in s.conn.execute("SELECT settings FROM runs ORDER BY run_id")
        ]
    assert policies == ["until-solved", "until-solved", "fixed"]


@pytest.mark.model
def test_until_consistent_run_stops_settled_problems(tmp_path: Path) -> None:
    n, path = 12, tmp_path / "s.sqlite"
    out = troop(
        *RUN,
        "--samples",
        str(n),
        "--policy",
        "until-consistent",
        "--verifier",
        "none",
        "--session",
        str(path),
    )
    assert out.returncode == 0, out.stderr
    per = counts(path)
    assert sum(per.values()) <= n * 4
    # Replay the stored samples in the order they were stored: every problem that got fewer
    # than N samples was settled by the Beta rule, and after that drew only the samples
    # already in flight (at most the 8 slots).
    replay = make_allocation(
        PolicySpec("until-consistent"), sorted(per), set(), dict.fromkeys(per, "arithmetic")
    )
    assert replay is not None
    after: Counter[str] = Counter()
    with Session.open(path) as s:
        rows = s.conn.execute("SELECT problem_id, sample_index, text FROM samples ORDER BY rowid")
        for pid, index, text in rows.fetchall():
            if pid in replay.stopped:
                after[pid] += 1
            replay.observe(record(pid, index, text))
    short = [pid for pid, c in per.items() if c < n]
    assert short, "4 + 9 = 13 settles within a few samples"
    for pid in short:
        assert pid in replay.stopped
        assert after[pid] <= 8
