"""The command line as a user meets it: help, bad input as one-line errors, a real run, kill -9."""

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
from troop.engine.models import resolve_model


def test_help_lists_every_subcommand_with_a_summary() -> None:
    out = troop("--help")
    assert out.returncode == 0
    for cmd in ("run", "models", "show"):
        line = next(ln for ln in out.stdout.splitlines() if ln.strip().startswith(cmd + " "))
        assert len(line.split()) > 2, line


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    err = result.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--samples", "0"], ["--samples", "positive"]),
        (["--samples", "-3"], ["--samples"]),
        (["--limit", "0"], ["--limit"]),
        (["--parallel", "0"], ["--parallel"]),
        (["--temperature", "-1"], ["--temperature", ">= 0"]),
        (["--temperature", "nan"], ["--temperature", "finite"]),
        (["--temperature", "inf"], ["--temperature"]),
        (["--temperature", "abc"], ["--temperature"]),
        (["--top-p", "1.5"], ["--top-p"]),
        (["--max-tokens", "x"], ["--max-tokens"]),
        (["--model", "no-such-model"], ["unknown model", "smollm2-135m"]),
        (["--model", "/nonexistent/model.gguf"], ["/nonexistent/model.gguf", "no such file"]),
        (["--problems", "no-such-set"], ["no-such-set"]),
        (["--parallel", "999"], ["--parallel", "256"]),
        (["--max-tokens", "100000"], ["context"]),
    ],
)
def test_bad_arguments_give_one_line_errors(args: list[str], needles: list[str]) -> None:
    one_line_error(troop("run", "--headless", "--limit", "1", *args), *needles)


def test_bad_model_files_are_named(tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("hello, not a model\n" * 10)
    one_line_error(troop("run", "--headless", "--model", str(text)), str(text), "not a GGUF")
    truncated = tmp_path / "truncated.gguf"
    with resolve_model(None).path.open("rb") as fh:
        truncated.write_bytes(fh.read(3_000_000))
    one_line_error(troop("run", "--headless", "--model", str(truncated)), str(truncated))
    folder = tmp_path / "dir.gguf"
    folder.mkdir()
    one_line_error(troop("run", "--headless", "--model", str(folder)), "folder")


def test_bad_problem_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1+1?", "answer": "#### 2"}\n{not json\n')
    one_line_error(troop("run", "--headless", "--problems", str(bad)), f"{bad}:2")


def test_bad_session_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database")
    one_line_error(troop("run", "--headless", "--session", str(junk)), "not a troop session")
    one_line_error(troop("show", str(tmp_path / "missing.sqlite")), "no such session")


@pytest.mark.model
def test_headless_run_prints_a_summary_and_show_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    out = troop(
        "run",
        "--headless",
        "--limit",
        "2",
        "--samples",
        "3",
        "--parallel",
        "3",
        "--max-tokens",
        "16",
        "--session",
        str(path),
    )
    assert out.returncode == 0, out.stderr
    assert "run completed" in out.stdout and "6 / 6" in out.stdout
    assert "Traceback" not in out.stderr
    shown = json.loads(troop("show", str(path)).stdout)
    assert shown["samples_stored"] == shown["samples_target"] == 6
    assert shown["config"]["model"]["name"] == "smollm2-135m"


@pytest.mark.model
def test_default_session_goes_to_the_sessions_folder(sessions_home: Path) -> None:
    out = troop("run", "--headless", "--limit", "1", "--samples", "1", "--max-tokens", "8")
    assert out.returncode == 0, out.stderr
    files = list(sessions_home.glob("*.sqlite"))
    assert len(files) == 1 and "smollm2-135m-arithmetic" in files[0].name


def _count(path: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@pytest.mark.model
def test_kill_9_mid_run_loses_only_samples_in_flight(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    args = [
        "--limit",
        "4",
        "--samples",
        "6",
        "--parallel",
        "4",
        "--max-tokens",
        "48",
        "--session",
        str(path),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "troop", "run", "--headless", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    deadline = time.monotonic() + 240
    while _count(path) < 5 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    kept = dict(con.execute("SELECT problem_id || '#' || sample_index, text FROM samples"))
    con.close()
    assert 5 <= len(kept) < 24
    out = troop("run", "--headless", *args)
    assert out.returncode == 0, out.stderr
    con = sqlite3.connect(path)
    rows = con.execute("SELECT problem_id, sample_index, text FROM samples").fetchall()
    status = [r[0] for r in con.execute("SELECT status FROM runs ORDER BY run_id")]
    con.close()
    assert len(rows) == 24 and len({(r[0], r[1]) for r in rows}) == 24
    assert {f"{r[0]}#{r[1]}": r[2] for r in rows if f"{r[0]}#{r[1]}" in kept} == kept
    assert status == ["running", "completed"]  # the killed run never got to finish


@pytest.mark.model
def test_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "troop",
            "run",
            "--headless",
            "--limit",
            "4",
            "--samples",
            "8",
            "--max-tokens",
            "48",
            "--session",
            str(path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while _count(path) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "run cancelled" in out
    con = sqlite3.connect(path)
    assert con.execute("SELECT status FROM runs").fetchone()[0] == "cancelled"
    con.close()
