"""Live reload with watchdog: editing the problem file or a command verifier's program
re-judges the affected samples; a verifier that fails to load leaves the previous one working."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from troop.engine.events import Recorder
from troop.engine.run import execute, prepare
from troop.engine.settings import RunSettings
from troop.engine.storage.session import Session
from troop.engine.verify import Verification, verify_session
from troop.engine.watch import LiveReload
from troop.verifiers import registry
from troop.verifiers.sandbox import Sandbox

pytestmark = pytest.mark.model

CHECK = """import json, sys
problem = json.load(open(sys.argv[-1]))
text = open(sys.argv[-2]).read()
sys.exit(0 if {rule} else 1)
"""


def wait_for(cond: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for the reload"
        time.sleep(0.1)


@pytest.fixture()
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    problems = tmp_path / "gsm.jsonl"
    rows = [
        {"question": f"What is {a} + {a}?", "answer": f"{a} plus {a}.\n#### {2 * a}"}
        for a in (2, 3)
    ]
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "s.sqlite"
    prep = prepare(
        RunSettings(session=path, problems=str(problems), samples=2, parallel=2, max_tokens=12)
    )
    try:
        execute(prep, Recorder())
    finally:
        prep.close()
    script = tmp_path / "check.py"
    script.write_text(CHECK.format(rule="True"))
    session = Session.open(path)
    sandbox = Sandbox(workers=1)
    yield problems, script, session, sandbox
    sandbox.close()
    session.close()


def statuses(session: Session, name: str, version: str) -> dict[tuple[str, int], str]:
    return session.current_statuses(name, version)


def test_edits_rejudge_and_a_broken_verifier_keeps_the_old_one(setup) -> None:  # type: ignore[no-untyped-def]
    problems, script, session, sandbox = setup
    argv = [sys.executable, str(script)]

    def build():  # type: ignore[no-untyped-def]
        return registry.for_format("gsm8k", "command", argv=argv)

    first = build()
    verify_session(session, first, sandbox, Recorder())
    assert set(statuses(session, "command", first.version).values()) == {"pass"}

    notes: list[str] = []
    verification = Verification(session, first, sandbox, Recorder())
    reload = LiveReload(
        session,
        verification,
        problem_file=problems,
        verifier_file=script,
        rebuild=build,
        notify=notes.append,
    ).start()
    try:
        # 1. The program changes: a new version, every sample judged again, now all fail.
        script.write_text(CHECK.format(rule="False"))
        wait_for(lambda: verification.verifier.version != first.version)
        second = verification.verifier
        verification.wait()
        wait_for(lambda: len(statuses(session, "command", second.version)) == 4)
        assert set(statuses(session, "command", second.version).values()) == {"fail"}
        assert any("re-judging 4 samples" in n for n in notes)

        # 2. The program disappears: reported, and the previous verifier keeps working.
        script.rename(script.with_suffix(".bak"))
        wait_for(lambda: any("keeping the previous version" in n for n in notes))
        assert verification.verifier is second

        # 3. One problem's tests change (same question): only its samples are judged again.
        before = reload.reloads
        rows = [json.loads(line) for line in problems.read_text().splitlines()]
        rows[1]["answer"] = "changed.\n#### 7"
        problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
        wait_for(lambda: reload.reloads > before)
        verification.wait()
        assert any("tests changed for 1 problems: re-judging 2 samples" in n for n in notes)
        stored = {p.problem_id: p.data for p in session.problems()}
        assert stored["gsm8k/1"]["answer"] == "7"
        assert len(statuses(session, "command", second.version)) == 4

        # 4. A malformed problem file is reported; the session keeps the last good tests.
        before = reload.reloads
        problems.write_text("{not json\n")
        wait_for(lambda: reload.reloads > before)
        assert any("gsm.jsonl:1" in n for n in notes)
        assert {p.problem_id: p.data for p in session.problems()}["gsm8k/1"]["answer"] == "7"
    finally:
        reload.stop()
        verification.wait()
        verification.close()
