"""Answer verifiers (math-answer, exact, regex) and the command verifier: their judging logic
called directly, their mapping of sandbox outcomes to verdicts, and real sandboxed runs."""

from __future__ import annotations

import importlib
import json
import os
import stat
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from troop.errors import TroopError
from troop.verifiers.answer_verifiers import (
    ExactAnswer,
    MathAnswer,
    RegexAnswer,
    judge_exact,
    judge_math,
    judge_regex,
    verdict_from_job,
)
from troop.verifiers.base import Check, Status, Verifier
from troop.verifiers.command import CommandVerifier, judge_command


def math_problem(answer: str, fmt: str = "math") -> dict[str, Any]:
    return {
        "id": "p/1",
        "format": fmt,
        "prompt": "?",
        "answer": answer,
        "entry_point": None,
        "test": None,
        "test_list": [],
        "reference": None,
        "source": "test",
    }


# --- judge functions, called directly -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fmt", "expected", "status"),
    [
        ("So $x = \\boxed{\\dfrac{1}{2}}$.", "math", "0.5", "pass"),
        ("\\boxed{2\\sqrt{2}}", "math", "\\sqrt{8}", "pass"),
        ("\\boxed{\\left(1,2\\right)}", "math", "(1,2)", "pass"),
        ("\\boxed{3}", "math", "4", "fail"),
        ("I think it is about four.", "math", "4", "invalid"),
        ("She earns 9 * 2 = $18 every day.\nThe answer is $18.", "gsm8k", "18", "pass"),
        ("The answer is 1,000.", "gsm8k", "1000", "pass"),
        ("The answer is 12.0", "gsm8k", "12", "pass"),
        ("The answer is 17.", "gsm8k", "18", "fail"),
        ("No idea.", "gsm8k", "18", "invalid"),
        ("7 + 8 = 15", "arithmetic", "15", "pass"),
    ],
)
def test_judge_math(text: str, fmt: str, expected: str, status: str) -> None:
    result = judge_math({"text": text, "format": fmt, "expected": expected})
    assert result["status"] == status
    assert result["passed"] is (status == "pass")
    json.dumps(result)  # what a sandbox job returns must be JSON-serialisable


def test_judge_math_reports_the_answer_and_why_it_failed() -> None:
    result = judge_math({"text": "\\boxed{3}", "format": "math", "expected": "4"})
    assert result["answer"] == "3" and "'3'" in result["detail"] and "'4'" in result["detail"]


def test_judge_math_power_tower_is_a_quick_fail() -> None:
    start = time.monotonic()
    result = judge_math({"text": "\\boxed{2003^{2002^{2001}}}", "format": "math", "expected": "1"})
    assert result["status"] == "fail" and time.monotonic() - start < 5


@pytest.mark.parametrize(
    ("text", "expected", "match", "status"),
    [
        ("The answer is 18.", "18", None, "pass"),
        ("The answer is $18.00", "18", None, "pass"),
        ("\\boxed{\\dfrac12}", "\\frac{1}{2}", None, "pass"),
        ("\\boxed{0.5}", "\\frac{1}{2}", None, "fail"),  # no numeric equivalence here
        ("  Paris. ", "Paris", "text", "pass"),
        ("Paris is the capital", "Paris", "text", "fail"),
        ("   ", "Paris", "text", "invalid"),
        ("nothing", "3", None, "invalid"),
    ],
)
def test_judge_exact(text: str, expected: str, match: str | None, status: str) -> None:
    fmt = "math" if "boxed" in text else "gsm8k"
    result = judge_exact({"text": text, "format": fmt, "expected": expected, "match": match})
    assert result["status"] == status


def test_judge_regex() -> None:
    assert judge_regex({"text": "ID: ab-123", "pattern": r"\b[a-z]{2}-\d{3}\b"})["status"] == (
        "pass"
    )
    found = judge_regex({"text": "ID: ab-123", "pattern": r"\d+"})
    assert found["answer"] == "123"
    assert judge_regex({"text": "no id", "pattern": r"\d+"})["status"] == "fail"
    bad = judge_regex({"text": "x", "pattern": "("})
    assert bad["status"] == "crash" and "bad pattern" in bad["detail"]


# --- the command verifier's judge, run directly in a temporary working directory ----------


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory of its own, as the sandbox gives each job."""
    work = tmp_path / "job"
    work.mkdir()
    monkeypatch.chdir(work)
    yield work


def write_script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


CHECKER = """
    import json, os, sys
    sample_path, problem_path = sys.argv[-2], sys.argv[-1]
    assert os.environ["TROOP_SAMPLE"] == sample_path
    assert os.environ["TROOP_PROBLEM"] == problem_path
    assert os.path.basename(sample_path) == "sample.txt"
    text = open(sample_path, encoding="utf-8").read()
    assert sys.stdin.read() == text
    problem = json.load(open(problem_path, encoding="utf-8"))
    if "sleep" in text:
        import time
        time.sleep(60)
    if "boom" in text:
        sys.exit(3)
    if "kill" in text:
        os.kill(os.getpid(), 9)
    if "noisy" in text:
        sys.stdout.write("x" * 100000)
    ok = problem["answer"] in text
    print("detail: found " + problem["answer"] if ok else "detail: missing " + problem["answer"])
    print("more output")
    print("to stderr", file=sys.stderr)
    sys.exit(0 if ok else 1)
