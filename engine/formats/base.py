"""What a problem format is: the parsed Problem, the ProblemFormat that describes one format,
and the record and prompt helpers the format modules share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from troop.errors import ProblemSetError

#: One record of problem data, as read from a JSON line or a table row.
Record = dict[str, object]
#: Reads a JSONL problem file into (detected format, problems); built-in loaders get one.
FileReader = Callable[[Path], tuple[str, tuple["Problem", ...]]]

#: Stop strings for a base model continuing a Python function, after the Codex paper: the
#: function body ends where top-level code begins.
CODE_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")
#: Stop strings for a base model answering a question in the "Question:/Answer:" layout.
QA_STOPS = ("\nQuestion:", "\n\n\n")


@dataclass(frozen=True)
class Problem:
    """One problem: what the model is shown and what a verifier checks a sample against."""

    #: Unique task id within its set, e.g. "HumanEval/0" or "arith/007".
    id: str
    #: Record format: "humaneval", "mbpp", "gsm8k", "math" or "arithmetic".
    format: str
    #: The text the model acts on (HumanEval: signature and docstring; others: the question).
    prompt: str
    #: Expected final answer for answer-style formats (GSM8K, MATH, arithmetic); None for code.
    answer: str | None
    #: Name of the function the tests call (HumanEval, MBPP); None for answer-style formats.
    entry_point: str | None
    #: Test code a code verifier runs against a sample (HumanEval, MBPP); None otherwise.
    test: str | None
    #: MBPP's individual assert statements; empty for other formats.
    test_list: tuple[str, ...]
    #: The data's own solution (canonical code or worked solution), when it has one.
    reference: str | None
    #: Where the problem came from: "path:LINE" for files, "builtin:NAME:INDEX" for built-ins.
    source: str


@dataclass(frozen=True)
class BuiltinSet:
    """A problem set troop ships (or generates), named by its format's name."""

    #: One line for lists of built-in sets.
    description: str
    #: (spec as given, a JSONL reader) -> (human description of the origin, problems).
    load: Callable[[str, FileReader], tuple[str, tuple[Problem, ...]]]
    #: Whether `NAME:ARGS` specs name it too ("arithmetic:20:1"); else only `NAME` does.
    takes_arguments: bool = False


@dataclass(frozen=True)
class ProblemFormat:
    """Everything troop knows about one problem format, registered in troop.engine.formats."""

    #: The format's name, stored with every problem and session, e.g. "gsm8k".
    name: str
    #: Required record fields, by which a file's format is detected; () when no file holds it.
    fields: tuple[str, ...]
    #: (record, its index in the data, "path:LINE") -> Problem; None when no file holds it.
    parse: Callable[[Record, int, str], Problem] | None
    #: What an instruct model is asked, through its chat template.
    instruction: Callable[[Problem], str]
    #: What a base model continues, and the stop strings where its continuation ends.
    raw_prompt: Callable[[Problem], tuple[str, tuple[str, ...]]]
    #: How a sample is judged: by its final answer, or by running tests on its code.
    judged_as: Literal["answer", "code"]
    #: The registered name of the verifier that judges the format when none is named.
    default_verifier: str
    #: A sample's final answer, None when it states none; None for formats judged as code.
    final_answer: Callable[[str], str | None] | None = None
    #: The set troop ships or generates in this format, if any.
    builtin: BuiltinSet | None = None


def question_answer_prompt(problem: Problem) -> tuple[str, tuple[str, ...]]:
    """A base model's prompt for an answer-style problem: the "Question:/Answer:" layout."""
    return f"Question: {problem.prompt}\nAnswer:", QA_STOPS


def number_instruction(problem: Problem) -> str:
    """An instruct model's prompt for a problem whose answer is a number at the end."""
    return f"{problem.prompt}\nGive the final answer as a number after 'The answer is'."


def answer_problem(
    pid: str, fmt: str, prompt: str, answer: str, reference: str | None, source: str
) -> Problem:
    """A problem checked by its final answer alone: no entry point and no test code."""
    return Problem(pid, fmt, prompt, answer, None, None, (), reference, source)


def text_field(rec: Record, field: str, where: str) -> str:
    """The record's `field`, which must be a string."""
    value = rec[field]
    if not isinstance(value, str):
        raise ProblemSetError(
            f"{where}: field {field!r} must be a string, got {type(value).__name__}"
        )
    return value


def optional_text(rec: Record, field: str, where: str) -> str | None:
    """The record's `field` when present and not null, which must then be a string."""
    return text_field(rec, field, where) if rec.get(field) is not None else None


def record_id(rec: Record, fields: tuple[str, ...], prefix: str, index: int, where: str) -> str:
    """The record's own id (a string or integer), else `prefix/index` for id-less data."""
    for field in fields:
        value = rec.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
            raise ProblemSetError(f"{where}: field {field!r} must be a non-empty string or integer")
        return str(value)
    if not prefix:  # the format requires an id (HumanEval, MBPP), and it is null
        raise ProblemSetError(f"{where}: field {fields[0]!r} must not be null")
    return f"{prefix}/{index}"
