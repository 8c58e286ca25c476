"""Verifiers that judge a sample's final answer (math-answer, exact, regex) in the sandbox."""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from troop.verifiers.answers import final_answer, normalize, number_answer
from troop.verifiers.base import SAMPLE_STYLES, Check, Status, Verdict

if TYPE_CHECKING:
    from troop.verifiers.sandbox import JobResult, Limits

#: Formats whose problems carry an expected final answer.
ANSWER_FORMATS = frozenset(fmt for fmt, style in SAMPLE_STYLES.items() if style != "code")
#: What a sandbox worker loads before forking jobs, so an answer judgement pays neither the
#: import of math-verify and SymPy (about a second) nor their first parse (0.1-0.2 s).
SANDBOX_PRELOAD = ("troop.verifiers.answer_verifiers:warm_up",)

# math-verify's own alarms, inside the sandbox's wall limit: a parse or a comparison that runs
# past them (a power tower like 2003^{2002^{2001}} compared with a number) is a quick fail
# rather than a sandbox timeout. Whole seconds: math-verify sets them with signal.alarm.
_PARSE_S = 1  # seconds per parse of the sample or the expected answer
_COMPARE_S = 1  # seconds per comparison of one parsed pair
_KEY_S = 1  # seconds for the canonical form selection groups a wrong answer by
_KEY_DECIMALS = 6  # a non-integer number's key: rounded as math-verify rounds floats to compare

# Judging an answer is quick: these bound a hostile one (a power tower, a backtracking pattern),
# with room for math-verify's own alarms (above) and for importing it in an unloaded worker.
_SHORT_WALL_S = 5.0  # wall seconds per answer judgement
_SHOWN_CHARS = 200  # longest answer quoted in a verdict's output and detail

# JobResult outcomes that end in a fixed status, whatever the job returned.
_OUTCOME_STATUS = {
    "timeout": Status.TIMEOUT,
    "resource": Status.RESOURCE,
    "crash": Status.CRASH,
    "error": Status.CRASH,  # a bug in trusted judging code, not the sample's doing
    "infra_error": Status.INFRA_ERROR,
}


def _shown(value: str | None) -> str:
    if value is None:
        return "none"
    text = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "…"
    return repr(text)


# --- judging, run inside the sandboxed child --------------------------------------------------


def judge_math(payload: dict[str, Any]) -> dict[str, Any]:
    """Sandbox entry of math-answer: payload {text, format, expected}.

    math-verify parses the expected answer (as `$...$` LaTeX) and the sample, and
    `verify(gold, answer)` decides. MATH samples are parsed whole, so math-verify finds the
    answer as it does for lighteval; GSM8K and arithmetic samples give the number troop's
    `number_answer` reads (after "####", "The answer is", else the last number). `key` and
    `expected_key` are the answers' canonical forms, by which selection groups wrong answers.
    """
    from math_verify import parse, verify

    fmt, expected = payload["format"], str(payload["expected"])
    if SAMPLE_STYLES.get(fmt) == "boxed":
        parsed = parse(payload["text"], parsing_timeout=_PARSE_S)
    else:
        number = number_answer(payload["text"])
        parsed = parse(as_latex(number), parsing_timeout=_PARSE_S) if number else []
    strings = [p for p in parsed if isinstance(p, str)]
    if not parsed:
        return {"status": "invalid", "passed": False, "answer": None, "detail": "no final answer"}
    answer = strings[-1] if strings else str(parsed[0])
    gold = parse(as_latex(expected), parsing_timeout=_PARSE_S)
    passed = bool(gold) and verify(gold, parsed, timeout_seconds=_COMPARE_S)
    gold_key = answer_key(gold) if gold else expected.strip()
    detail = (
        ""
        if passed
        else f"answered {_shown(answer)}, expected {_shown(expected)}"
        + ("" if gold else " (which math-verify cannot read)")
    )
    return {
        "status": "pass" if passed else "fail",
        "passed": passed,
        "answer": answer,
        "detail": detail,
        "output": f"answer: {_shown(answer)}\nexpected: {_shown(expected)}",
        # A passing answer is the expected one as far as the verifier can tell.
        "extra": {"key": gold_key if passed else answer_key(parsed), "expected_key": gold_key},
    }


