"""math-answer on math-verify: a corpus of answer pairs on which troop's verdict equals
math-verify's own `verify(parse(gold), parse(answer))`, GSM8K's deliberate difference, hostile
answers, and the same judgements through the real sandbox."""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Iterator
from typing import Any

import pytest
from math_verify import parse, verify

from troop.verifiers.answer_verifiers import SANDBOX_PRELOAD, MathAnswer, judge_math
from troop.verifiers.base import Check, Status

# (expected answer, the answer a sample boxes, whether math-verify calls them equal)
CORPUS: list[tuple[str, str, bool]] = [
    # fractions and decimals
    ("\\frac{1}{2}", "0.5", True),
    ("0.5", "\\frac{1}{2}", True),
    ("\\frac{1}{2}", "\\dfrac{1}{2}", True),
    ("\\frac{3}{4}", "\\tfrac34", True),
    ("\\frac{1}{2}", "\\dfrac12", True),
    ("\\frac{1}{3}", "0.33", False),
    ("\\sqrt{2}", "1.414", False),
    # mixed numbers
    ("2\\frac{1}{2}", "\\frac{5}{2}", True),
    ("2\\frac{1}{2}", "2.5", True),
    ("3\\frac{1}{4}", "3.25", True),
    # intervals
    ("(1,2]", "(1,2]", True),
    ("(1,2]", "(1,2)", False),
    ("[0,\\infty)", "[0, \\infty)", True),
    ("(-\\infty, 3)", "(-\\infty,3)", True),
    # sets, tuples and lists of solutions
    ("\\{1,2,3\\}", "\\{3,1,2\\}", True),
    ("\\{1,2\\}", "\\{1,3\\}", False),
    ("(1,2)", "(2,1)", False),
    ("(3, -1)", "(3,-1)", True),
    ("1, 3", "3, 1", True),
    ("-1, 3", "3, -1", True),
    # equations and assignments
    ("3", "x=3", True),
    ("x=3", "3", True),
    ("y=2x+1", "y=1+2x", True),
    ("x=3", "x=4", False),
    # percentages
    ("10\\%", "10", True),
    ("10\\%", "10\\%", True),
    ("25\\%", "0.25", True),
    # degrees
    ("30^\\circ", "30", True),
    ("30", "30^{\\circ}", True),
    ("45^\\circ", "\\frac{\\pi}{4}", False),
    # units and text
    ("5\\text{ cm}", "5", True),
    ("12", "12\\text{ inches}", True),
    ("\\text{(C)}", "C", True),
    ("\\$18.90", "18.90", True),
    # thousands separators
    ("1,000", "1000", True),
    ("1000", "1,000", True),
    ("1,234,567", "1234567", True),
    ("12,345", "12345.0", True),
    # negative zero
    ("0", "-0", True),
    ("-0", "0", True),
    ("0", "0.0", True),
    # matrices
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", True),
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", True),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}2\\\\1\\end{pmatrix}", False),
    # symbolic forms
    ("\\sqrt{8}", "2\\sqrt{2}", True),
    ("(x+1)^2", "x^2+2x+1", True),
    ("\\frac{\\pi}{2}", "\\pi/2", True),
    # plain GSM8K-style integers
    ("72", "72", True),
    ("72", "73", False),
    ("18", "18.00", True),
    ("-5", "-5", True),
    ("5", "-5", False),
]

# (expected answer, GSM8K sample, troop's verdict). troop reads the number after "####" or
# "The answer is" (else the last number); math-verify alone reads the text's last number.
GSM8K: list[tuple[str, str, bool]] = [
    ("72", "Natalia sold 48/2 = 24 clips in May.\nIn all 48+24 = 72 clips.\n#### 72", True),
    ("1500", "The answer is 1,500 dollars.", True),
    ("1250", "So she pays $1,250.\n#### 1,250", True),
    ("17", "So he has 18 apples left.\nThe answer is 18.", False),
    # A base model prompted few-shot writes on past its answer: "####" marks the answer.
    ("36", "He has 3 boxes of 12 eggs, 36 eggs.\n#### 36\nQuestion: how many in 5 boxes?", True),
    ("72", "#### 72\nThat is 72 clips, out of 100.", True),
]


def sample(answer: str) -> str:
    return f"Adding the cases up, the final answer is $\\boxed{{{answer}}}$."


def direct(gold: str, text: str) -> bool:
    """math-verify called directly, as lighteval does: the gold answer in `$...$`."""
    return bool(verify(parse(f"${gold}$"), parse(text)))


