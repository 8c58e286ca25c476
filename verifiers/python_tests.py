"""The python-tests verifier: runs a HumanEval or MBPP problem's tests against a sample's code."""

# The tests run inside a sandbox job whose entry is troop.verifiers.python_checker; this side
# extracts the sample's code, hands it over and reads the job's result as a verdict. Importing
# ENTRY from the checker is what loads it (and the modules its tests use) into a sandbox worker
# that preloads this module, so every forked check finds them in memory.

from __future__ import annotations

import time
from typing import Any

from troop.verifiers.base import SAMPLE_STYLES, Check, Status, Verdict
from troop.verifiers.extract import extract_code
from troop.verifiers.python_checker import ENTRY
from troop.verifiers.sandbox import Job, JobResult, Limits

_DETAIL_CHARS = 200  # longest `detail` line, characters


class PythonTests:
    """Judges HumanEval and MBPP samples by running the problem's tests in the sandbox."""

    name = "python-tests"
    version = "1"

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()  # per sample: wall/CPU time, memory, output

    def applies_to(self, problem_format: str) -> bool:
        return SAMPLE_STYLES.get(problem_format) == "code"

    def verify(self, check: Check, sandbox: Any) -> Verdict:
        start = time.monotonic()
        problem = check.problem
        try:
            code = extract_code(check.text, problem.get("prompt") or "", problem.get("entry_point"))
        except Exception as exc:  # a bug in extraction must not take the run down
            return self._verdict(Status.INFRA_ERROR, start, f"extraction failed: {exc!r}")
        if code is None:
            return self._verdict(Status.INVALID, start, "no code block")
        test_list = list(problem.get("test_list") or ())
        payload = {
            "code": code,
            "format": problem.get("format", ""),
            "prompt": problem.get("prompt") or "",
            "entry_point": problem.get("entry_point"),
            "test": problem.get("test") or "",
            "test_list": test_list,
            "cpu_s": self.limits.cpu_s,
            "wall_s": self.limits.wall_s,
        }
        result = sandbox.run(Job(ENTRY, payload, self.limits))
        return self._from_result(result, start)

    def _from_result(self, result: JobResult, start: float) -> Verdict:
        extra: dict[str, Any] = {"outcome": result.outcome}
        if result.outcome == "returned" and isinstance(result.value, dict):
            for key in ("tests_passed", "tests_run"):
                if type(result.value.get(key)) is int:
                    extra[key] = result.value[key]
            try:
                status = Status(str(result.value.get("status")))
                detail = str(result.value.get("detail", ""))
            except ValueError:
                status, detail = Status.INFRA_ERROR, f"the checker said {result.value!r}"
        else:
            status = {
                "timeout": Status.TIMEOUT,
                "resource": Status.RESOURCE,
                "crash": Status.CRASH,
            }.get(result.outcome, Status.INFRA_ERROR)
            detail = _last_line(result.error) or result.outcome
        return Verdict(
            status=status,
            verifier=self.name,
            version=self.version,
            duration_s=time.monotonic() - start,
            output=result.output,
            truncated=result.truncated,
            detail=_one_line(detail),
            tier=result.tier,
            extra=extra,
        )

    def _verdict(self, status: Status, start: float, detail: str) -> Verdict:
        return Verdict(status, self.name, self.version, time.monotonic() - start, "", False, detail)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _DETAIL_CHARS else line[: _DETAIL_CHARS - 1] + "…"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
