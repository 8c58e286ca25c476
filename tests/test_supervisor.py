"""The supervised llama.cpp worker: real signals to the real worker mid-run, the AMX restart,
one writer per session, and a front end that never loads llama.cpp."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import troop
from troop.engine.backends.supervisor import findings_path, is_extra_buffers_fault
from troop.engine.backends.worker_process import Death
from troop.engine.events import Recorder, WorkerRestarted
from troop.engine.run import execute, prepare
from troop.engine.settings import RunSettings
from troop.engine.storage.lock import SessionBusy, SessionLock, holder

ARGS = [
    "--limit",
    "3",
    "--samples",
    "6",
    "--parallel",
    "4",
    "--max-tokens",
    "40",
    "--verifier",
    "none",
]


def _connect(path: Path) -> sqlite3.Connection:
    """Read-only: a connection must never create the file troop is about to create."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)


def _stored(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        con = _connect(path)
        try:
            return int(con.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _worker_pid(path: Path) -> int | None:
    """The pid of the worker sampling the session's latest run (from its recorded settings)."""
    try:
        con = _connect(path)
        try:
            row = con.execute(
                "SELECT settings FROM runs WHERE status = 'running' ORDER BY run_id DESC LIMIT 1"
            ).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return json.loads(row[0]).get("worker_pid") if row else None


def _wait(predicate: object, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _texts(path: Path) -> dict[tuple[str, int], str]:
    con = sqlite3.connect(path)
    try:
        return {
            (p, i): t
            for p, i, t in con.execute("SELECT problem_id, sample_index, text FROM samples")
        }
    finally:
        con.close()


@pytest.mark.model
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_killed_worker_ends_the_headless_run_in_one_line_and_a_rerun_completes_exactly(
    tmp_path: Path, sig: signal.Signals
) -> None:
    path = tmp_path / "s.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "troop", "run", "--headless", "--session", str(path), *ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    try:
        _wait(lambda: _stored(path) >= 3 or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()[1]
        pid = _worker_pid(path)
        assert pid is not None and pid != proc.pid
        os.kill(pid, sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, None)
    assert "Traceback" not in err
    line = next(ln for ln in err.splitlines() if "llama.cpp worker" in ln)
    assert f"killed by {sig.name}" in line and "in flight lost" in line, err
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    con.close()
    kept = _texts(path)
    assert 3 <= len(kept) < 18
    again = troop("run", "--headless", "--session", str(path), *ARGS)
    assert again.returncode == 0, again.stderr
    after = _texts(path)
    assert len(after) == 18
    assert {k: after[k] for k in kept} == kept  # nothing stored is redrawn


@pytest.mark.model
def test_an_amx_fault_restarts_the_worker_without_extra_buffers_and_changes_no_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    small = dict(problems="arithmetic", limit=2, samples=4, parallel=4, max_tokens=24)

    def run(path: Path, **extra: object) -> Recorder:
        rec = Recorder()
        prep = prepare(RunSettings(session=path, **{**small, **extra}))  # type: ignore[arg-type]
        try:
            summary = execute(prep, rec)
        finally:
            prep.close()
        assert summary.status == "completed" and summary.stored == 8
        return rec

    plain = tmp_path / "plain.sqlite"
    run(plain, cpu_extra_buffers="off")
    # The first worker dies by a real SIGILL at its first decode and reports AMX, as a native
    # build does where AMX faults.
    monkeypatch.setenv("TROOP_WORKER_FAULT", "sigill")
    faulted = tmp_path / "faulted.sqlite"
    rec = run(faulted)
    restarts = rec.of(WorkerRestarted)
    assert len(restarts) == 1 and "SIGILL" in restarts[0].reason  # type: ignore[union-attr]
    assert _texts(faulted) == _texts(plain)
    finding = json.loads(findings_path().read_text())
    assert [v["extra_buffers"] for v in finding.values()] == ["off"]
    con = sqlite3.connect(faulted)
    settings = json.loads(con.execute("SELECT settings FROM runs").fetchone()[0])
    con.close()
    assert settings["cpu_extra_buffers"] == "off"
    # The next start skips the fault: remembered for this machine and build.
    again = run(tmp_path / "again.sqlite")
    assert again.of(WorkerRestarted) == []


def test_only_a_sigill_with_amx_and_extra_buffers_is_the_known_fault() -> None:
    amx = "AVX512 = 1 | AMX_INT8 = 1 |"
    sigill, segv = Death(-signal.SIGILL, []), Death(-signal.SIGSEGV, [])
    assert is_extra_buffers_fault(sigill, amx, True)
    assert not is_extra_buffers_fault(sigill, amx, False)  # already off: a different fault
    assert not is_extra_buffers_fault(sigill, "AVX512 = 1 |", True)
    assert not is_extra_buffers_fault(segv, amx, True)
    assert sigill.signal_name == "SIGILL" and Death(3, []).signal_name is None


def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    # A real holder: another process takes the session's lock and keeps it.
    code = (
        "import sys, time; from pathlib import Path; from troop.engine.storage.lock import "
        "SessionLock; SessionLock(Path(sys.argv[1])).acquire(); print('held', flush=True);"
        " time.sleep(120)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        who = holder(path)
        assert who is not None and who.pid == proc.pid
        with pytest.raises(SessionBusy, match=f"pid {proc.pid}"):
            SessionLock(path).acquire()
        path.touch()  # the session "exists": troop run resumes it, so it must be refused
        t0 = time.monotonic()
        out = troop("run", "--headless", "--session", str(path), *ARGS)
        assert time.monotonic() - t0 < 60  # no model was loaded to find this out
        assert out.returncode == 2
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and f"pid {proc.pid}" in lines[0] and "troop open" in lines[0]
    finally:
        proc.kill()
        proc.wait()
    # Released by the OS with the process: the session is free again.
    assert holder(path) is None
    SessionLock(path).acquire().release()


def test_the_command_line_loads_neither_llama_cpp_nor_scipy() -> None:
    code = (
        "import sys; from troop.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('llama_cpp', 'scipy', 'textual') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_worker_waits_passively_at_a_lower_priority_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenMP's spin-waiting stalls a worker beside any busy process (README, "The TUI"): a
    real worker starts with OMP_WAIT_POLICY=passive at nice 5; the user's settings win."""
    from troop.engine.backends.worker_process import WORKER_NICE, WorkerProcess

    def started(**env: str) -> tuple[dict[str, str], int]:
        for key in ("OMP_WAIT_POLICY", "TROOP_WORKER_NICE"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        worker = WorkerProcess(tmp_path / "w.log")
        try:
            raw = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
            environ = dict(x.decode().split("=", 1) for x in raw if b"=" in x)
            return environ, os.getpriority(os.PRIO_PROCESS, worker.pid) - os.nice(0)
        finally:
            worker.close()

    environ, nice = started()
    assert environ["OMP_WAIT_POLICY"] == "passive" and nice == WORKER_NICE
    environ, nice = started(OMP_WAIT_POLICY="active", TROOP_WORKER_NICE="2")
    assert environ["OMP_WAIT_POLICY"] == "active" and nice == 2