"""


def command_payload(script: Path, text: str, timeout_s: float = 10.0) -> dict[str, Any]:
    return {
        "argv": [str(script)],
        "text": text,
        "problem": math_problem("42"),
        "timeout_s": timeout_s,
        "output_cap": 4096,
    }


def test_judge_command_pass_fail_and_detail(in_tmp: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "check.py", CHECKER)
    passed = judge_command(command_payload(script, "The answer is 42 ☃"))
    assert passed["status"] == "pass" and passed["detail"] == "found 42"
    assert "more output" in passed["output"] and "to stderr" in passed["output"]
    assert (in_tmp / "sample.txt").read_text(encoding="utf-8") == "The answer is 42 ☃"
    assert json.loads((in_tmp / "problem.json").read_text())["answer"] == "42"
    failed = judge_command(command_payload(script, "The answer is 41"))
    assert failed["status"] == "fail" and failed["detail"] == "missing 42"
    assert failed["extra"] == {"returncode": 1}


def test_judge_command_crash_timeout_and_cap(in_tmp: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "check.py", CHECKER)
    crashed = judge_command(command_payload(script, "boom"))
    assert crashed["status"] == "crash" and "exit status 3" in crashed["detail"]
    killed = judge_command(command_payload(script, "kill"))
    assert killed["status"] == "crash" and "SIGKILL" in killed["detail"]
    start = time.monotonic()
    slow = judge_command(command_payload(script, "sleep", timeout_s=0.5))
    assert slow["status"] == "timeout" and time.monotonic() - start < 10
    noisy = judge_command(command_payload(script, "noisy 42"))
    assert noisy["truncated"] and len(noisy["output"]) < 10000


def test_judge_command_missing_program(in_tmp: Path, tmp_path: Path) -> None:
    result = judge_command(command_payload(tmp_path / "gone", "x"))
    assert result["status"] == "crash" and "cannot start" in result["detail"]


def test_judge_command_runs_the_copies_it_is_given(in_tmp: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "check.py", CHECKER)
    verifier = CommandVerifier(argv=[str(script)])
    script.unlink()  # only the copy read when the verifier was built remains
    payload = {**command_payload(script, "42"), "argv": verifier.argv, "files": verifier._files}
    result = judge_command(payload)
    assert result["status"] == "pass", result
    assert (in_tmp / "program" / "0" / "check.py").is_file()


def test_command_verifier_version_tracks_the_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = write_script(tmp_path / "check.py", CHECKER)
    first = CommandVerifier(argv=[str(script)])
    assert first.version.startswith("1+") and len(first.version) == 14
    assert first.version == CommandVerifier(argv=[str(script)]).version
    script.write_text(script.read_text() + "\n# edited\n")
    assert CommandVerifier(argv=[str(script)]).version != first.version
    # `python check.py`: the script is what a person edits, and it is found from the sandbox's
    # working directory through an absolute path.
    monkeypatch.chdir(tmp_path)
    interpreted = CommandVerifier(argv=["python3", "check.py"])
    assert interpreted.argv == [sys.executable, str(script)]  # troop's own interpreter
    before = interpreted.version
    script.write_text(script.read_text() + "\n# edited again\n")
    assert CommandVerifier(argv=["python3", "check.py"]).version != before


def test_command_verifier_refuses_a_missing_program() -> None:
    with pytest.raises(TroopError, match="not found"):
        CommandVerifier(argv=["no-such-program-troop"])
    with pytest.raises(TroopError, match="needs a program"):
        CommandVerifier()


# --- the verifiers' shape and their outcome mapping ---------------------------------------


def test_verifiers_follow_the_protocol(tmp_path: Path) -> None:
    script = write_script(tmp_path / "check.py", CHECKER)
    built: list[Any] = [
        MathAnswer(),
        ExactAnswer(),
        RegexAnswer(),
        CommandVerifier(argv=[str(script)]),
    ]
    assert [v.name for v in built] == ["math-answer", "exact", "regex", "command"]
    for verifier in built:
        assert isinstance(verifier, Verifier)
    for fmt in ("gsm8k", "math", "arithmetic"):
        assert MathAnswer().applies_to(fmt) and ExactAnswer().applies_to(fmt)
    assert not MathAnswer().applies_to("humaneval") and not ExactAnswer().applies_to("mbpp")
    assert RegexAnswer().applies_to("humaneval") and built[3].applies_to("mbpp")


def test_regex_pattern_in_the_version_and_refused_when_bad() -> None:
    assert RegexAnswer().version == "1"
    assert RegexAnswer(pattern="a+").version != RegexAnswer(pattern="b+").version
    with pytest.raises(TroopError, match="bad regex"):
        RegexAnswer(pattern="(")


@dataclass(frozen=True)
class FakeResult:
    """The fields of the sandbox's JobResult that verdicts are built from."""

    outcome: str
    value: Any = None
    error: str = ""
    output: str = ""
    truncated: bool = False
    duration_s: float = 0.25
    tier: str = "rlimits"


