"""MBPP: short Python programming tasks, judged by running their assert statements."""

from __future__ import annotations

import re

from troop.engine.formats.base import (
    CODE_STOPS,
    Problem,
    ProblemFormat,
    Record,
    optional_text,
    record_id,
    text_field,
)
from troop.errors import ProblemSetError

_DEF_RE = re.compile(r"^[ \t]*def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)


def parse(rec: Record, index: int, where: str) -> Problem:
    """An MBPP record: the task's text and its first test make the prompt."""
    tests = rec["test_list"]
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise ProblemSetError(f"{where}: field 'test_list' must be a non-empty list of strings")
    test_list = tuple(str(t) for t in tests)
    code = text_field(rec, "code", where)
    setup = optional_text(rec, "test_setup_code", where)
    # The first def whose name the asserts call: some solutions define helpers first.
    names = _DEF_RE.findall(code)
    called = [n for n in names if any(re.search(rf"\b{n}\s*\(", t) for t in test_list)]
    pid = record_id(rec, ("task_id",), "", index, where)
    task = text_field(rec, "text", where)
    return Problem(
        id=pid,
        format="mbpp",
        prompt=f"{task}\nYour code should pass this test:\n{test_list[0]}",
        answer=None,
        entry_point=(called or names or [None])[0],
        test="\n".join(([setup] if setup and setup.strip() else []) + list(test_list)),
        test_list=test_list,
        reference=code,
        source=where,
    )


def instruction(problem: Problem) -> str:
    """An instruct model is asked for its code in one code block."""
    return f"{problem.prompt}\nReply with the Python code in one ```python code block."


def raw_prompt(problem: Problem) -> tuple[str, tuple[str, ...]]:
    """A base model continues after the task written as a module docstring."""
    return f'"""{problem.prompt}"""\n', CODE_STOPS


FORMAT = ProblemFormat(
    name="mbpp",
    fields=("task_id", "text", "code", "test_list"),
    parse=parse,
    instruction=instruction,
    raw_prompt=raw_prompt,
    judged_as="code",
    default_verifier="python-tests",
)
