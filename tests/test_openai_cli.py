"""The OpenAI backend from the command line: one-line errors, the API key kept out of the
session, resumes that refuse another backend, and a failed run resumed and verified."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import troop
from tests.fault_server import MODEL, FaultServer
from tests.openai_helpers import (
    fault_fixture,  # noqa: F401 - a fixture pytest finds by its name
    one_line_error,
    quick_retries_fixture,  # noqa: F401 - an autouse fixture
    run,
    settings,
)
from troop.engine.run import prepare
from troop.engine.settings import RunSettings
from troop.engine.storage.session import Session
from troop.errors import EngineError, SessionError

# -- the command line -----------------------------------------------------------------------


def test_unreachable_server_is_one_line_and_leaves_no_session(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    path = tmp_path / "u.sqlite"
    proc = troop(
        "run",
        "--headless",
        "--backend",
        "openai",
        "--base-url",
        f"http://127.0.0.1:{port}",
        "--session",
        str(path),
        "--verifier",
        "none",
    )
    one_line_error(proc, f"http://127.0.0.1:{port}/v1", "cannot connect")
    assert proc.returncode == 1 and not path.exists()


def test_bad_flags_and_unknown_model_are_one_line(tmp_path: Path, fault: FaultServer) -> None:
    path = tmp_path / "m.sqlite"
    common = ("run", "--headless", "--session", str(path), "--verifier", "none")
    one_line_error(
        troop(*common, "--backend", "openai", "--base-url", fault.url, "--model", "nope"),
        "does not serve model 'nope'",
        MODEL,
    )
    one_line_error(
        troop(*common, "--backend", "openai", "--base-url", "localhost:8080"),
        "--base-url must be an http(s) URL",
    )
    one_line_error(troop(*common, "--backend", "openai"), "needs --base-url")
    one_line_error(troop(*common, "--base-url", fault.url), "go with --backend openai")
    one_line_error(
        troop(
            *common,
            "--backend",
            "openai",
            "--base-url",
            fault.url,
            "--model",
            MODEL,
            "--api-key-env",
            "TROOP_NO_SUCH_VAR",
        ),
        "TROOP_NO_SUCH_VAR",
    )
    assert not path.exists()


def test_api_key_is_sent_from_its_variable_and_never_stored(
    tmp_path: Path, fault: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-test-4f8a1c0e9b7d"
    fault.behaviour.api_key = key
    path = tmp_path / "k.sqlite"
    with pytest.raises(EngineError, match="HTTP 401") as info:
        run(settings(path, fault.url, limit=1, samples=2))
    assert "--api-key-env" in str(info.value) and not path.exists()
    monkeypatch.setenv("TROOP_TEST_KEY", key)
    summary = run(settings(path, fault.url, limit=1, samples=2, api_key_env="TROOP_TEST_KEY"))
    assert summary.status == "completed" and summary.stored == 2
    with Session.open(path) as s:
        assert s.quick_check() == "ok"
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("k.sqlite*"))
    assert key.encode() not in stored and b"TROOP_TEST_KEY" in stored


def test_resume_refuses_another_backend_or_model(tmp_path: Path, fault: FaultServer) -> None:
    path = tmp_path / "b.sqlite"
    run(settings(path, fault.url, limit=1, samples=1))
    with pytest.raises(SessionError, match="sampled with the openai backend"):
        prepare(RunSettings(session=path, backend="llamacpp"))
    with pytest.raises(SessionError, match="another model"):
        prepare(RunSettings(session=path, model="other-model"))
    local = tmp_path / "local.sqlite"
    Session.create(local, {"config": {"model": {"name": "x"}}, "budget": 1}).close()
    with pytest.raises(SessionError, match="sampled with the llamacpp backend"):
        prepare(RunSettings(session=local, backend="openai", base_url=fault.url))


def test_cli_run_fails_clearly_then_resumes_and_verifies(
    tmp_path: Path, fault: FaultServer
) -> None:
    path = tmp_path / "cli.sqlite"
    fault.behaviour.always, fault.behaviour.ok_first = "503", 2
    args = (
        "run",
        "--headless",
        "--backend",
        "openai",
        "--base-url",
        fault.url,
        "--model",
        MODEL,
        "--problems",
        "arithmetic:3",
        "--samples",
        "3",
        "--parallel",
        "1",
        "--max-tokens",
        "32",
        "--session",
        str(path),
    )
    proc = troop(*args)
    assert proc.returncode == 1, proc.stderr
    assert "troop: error: 1 sample(s) could not be drawn" in proc.stderr
    assert "HTTP 503" in proc.stderr and "Traceback" not in proc.stderr
    con = sqlite3.connect(path)
    assert con.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 2
    # Nothing that failed became a verdict: only the two stored samples were judged.
    assert con.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] == 2
    con.close()
    fault.behaviour.always = None
    proc = troop("run", "--headless", "--session", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "run completed" in proc.stdout
    shown = json.loads(troop("show", str(path)).stdout)
    assert shown["samples_stored"] == shown["samples_target"] == 9
    assert shown["config"]["backend"]["name"] == "openai"
    con = sqlite3.connect(path)
    statuses = dict(con.execute("SELECT status, COUNT(*) FROM verdicts GROUP BY status"))
    con.close()
    assert sum(statuses.values()) == 9 and statuses.get("pass", 0) >= 5
