"""Verification wired into sessions: `troop run` judges as it samples, `troop verify`
re-judges only what is missing or outdated, `troop check` judges one file, plugins load."""

from __future__ import annotations

import json
import os
import sqlite3
import textwrap
from pathlib import Path

import pytest

from tests.conftest import troop

pytestmark = pytest.mark.model


def statuses(path: Path) -> dict[str, int]:
    con = sqlite3.connect(path)
    rows = con.execute("SELECT status, COUNT(*) FROM verdicts GROUP BY status").fetchall()
    con.close()
    return dict(rows)


def test_run_verifies_every_sample_and_verify_only_fills_gaps(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    out = troop(
        "run",
        "--headless",
        "--limit",
        "4",
        "--samples",
        "4",
        "--parallel",
        "4",
        "--max-tokens",
        "32",
        "--session",
        str(path),
    )
    assert out.returncode == 0, out.stderr
    assert "sandbox:" in out.stderr and "verifier: math-answer" in out.stderr
    assert "problems solved (any pass)" in out.stdout
    counts = statuses(path)
    assert sum(counts.values()) == 16 and set(counts) <= {"pass", "fail", "invalid"}
    con = sqlite3.connect(path)
    row = con.execute("SELECT verifier, version, tier FROM verdicts LIMIT 1").fetchone()
    con.close()
    assert row[0] == "math-answer" and row[2] in {"bwrap", "rlimits"}

    again = troop("verify", str(path))
    assert again.returncode == 0, again.stderr
    assert "0 of 16 samples to judge" in again.stderr
    forced = troop("verify", str(path), "--force")
    assert forced.returncode == 0 and "16 of 16 samples to judge" in forced.stderr
    assert statuses(path) == counts  # same samples, same verdicts

    # A verdict lost (e.g. a crash before it was stored) is the only one judged again.
    con = sqlite3.connect(path)
    con.execute("DELETE FROM verdicts WHERE rowid IN (SELECT rowid FROM verdicts LIMIT 3)")
    con.commit()
    con.close()
    refill = troop("verify", str(path))
    assert "3 of 16 samples to judge" in refill.stderr
    assert sum(statuses(path).values()) == 16


def test_check_prints_a_verdict_as_json(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("Adding them gives 14. The answer is 14.")
    out = troop("check", "--problems", "arithmetic", "--problem", "arith/000", str(good))
    assert out.returncode == 0, out.stderr
    verdict = json.loads(out.stdout)
    assert verdict["status"] == "pass" and verdict["verifier"] == "math-answer"
    assert {"status", "verifier", "duration_s", "output"} <= set(verdict)
    bad = tmp_path / "bad.txt"
    bad.write_text("The answer is 13.")
    out = troop("check", "--problems", "arithmetic", "--problem", "arith/000", str(bad))
    assert out.returncode == 0 and json.loads(out.stdout)["status"] == "fail"


def test_check_bad_arguments(tmp_path: Path) -> None:
    sample = tmp_path / "s.txt"
    sample.write_text("14")
    for args, needle in [
        (["--problem", "arith/999", str(sample)], "arith/999"),
        (["--problem", "arith/000", str(tmp_path / "missing.txt")], "no such sample"),
        (["--problem", "arith/000", "--verifier", "nope", str(sample)], "python-tests"),
        (["--problem", "arith/000", "--verifier", "python-tests", str(sample)], "cannot judge"),
    ]:
        out = troop("check", "--problems", "arithmetic", *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert needle in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_third_party_verifier_registers_through_the_entry_point_group(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "lenient_verifier-0.1.dist-info").mkdir(parents=True)
    (site / "lenient_verifier-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lenient-verifier\nVersion: 0.1\n"
    )
    (site / "lenient_verifier-0.1.dist-info" / "entry_points.txt").write_text(
        "[troop.verifiers]\nlenient = lenient_verifier:Lenient\nbroken = lenient_verifier:nope\n"
    )
    (site / "lenient_verifier.py").write_text(
        textwrap.dedent('''
        from troop.verifiers.base import Status, Verdict

        class Lenient:
            """Passes every sample that mentions a digit."""
            name = "lenient"
            version = "1"

            def applies_to(self, problem_format):
                return True

            def verify(self, check, sandbox):
                ok = any(c.isdigit() for c in check.text)
                return Verdict(Status.PASS if ok else Status.FAIL, self.name, self.version,
                               0.0, "")
    ''')
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    sample = tmp_path / "s.txt"
    sample.write_text("no digits here")
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "troop", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    listed = run("verifiers")
    assert "lenient" in listed.stdout and "python-tests" in listed.stdout
    out = run(
        "check",
        "--problems",
        "arithmetic",
        "--problem",
        "arith/000",
        "--verifier",
        "lenient",
        str(sample),
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "fail"
    broken = run(
        "check",
        "--problems",
        "arithmetic",
        "--problem",
        "arith/000",
        "--verifier",
        "broken",
        str(sample),
    )
    assert broken.returncode == 2 and "failed to load" in broken.stderr
    assert "installed:" in broken.stderr and "math-answer" in broken.stderr


def test_regex_verifier_takes_a_pattern_from_the_command_line(tmp_path: Path) -> None:
    sample = tmp_path / "s.txt"
    sample.write_text("The answer is 14.")
    args = ["check", "--problems", "arithmetic", "--problem", "arith/000", "--verifier", "regex"]
    out = troop(*args, "--pattern", r"\b14\b", str(sample))
    assert out.returncode == 0 and json.loads(out.stdout)["status"] == "pass"
    out = troop(*args, "--pattern", r"\b15\b", str(sample))
    assert out.returncode == 0 and json.loads(out.stdout)["status"] == "fail"
    bad = troop(*args, "--pattern", "(", str(sample))
    assert bad.returncode == 2 and "bad regex pattern" in bad.stderr