@pytest.mark.parametrize(("gold", "answer", "equal"), CORPUS)
def test_troop_agrees_with_math_verify(gold: str, answer: str, equal: bool) -> None:
    text = sample(answer)
    result = judge_math({"text": text, "format": "math", "expected": gold})
    assert result["passed"] is direct(gold, text) is equal
    assert result["status"] == ("pass" if equal else "fail")


@pytest.mark.parametrize(("gold", "text", "passed"), GSM8K)
def test_gsm8k_reads_the_marked_number_then_asks_math_verify(
    gold: str, text: str, passed: bool
) -> None:
    result = judge_math({"text": text, "format": "gsm8k", "expected": gold})
    assert result["passed"] is passed
    # Once the number is read, equality is math-verify's.
    assert passed is direct(gold, f"${result['answer']}$")


def test_gsm8k_differs_from_math_verify_reading_the_whole_text() -> None:
    differing = [text for gold, text, passed in GSM8K if passed != direct(gold, text)]
    assert differing == [GSM8K[4][1], GSM8K[5][1]]  # the samples that write on past "####"


def test_a_sample_without_an_answer_is_invalid() -> None:
    for fmt in ("math", "gsm8k"):
        result = judge_math({"text": "I am not sure.", "format": fmt, "expected": "4"})
        assert result["status"] == "invalid"


def test_judgements_carry_the_keys_selection_groups_by() -> None:
    passed = judge_math({"text": sample("\\dfrac12"), "format": "math", "expected": "0.5"})
    failed = judge_math({"text": sample("0.25"), "format": "math", "expected": "0.5"})
    other = judge_math({"text": sample("\\frac{1}{4}"), "format": "math", "expected": "0.5"})
    assert passed["extra"]["key"] == passed["extra"]["expected_key"]
    assert failed["extra"]["key"] == other["extra"]["key"] != failed["extra"]["expected_key"]


@pytest.mark.parametrize(
    "answer",
    [
        "2003^{2002^{2001}}",
        "10^{10^{10}}",
        "9^{9^{9^{9}}}",
        "100000!",
        "(x+1)^{99999}",
        "9" * 5000,
        "(" * 500 + "1" + ")" * 500,
        "2^" * 200 + "2",
        "\\frac{",
        "}{",
        "\\sqrt[",
    ],
)
def test_hostile_answers_are_quick_fails(answer: str) -> None:
    start = time.monotonic()
    for text, gold in ((sample(answer), "1"), (sample("1"), answer)):
        result = judge_math({"text": text, "format": "math", "expected": gold})
        assert result["status"] in ("fail", "invalid"), result
    assert time.monotonic() - start < 8.0  # two judgements, each within 2 s of alarms


def test_the_version_names_math_verify() -> None:
    version = MathAnswer().version
    assert version.startswith("2+") and importlib.metadata.version("math-verify") in version


# --- through the real sandbox ---------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    from troop.verifiers.sandbox import Sandbox

    with Sandbox(workers=1, preload=SANDBOX_PRELOAD) as box:
        yield box


def test_sandboxed_verdicts_agree_with_math_verify(sandbox: Any) -> None:
    verifier = MathAnswer()
    for gold, answer, equal in CORPUS[::4]:
        problem = {"id": "p/1", "format": "math", "answer": gold}
        verdict = verifier.verify(Check(sample(answer), problem), sandbox)
        assert verdict.passed is direct(gold, sample(answer)) is equal, (gold, answer, verdict)
        assert verdict.extra["expected"] == gold and "key" in verdict.extra


def test_power_tower_is_a_quick_fail_in_the_sandbox(sandbox: Any) -> None:
    start = time.monotonic()
    verdict = MathAnswer().verify(
        Check(sample("2003^{2002^{2001}}"), {"id": "p/1", "format": "math", "answer": "1"}), sandbox
    )
    assert verdict.status is Status.FAIL, verdict
    assert time.monotonic() - start < 4.0


def test_the_workers_warm_up_before_forking(sandbox: Any) -> None:
    from troop.errors import TroopError
    from troop.verifiers.sandbox import Job, Sandbox

    # A job forked from the warmed worker finds what math-verify builds on first use.
    result = sandbox.run(Job(entry="tests.test_math_verify:job_patterns_built", payload={}))
    assert result.value is True, result
    with pytest.raises(TroopError, match="no_such_warm_up"):
        Sandbox(1, preload=["troop.verifiers.answer_verifiers:no_such_warm_up"])


def job_patterns_built(payload: dict[str, Any]) -> bool:
    """Sandbox entry: whether math-verify's extraction patterns were built before the fork."""
    from math_verify import parser

    return bool(parser.lazy_latex_regex.cache_info().currsize)
