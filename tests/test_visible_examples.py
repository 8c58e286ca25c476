"""The python-examples verifier: which examples it reads from prompts, how HumanEval's canonical
solutions, wrong code and a real false positive fare, and its false-positive rate against the
hidden tests (python-tests)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import troop
from troop.engine.analytics.selection import false_positive_rate
from troop.engine.formats.loading import load_problem_set
from troop.engine.session_setup import problem_record
from troop.verifiers import registry
from troop.verifiers.base import Check, Status, Verdict, Verifier
from troop.verifiers.python_tests import PythonTests
from troop.verifiers.sandbox import Limits, Sandbox
from troop.verifiers.visible_examples import VisibleExamples, find_examples

HUMANEVAL = [problem_record(p) for p in load_problem_set("humaneval").problems]
BY_ID = {p["id"]: p for p in HUMANEVAL}
LIMITS = Limits(wall_s=5.0, cpu_s=3.0)
VISIBLE = VisibleExamples(LIMITS)
HIDDEN = PythonTests(LIMITS)
# Prompts that show no example in a form troop reads (none at all, prose such as
# "if the input is 5 the result is 3", or a call under another name than the entry point).
NO_EXAMPLES = {38, 41, 50, 67, 80, 81, 83, 105, 112, 115, 149, 160}
# HumanEval docstrings whose examples contradict the hidden tests: the canonical solution
# fails them. 47: median([-10, 4, 6, 1000, 10, 20]) is 8.0, the docstring says 15.0; 116: the
# examples sort by value, the tests by number of ones; 130: "tri(1) = 3" describes the
# recurrence, the function returns a list; 148: ("Venus") is a string, not a tuple.
WRONG_DOCSTRINGS = {47, 116, 130, 148}


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox(2, preload=["troop.verifiers.python_tests"]) as sandbox:
        yield sandbox


def fenced(code: str) -> str:
    return f"Here is the function:\n\n```python\n{code}\n```\n"


def verify_all(box: Sandbox, verifier: Verifier, checks: list[Check]) -> list[Verdict]:
    with ThreadPoolExecutor(box.workers) as pool:
        return list(pool.map(lambda c: verifier.verify(c, box), checks))


def number(problem_id: str) -> int:
    return int(problem_id.rsplit("/", 1)[1])


# --- reading examples --------------------------------------------------------------------------

PROMPT = '''from typing import List

def helper(x):
    return x


def f(xs: List[int], k: int = 0) -> int:
    """ Sum of xs plus k.
    >>> f([1, 2])
    3
    >>> f([1,
    ...    2], 1)
    4
    >>> round(f([1]) / 3, 2)
    0.33
    >>> f([]) == 0
    >>> f([5]) 5
    >>> f(helper([2]))
    2
    >>> f(unknown)
    1
    Examples:
    f([2, 2]) ➞ 4
    * f([3]) => 3
    for f([4]) == 4
    f([1, 1]) ==> 2
    f([0]) -> 0
    f([7]) = 7
    f([8]) returns 8
    f([9]) should return 9.
    f([10])   # returns 10
    f([6]) => true
    f([
      1,
      5,
    ]) == 6
    f(xs) = sum of xs
    f([1]) == 1 + 0 = 1
    g([1]) == 1
    For xs = [3, 4] the output should be 7
    Input: xs = [1, 2, 3], k = 4
    Output: 10
    """
'''


def test_reads_doctest_sessions_and_the_common_arrow_forms() -> None:
    found = [(e.call, e.expected, e.literal) for e in find_examples(PROMPT, "f")]
    assert found == [
        ("f([1, 2])", "3", True),
        ("f([1, 2], 1)", "4", True),  # a `...` continuation line
        ("round(f([1]) / 3, 2)", "0.33", True),
        ("f([])", "0", True),  # `>>> f(x) == y` with no output line
        ("f([5])", "5", True),  # `>>> f(x) y`, as HumanEval/116 writes it
        ("f(helper([2]))", "2", True),  # the prompt's own helper
        ("f([2, 2])", "4", True),
        ("f([3])", "3", True),
        ("f([4])", "4", True),
        ("f([1, 1])", "2", True),
        ("f([0])", "0", True),
        ("f([7])", "7", True),
        ("f([8])", "8", True),
        ("f([9])", "9", True),
        ("f([10])", "10", True),
        ("f([6])", "True", True),
        ("f([1, 5])", "6", True),  # a call over several lines
        ("f([3, 4])", "7", True),  # "For xs = ... the output should be ..."
        ("f([1, 2, 3], 4)", "10", True),  # Input: / Output:
    ]
    # Not read: an unknown name (`unknown`, `xs`), prose after the arrow, another function.


def test_a_bare_doctest_call_expects_none_and_text_output_is_compared_as_text() -> None:
    prompt = 'def g(s):\n    """\n    >>> g("")\n    >>> g("a")\n    <A>\n    """\n'
    found = find_examples(prompt, "g")
    assert [(e.call, e.expected, e.literal) for e in found] == [
        ("g('')", "None", True),
        ("g('a')", "<A>", False),
    ]


def test_an_mbpp_prompt_shows_its_first_assert(tmp_path: Path, box: Sandbox) -> None:
    data = tmp_path / "mbpp.jsonl"
    records = [
        {
            "task_id": 1,
            "text": "Write a function to add two numbers.",
            "code": "def add(a, b):\n    return a + b",
            "test_list": [
                "assert add(1, 2) == 3",
                "assert add(2, 2) == 4",
                "assert add(-1, 1) == 0",
            ],
        },
        {
            "task_id": 2,
            "text": "Write a function that keeps the even numbers.",
            "code": "def evens(xs):\n    return [x for x in xs if x % 2 == 0]",
            "test_list": ["assert set(evens([1, 2, 4])) == set([2, 4])", "assert evens([3]) == []"],
        },
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    add, evens = (problem_record(p) for p in load_problem_set(str(data)).problems)
    assert [
        (e.call, e.expected, e.expression) for e in find_examples(add["prompt"], add["entry_point"])
    ] == [("add(1, 2)", "3", False)]
    assert [
        (e.call, e.expected, e.expression)
        for e in find_examples(evens["prompt"], evens["entry_point"])
    ] == [("set(evens([1, 2, 4]))", "set([2, 4])", True)]
    samples = [
        (add, "def add(a, b):\n    return a + b", "pass", "pass"),
        (add, "def add(a, b):\n    return 3", "pass", "fail"),  # only the shown test
        (add, "def add(a, b):\n    return a - b", "fail", "fail"),
        (evens, "def evens(xs):\n    return [x for x in xs if x % 2 == 0]", "pass", "pass"),
        (evens, "def evens(xs):\n    return [x for x in xs if x > 1]", "pass", "fail"),
    ]
    for problem, code, visible, hidden in samples:
        check = Check(fenced(code), problem)
        assert (str(VISIBLE.verify(check, box).status), str(HIDDEN.verify(check, box).status)) == (
            visible,
            hidden,
        ), code


def test_humaneval_problems_with_examples() -> None:
    without = {
        number(p["id"]) for p in HUMANEVAL if not find_examples(p["prompt"], p["entry_point"])
    }
    assert without == NO_EXAMPLES
    assert len(HUMANEVAL) - len(without) == 152
    total = sum(len(find_examples(p["prompt"], p["entry_point"])) for p in HUMANEVAL)
    print(f"\n152 of 164 HumanEval problems show examples troop runs; {total} examples in all")


# --- judging samples -------------------------------------------------------------------------


def test_the_verifier_plugs_in() -> None:
    verifier = registry.load("python-examples")
    assert isinstance(verifier, Verifier) and verifier.name == "python-examples"
    assert verifier.applies_to("humaneval") and verifier.applies_to("mbpp")
    assert not verifier.applies_to("gsm8k")


def test_canonical_solutions_pass_their_examples(box: Sandbox) -> None:
    checks = [Check(fenced(p["prompt"] + p["reference"]), p) for p in HUMANEVAL]
    verdicts = verify_all(box, VISIBLE, checks)
    by_status: dict[str, set[int]] = {}
    for p, v in zip(HUMANEVAL, verdicts, strict=True):
        by_status.setdefault(str(v.status), set()).add(number(p["id"]))
        assert v.verifier == "python-examples"
        assert v.tier == ("" if v.status is Status.INVALID else box.tier)  # no sandbox needed
    assert by_status["invalid"] == NO_EXAMPLES
    assert by_status["fail"] == WRONG_DOCSTRINGS
    assert len(by_status["pass"]) == 164 - len(NO_EXAMPLES) - len(WRONG_DOCSTRINGS)
    invalid = verdicts[38]
    assert "shows no example" in invalid.detail
    median = verdicts[47]
    assert median.detail == (
        "VisibleExampleFailed: example 2: median([-10, 4, 6, 1000, 10, "
        "20]) returned 8.0, expected 15.0"
    )


def test_wrong_code_fails(box: Sandbox) -> None:
    checks = [Check(fenced(p["prompt"] + "    pass\n"), p) for p in HUMANEVAL]
    verdicts = verify_all(box, VISIBLE, checks)
    statuses = {number(p["id"]): v.status for p, v in zip(HUMANEVAL, verdicts, strict=True)}
    assert {k for k, s in statuses.items() if s is Status.FAIL} == set(range(164)) - NO_EXAMPLES
    two = BY_ID["HumanEval/2"]
    for code, detail in [
        ("def truncate_number(x):\n    return x", "returned 3.5, expected 0.5"),
        ("def truncate_number(x):\n    raise ValueError('no')", "raised ValueError: no"),
        (
            "class Oops(Exception):\n    pass\n\ndef truncate_number(x):\n    raise Oops('mine')",
            "raised Oops: mine",
        ),
        ("def truncate_number(x):\n    print(0.5)", "returned None, expected 0.5"),
    ]:
        verdict = VISIBLE.verify(Check(fenced(code), two), box)
        assert verdict.status is Status.FAIL
        assert verdict.detail == f"VisibleExampleFailed: example 1: truncate_number(3.5) {detail}"
    spin = VISIBLE.verify(Check(fenced("def truncate_number(x):\n    while True: pass"), two), box)
    assert spin.status is Status.TIMEOUT
    assert VISIBLE.verify(Check("no code here", two), box).status is Status.INVALID


# Code that passes the examples in the docstring but not the hidden tests: a hard-coded answer
# (HumanEval/2: truncate_number(3.5) is the only example), and a plausible bug (HumanEval/0:
# comparing neighbours in the given order only, which the two examples cannot tell apart).
HARD_CODED = "def truncate_number(number: float) -> float:\n    return 0.5\n"
NEIGHBOURS = (
    "def has_close_elements(numbers, threshold):\n"
    "    return any(abs(a - b) < threshold for a, b in zip(numbers, numbers[1:]))\n"
)


def test_false_positives_against_the_hidden_tests(box: Sandbox) -> None:
    samples = [
        ("HumanEval/0", BY_ID["HumanEval/0"]["prompt"] + BY_ID["HumanEval/0"]["reference"]),
        ("HumanEval/0", NEIGHBOURS),
        ("HumanEval/0", "def has_close_elements(numbers, threshold):\n    return True\n"),
        ("HumanEval/2", BY_ID["HumanEval/2"]["prompt"] + BY_ID["HumanEval/2"]["reference"]),
        ("HumanEval/2", HARD_CODED),
        ("HumanEval/47", BY_ID["HumanEval/47"]["prompt"] + BY_ID["HumanEval/47"]["reference"]),
    ]
    checks = [Check(fenced(code), BY_ID[pid]) for pid, code in samples]
    visible_verdicts = verify_all(box, VISIBLE, checks)
    hidden_verdicts = verify_all(box, HIDDEN, checks)
    keys = [(pid, sum(1 for q, _ in samples[:i] if q == pid)) for i, (pid, _) in enumerate(samples)]
    visible = {k: str(v.status) for k, v in zip(keys, visible_verdicts, strict=True)}
    hidden = {k: str(v.status) for k, v in zip(keys, hidden_verdicts, strict=True)}
    assert visible == {
        ("HumanEval/0", 0): "pass",
        ("HumanEval/0", 1): "pass",
        ("HumanEval/0", 2): "fail",
        ("HumanEval/2", 0): "pass",
        ("HumanEval/2", 1): "pass",
        ("HumanEval/47", 0): "fail",
    }
    assert hidden == {
        ("HumanEval/0", 0): "pass",
        ("HumanEval/0", 1): "fail",
        ("HumanEval/0", 2): "fail",
        ("HumanEval/2", 0): "pass",
        ("HumanEval/2", 1): "fail",
        ("HumanEval/47", 0): "pass",
    }
    out = false_positive_rate(visible, hidden)
    assert out.visible_pass == 4 and out.hidden_fail_of_visible_pass == 2
    assert out.rate == 0.5
    assert out.hidden_pass == 3 and out.visible_fail_of_hidden_pass == 1  # HumanEval/47
    assert [(r.problem_id, r.false_positive) for r in out.by_problem] == [
        ("HumanEval/0", 1),
        ("HumanEval/2", 1),
        ("HumanEval/47", 0),
    ]


def test_check_and_list_through_the_cli(tmp_path: Path) -> None:
    listed = troop("verifiers")
    assert listed.returncode == 0 and "python-examples" in listed.stdout
    sample = tmp_path / "hard_coded.txt"
    sample.write_text(fenced(HARD_CODED))
    verdicts = {}
    for name in ("python-examples", "python-tests"):
        out = troop(
            "check",
            "--problems",
            "humaneval",
            "--problem",
            "HumanEval/2",
            "--verifier",
            name,
            str(sample),
        )
        assert out.returncode == 0, out.stderr
        verdicts[name] = json.loads(out.stdout)
    assert verdicts["python-examples"]["status"] == "pass"
    assert verdicts["python-examples"]["extra"]["examples"] == 1
    assert verdicts["python-tests"]["status"] == "fail"


@pytest.mark.model
def test_verify_stores_a_second_verifiers_verdicts_next_to_the_first(tmp_path: Path) -> None:
    path = tmp_path / "he.troop"
    run = troop(
        "run",
        "--headless",
        "--problems",
        "humaneval",
        "--limit",
        "2",
        "--samples",
        "2",
        "--parallel",
        "2",
        "--max-tokens",
        "24",
        "--session",
        str(path),
    )
    assert run.returncode == 0, run.stderr
    out = troop("verify", str(path), "--verifier", "python-examples")
    assert out.returncode == 0, out.stderr
    assert "verifier: python-examples" in out.stderr and "4 of 4 samples to judge" in out.stderr
    con = sqlite3.connect(path)
    rows = con.execute("SELECT verifier, COUNT(*) FROM verdicts GROUP BY verifier").fetchall()
    meta = con.execute("SELECT value FROM meta WHERE key = 'verifier'").fetchone()
    con.close()
    assert dict(rows) == {"python-tests": 4, "python-examples": 4}
    # The session's own verifier, the one coverage counts, is not replaced by the second one.
    assert json.loads(meta[0])["name"] == "python-tests"
    again = troop("verify", str(path), "--verifier", "python-examples")
    assert "0 of 4 samples to judge" in again.stderr