def warm_up() -> None:
    """Judge one answer of each common shape, so that math-verify's grammar tables, compiled
    patterns and caches exist before a sandbox worker forks its jobs."""
    for text, expected in (
        ("$\\boxed{\\dfrac{1}{2}}$", "0.5"),
        ("$\\boxed{(1,2]}$", "(1,2]"),
        ("$\\boxed{\\{1,2\\}}$", "\\{2,1\\}"),
        ("$\\boxed{x=3}$", "3"),
        ("$\\boxed{10\\%}$", "10"),
        ("$\\boxed{2\\sqrt{2}}$", "\\sqrt{8}"),
        ("$\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}$", "(1,2)"),
    ):
        judge_math({"text": text, "format": "math", "expected": expected})
    judge_math({"text": "#### 1,500", "format": "gsm8k", "expected": "1500"})


def as_latex(answer: str) -> str:
    """An answer as math-verify reads a gold answer: in `$...$`, since bare LaTeX such as
    `(1,2]` or `\\{1,2\\}` is not found outside math delimiters; unchanged when it has some."""
    text = answer.strip()
    if "$" in text.replace("\\$", "") or "\\boxed" in text or text.startswith("\\["):
        return text
    return f"${text}$"


def answer_key(parsed: list[Any]) -> str:
    """A canonical string for a math-verify parse, equal for answers it calls equal in the
    common cases: an integer's digits, another real number rounded to six decimals, else
    SymPy's printed form; the extracted text when the parse has no SymPy value or printing it
    runs past `_KEY_S` seconds (a power tower)."""
    from math_verify.errors import TimeoutException
    from math_verify.utils import timeout

    strings = [p for p in parsed if isinstance(p, str)]
    fallback = strings[-1].strip() if strings else ""
    values = [p for p in parsed if not isinstance(p, str)]
    if not values:
        return fallback
    try:
        key: str = timeout(timeout_seconds=_KEY_S)(_canonical)(values[0])
    except (Exception, TimeoutException):
        return fallback
    return key


def _canonical(value: Any) -> str:
    import sympy

    if isinstance(value, sympy.Basic) and value.is_number:
        if value.is_Integer:
            return str(value)
        number = complex(value.evalf(15))
        if number.imag == 0:
            rounded = round(number.real, _KEY_DECIMALS)
            return str(int(rounded)) if rounded == int(rounded) else repr(rounded)
    return str(value)


def judge_exact(payload: dict[str, Any]) -> dict[str, Any]:
    """Sandbox entry of exact: payload {text, format, expected, match}; `match` "text" compares
    the whole stripped sample, anything else its final answer, both normalised."""
    text, expected = payload["text"], str(payload["expected"])
    answer = (
        text.strip() if payload.get("match") == "text" else final_answer(text, payload["format"])
    )
    if not answer:
        return {"status": "invalid", "passed": False, "answer": None, "detail": "no final answer"}
    passed = normalize(answer) == normalize(expected)
    detail = "" if passed else f"answered {_shown(answer)}, expected {_shown(expected)}"
    return {
        "status": "pass" if passed else "fail",
        "passed": passed,
        "answer": answer,
        "detail": detail,
        "output": f"answer: {_shown(answer)}\nexpected: {_shown(expected)}",
    }


def judge_regex(payload: dict[str, Any]) -> dict[str, Any]:
    """Sandbox entry of regex: payload {text, pattern}; passes when `re.search` finds the
    pattern. Runs sandboxed because a pattern can backtrack for ever on a crafted text."""
    try:
        compiled = re.compile(payload["pattern"])
    except re.error as exc:
        return {
            "status": "crash",
            "passed": False,
            "answer": None,
            "detail": f"bad pattern {_shown(payload['pattern'])}: {exc}",
        }
    found = compiled.search(payload["text"])
    if found is None:
        return {
            "status": "fail",
            "passed": False,
            "answer": None,
            "detail": f"no match for {_shown(payload['pattern'])}",
        }
    return {"status": "pass", "passed": True, "answer": found.group(0), "detail": ""}