@pytest.mark.parametrize(
    ("result", "status", "detail"),
    [
        (FakeResult("returned", {"status": "pass", "detail": "", "answer": "4"}), Status.PASS, ""),
        (
            FakeResult("returned", {"status": "fail", "detail": "answered '3'"}),
            Status.FAIL,
            "answered '3'",
        ),
        (
            FakeResult("returned", {"status": "invalid", "detail": "no final answer"}),
            Status.INVALID,
            "no final answer",
        ),
        (FakeResult("returned", {"status": "timeout", "detail": "slow"}), Status.TIMEOUT, "slow"),
        (FakeResult("returned", {"status": "what"}), Status.CRASH, "the judge returned no status"),
        (FakeResult("returned", None), Status.CRASH, "the judge returned no status"),
        (FakeResult("timeout"), Status.TIMEOUT, "sandbox outcome: timeout"),
        (FakeResult("resource", error="MemoryError"), Status.RESOURCE, "MemoryError"),
        (FakeResult("crash", error="killed by SIGSEGV"), Status.CRASH, "killed by SIGSEGV"),
        (
            FakeResult(
                "error", error="Traceback (most recent call last):\n  File x\nKeyError: 'text'\n"
            ),
            Status.CRASH,
            "KeyError: 'text'",
        ),
        (FakeResult("infra_error", error="worker died"), Status.INFRA_ERROR, "worker died"),
    ],
)
def test_verdict_from_job(result: FakeResult, status: Status, detail: str) -> None:
    verdict = verdict_from_job(result, "math-answer", "1")
    assert verdict.status is status and verdict.detail == detail
    assert verdict.verifier == "math-answer" and verdict.version == "1"
    assert verdict.duration_s == 0.25 and verdict.tier == "rlimits"
    json.dumps(verdict.extra)


def test_verdict_keeps_the_answer_in_extra() -> None:
    result = FakeResult("returned", {"status": "pass", "detail": "", "answer": "\\frac{1}{2}"})
    verdict = verdict_from_job(result, "math-answer", "1")
    assert verdict.extra == {"answer": "\\frac{1}{2}"}


class InProcessSandbox:
    """Runs a job's entry in this process: the verifiers' wiring without the isolation."""

    def __init__(self) -> None:
        self.jobs: list[Any] = []

    def run(self, job: Any) -> FakeResult:
        self.jobs.append(job)
        module, function = job.entry.split(":")
        value = getattr(importlib.import_module(module), function)(job.payload)
        return FakeResult("returned", value)


def sandbox_module_available() -> bool:
    try:
        importlib.import_module("troop.verifiers.sandbox")
    except ImportError:
        return False
    return True


needs_sandbox_module = pytest.mark.skipif(
    not sandbox_module_available(),
    reason="troop.verifiers.sandbox cannot be imported (the sandbox module is not there yet)",
)


@needs_sandbox_module
def test_verify_builds_short_jobs_and_verdicts() -> None:
    sandbox = InProcessSandbox()
    verdict = MathAnswer().verify(Check("\\boxed{\\frac{1}{2}}", math_problem("0.5")), sandbox)
    assert verdict.status is Status.PASS and verdict.verifier == "math-answer"
    assert verdict.extra == {
        "answer": "\\frac{1}{2}",
        "expected": "0.5",
        "key": "0.5",
        "expected_key": "0.5",
    }
    job = sandbox.jobs[-1]
    assert job.entry == "troop.verifiers.answer_verifiers:judge_math"
    assert job.limits.wall_s <= 5 and job.limits.cpu_s <= 6
    assert (
        ExactAnswer().verify(Check("\\boxed{0.5}", math_problem("\\frac12")), sandbox).status
        is Status.FAIL
    )
    regex = RegexAnswer(pattern=r"\d+")
    assert regex.verify(Check("abc 12", math_problem("x")), sandbox).status is Status.PASS
    with_pattern = {**math_problem("x"), "pattern": "^yes"}
    assert RegexAnswer().verify(Check("yes!", with_pattern), sandbox).status is Status.PASS
    no_pattern = RegexAnswer().verify(Check("yes!", math_problem("x")), sandbox)
    assert no_pattern.status is Status.INVALID and "no pattern" in no_pattern.detail