# --- mapping a sandbox job to a verdict, run in the parent ------------------------------------


class FinishedJob(Protocol):
    """What a verdict is built from: the fields of the sandbox's JobResult, read-only."""

    @property
    def outcome(self) -> str: ...  # "returned", "error", "timeout", "resource", "crash", ...
    @property
    def value(self) -> Any: ...  # what the judge returned
    @property
    def error(self) -> str: ...  # traceback or reason when it did not return
    @property
    def output(self) -> str: ...  # the judge process's own captured output
    @property
    def truncated(self) -> bool: ...  # whether `output` was cut
    @property
    def duration_s(self) -> float: ...  # wall seconds, sandbox start-up included
    @property
    def tier(self) -> str: ...  # "bwrap" or "rlimits"


def verdict_from_job(result: FinishedJob, verifier: str, version: str) -> Verdict:
    """The Verdict for a finished judging job whose value (when it returned) is a dict with
    `status` ("pass", "fail", "invalid" or "crash"), `detail`, and optionally `answer`,
    `output`, `truncated` and `extra`."""
    common: dict[str, Any] = {
        "verifier": verifier,
        "version": version,
        "duration_s": result.duration_s,
        "tier": result.tier,
    }
    if result.outcome != "returned":
        status = _OUTCOME_STATUS.get(result.outcome, Status.INFRA_ERROR)
        error_lines = [ln for ln in (result.error or "").splitlines() if ln.strip()]
        detail = error_lines[-1].strip() if error_lines else f"sandbox outcome: {result.outcome}"
        output = "\n".join(part for part in (result.error, result.output) if part)
        return Verdict(
            status=status,
            output=output,
            truncated=result.truncated,
            detail=detail[:_SHOWN_CHARS],
            **common,
        )
    value = result.value if isinstance(result.value, dict) else {}
    try:
        status = Status(value.get("status", ""))
    except ValueError:
        return Verdict(
            status=Status.CRASH,
            output=repr(result.value)[:2000],
            detail="the judge returned no status",
            **common,
        )
    extra = dict(value.get("extra") or {})
    if "answer" in value:
        extra["answer"] = value["answer"]
    detail = str(value.get("detail", ""))
    output = str(value.get("output") if "output" in value else detail)
    return Verdict(
        status=status,
        output=output,
        truncated=bool(value.get("truncated", False)),
        detail=detail.splitlines()[0][:_SHOWN_CHARS] if detail else "",
        extra=extra,
        **common,
    )


def _run(sandbox: Any, entry: str, payload: dict[str, Any], limits: Limits) -> JobResult:
    from troop.verifiers.sandbox import Job

    result: JobResult = sandbox.run(Job(entry=entry, payload=payload, limits=limits))
    return result


def _invalid(verifier: str, version: str, detail: str) -> Verdict:
    return Verdict(Status.INVALID, verifier, version, 0.0, detail, detail=detail)


# --- the verifiers ----------------------------------------------------------------------------


class _FinalAnswer:
    """Shared by the verifiers that compare a sample's final answer with the problem's: the
    judging itself is the sandbox entry `entry`."""

    name: str
    version = "1"
    entry: str  # "module:function" run in the sandbox

    def __init__(self, *, wall_s: float = _SHORT_WALL_S) -> None:
        self.wall_s = wall_s  # wall seconds one judgement may take in the sandbox

    def applies_to(self, problem_format: str) -> bool:
        return problem_format in ANSWER_FORMATS

    def _payload(self, check: Check, expected: str) -> dict[str, Any]:
        return {
            "text": check.text,
            "format": check.problem.get("format", "math"),
            "expected": expected,
        }

    def verify(self, check: Check, sandbox: Any) -> Verdict:
        expected = check.problem.get("answer")
        if expected is None:
            return _invalid(self.name, self.version, "the problem has no answer to compare with")
        payload = self._payload(check, str(expected))
        result = _run(sandbox, self.entry, payload, _limits(self.wall_s))
        return _with_expected(verdict_from_job(result, self.name, self.version), str(expected))


class MathAnswer(_FinalAnswer):
    """Judges GSM8K, MATH and arithmetic samples by their final answer with Hugging Face's
    math-verify, the checker behind lighteval and open-r1: MATH samples as math-verify reads
    them, GSM8K and arithmetic samples by the number after "####"/"The answer is" (else the
    last number). The version names math-verify's, so upgrading it expires old verdicts."""

    name = "math-answer"
    entry = "troop.verifiers.answer_verifiers:judge_math"

    def __init__(self, *, wall_s: float = _SHORT_WALL_S) -> None:
        super().__init__(wall_s=wall_s)
        # 1: troop's own LaTeX parser; 2: math-verify.
        self.version = f"2+math-verify-{_math_verify_version()}"


def _math_verify_version() -> str:
    try:
        return importlib.metadata.version("math-verify")
    except importlib.metadata.PackageNotFoundError:
        from troop.errors import TroopError

        raise TroopError(
            "math-answer needs the math-verify package", hint="pip install math-verify"
        ) from None


class ExactAnswer(_FinalAnswer):
    """Judges by normalised exact string match: the final answer (as math-answer extracts it)
    against the problem's answer, or the whole stripped sample when the problem has
    `"match": "text"`. No numeric or symbolic equivalence: "0.5" does not match "1/2"."""

    name = "exact"
    entry = "troop.verifiers.answer_verifiers:judge_exact"

    def _payload(self, check: Check, expected: str) -> dict[str, Any]:
        return {**super()._payload(check, expected), "match": check.problem.get("match")}


class RegexAnswer:
    """Passes a sample when `re.search(pattern, text)` finds the pattern.

    The pattern is the verifier's own (`RegexAnswer(pattern=...)`, which then judges problems
    of any format) or, without one, the problem's `pattern` field; a problem with neither is
    INVALID. `applies_to` cannot see problems, so it accepts every format: a problem set
    without patterns gives INVALID verdicts, not a refusal. The search runs in the sandbox,
    since a pattern can backtrack catastrophically (TIMEOUT).
    """

    name = "regex"

    def __init__(self, *, pattern: str | None = None, wall_s: float = _SHORT_WALL_S) -> None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                from troop.errors import TroopError

                raise TroopError(f"bad regex pattern {pattern!r}: {exc}") from None
        self.pattern = pattern  # the verifier's pattern; None: each problem's `pattern` field
        self.wall_s = wall_s  # wall seconds one search may take in the sandbox
        # A built-in pattern is part of what judges: changing it expires old verdicts. A
        # problem's pattern is pinned by the session's tests digest instead.
        suffix = hashlib.sha256(pattern.encode()).hexdigest()[:12] if pattern is not None else ""
        self.version = "1" + (f"+{suffix}" if suffix else "")

    def applies_to(self, problem_format: str) -> bool:
        return True

    def verify(self, check: Check, sandbox: Any) -> Verdict:
        pattern = self.pattern if self.pattern is not None else check.problem.get("pattern")
        if not isinstance(pattern, str):
            return _invalid(
                self.name,
                self.version,
                "no pattern: the problem has no 'pattern' field and the verifier "
                "was built without one",
            )
        payload = {"text": check.text, "pattern": pattern}
        limits = _limits(self.wall_s)
        result = _run(sandbox, "troop.verifiers.answer_verifiers:judge_regex", payload, limits)
        return verdict_from_job(result, self.name, self.version)


def _limits(wall_s: float) -> Limits:
    from troop.verifiers.sandbox import Limits

    # The CPU limit a second above the wall limit: a busy judgement then ends by the wall
    # clock, which the sandbox always reports as a timeout; the CPU limit stays a backstop.
    return Limits(wall_s=wall_s, cpu_s=wall_s + 1.0)


def _with_expected(verdict: Verdict, expected: str) -> Verdict:
    """The verdict with the expected answer recorded next to the sample's in `extra`."""
    return replace(verdict, extra={**verdict.extra, "expected": expected})