@needs_sandbox_module
def test_verify_without_an_expected_answer_is_invalid() -> None:
    problem = {**math_problem("1"), "answer": None}
    for verifier in (MathAnswer(), ExactAnswer()):
        verdict = verifier.verify(Check("\\boxed{1}", problem), InProcessSandbox())
        assert verdict.status is Status.INVALID


# --- through the real sandbox -------------------------------------------------------------


@pytest.fixture(scope="module", params=["auto", "rlimits"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One real sandbox worker for this module's end-to-end checks, on the best tier this
    machine has (bwrap where it works) and on the rlimits tier: what a job sees differs."""
    if not sandbox_module_available():
        pytest.skip(
            "troop.verifiers.sandbox cannot be imported (the sandbox module is not there yet)"
        )
    from troop.verifiers.sandbox import Sandbox

    box = Sandbox(workers=1, tier=request.param)
    with box:
        yield box


@pytest.mark.parametrize(
    ("text", "answer", "fmt", "status"),
    [
        ("So the answer is $\\boxed{\\dfrac{1}{2}}$.", "0.5", "math", Status.PASS),
        ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", "math", Status.PASS),
        ("The answer is 17.", "18", "gsm8k", Status.FAIL),
        ("I am not sure.", "18", "gsm8k", Status.INVALID),
    ],
)
def test_math_answer_in_the_sandbox(
    sandbox: Any, text: str, answer: str, fmt: str, status: Status
) -> None:
    verdict = MathAnswer().verify(Check(text, math_problem(answer, fmt)), sandbox)
    assert verdict.status is status, verdict
    assert verdict.tier in {"bwrap", "rlimits"}


def test_power_tower_answer_comes_back_within_the_limit(sandbox: Any) -> None:
    start = time.monotonic()
    verdict = MathAnswer().verify(
        Check("The answer is $\\boxed{2003^{2002^{2001}}}$.", math_problem("1")), sandbox
    )
    assert verdict.status in {Status.FAIL, Status.TIMEOUT}, verdict
    assert time.monotonic() - start < 15


def test_catastrophic_regex_times_out_in_the_sandbox(sandbox: Any) -> None:
    verifier = RegexAnswer(pattern=r"^(a+)+$", wall_s=1.0)
    start = time.monotonic()
    verdict = verifier.verify(Check("a" * 40 + "!", math_problem("x")), sandbox)
    assert verdict.status is Status.TIMEOUT, verdict
    assert time.monotonic() - start < 10


def test_command_verifier_in_the_sandbox(sandbox: Any, tmp_path: Path) -> None:
    script = write_script(tmp_path / "check.py", CHECKER)
    verifier = CommandVerifier(argv=[str(script)], wall_s=3.0)
    passed = verifier.verify(Check("The answer is 42", math_problem("42")), sandbox)
    assert passed.status is Status.PASS and passed.detail == "found 42", passed
    assert passed.version == verifier.version
    failed = verifier.verify(Check("The answer is 41", math_problem("42")), sandbox)
    assert failed.status is Status.FAIL and failed.detail == "missing 42", failed
    assert "to stderr" in failed.output
    crashed = verifier.verify(Check("boom", math_problem("42")), sandbox)
    assert crashed.status is Status.CRASH, crashed
    start = time.monotonic()
    slow = verifier.verify(Check("sleep", math_problem("42")), sandbox)
    assert slow.status is Status.TIMEOUT and time.monotonic() - start < 15, slow


def test_command_verifier_runs_a_script_given_to_python(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tmp_path is hidden inside a bwrap sandbox: the script named on the command line travels
    # with the job, as read when the verifier was built.
    script = write_script(tmp_path / "check.py", CHECKER)
    monkeypatch.chdir(tmp_path)
    verifier = CommandVerifier(argv=["python", "check.py"])
    script.unlink()
    verdict = verifier.verify(Check("42 it is", math_problem("42")), sandbox)
    assert verdict.status is Status.PASS and verdict.detail == "found 42", verdict


def test_command_verifier_treats_the_sample_as_data(sandbox: Any, tmp_path: Path) -> None:
    # The sample is data: a sample that looks like code is never run by the verifier itself.
    marker = tmp_path / "ran"
    script = write_script(
        tmp_path / "check.py",
        """
        import sys
        text = open(sys.argv[-2]).read()
        sys.exit(0 if "import os" in text else 1)
    """,
    )
    text = f"```python\nimport os\nopen({str(marker)!r}, 'w').write('x')\n```"
    verdict = CommandVerifier(argv=[str(script)]).verify(Check(text, math_problem("1")), sandbox)
    assert verdict.status is Status.PASS, verdict
    assert not os.path.exists(marker)
