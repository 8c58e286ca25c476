"""Tests for the problem-format registry: what each format declares, the prompts it words, and
the verifiers' own reading of the same formats kept in step with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from troop.engine.formats import (
    ANSWER_FORMATS,
    CODE_FORMATS,
    FORMATS,
    Problem,
    builtin_format,
    final_answer,
    get_format,
)
from troop.engine.formats.loading import load_problem_set
from troop.engine.formats.prompts import instruction, raw_prompt
from troop.errors import ProblemSetError
from troop.verifiers import answer_verifiers, registry
from troop.verifiers.answers import boxed_answer, number_answer
from troop.verifiers.base import SAMPLE_STYLES

FORMAT_MODULES = Path(__file__).resolve().parent.parent / "engine" / "formats"


def problem(fmt: str, prompt: str) -> Problem:
    return Problem("p/0", fmt, prompt, None, None, None, (), None, "test")


def test_answer_and_code_formats_come_from_the_registry() -> None:
    assert list(FORMATS) == ["humaneval", "mbpp", "gsm8k", "math", "arithmetic"]
    assert ANSWER_FORMATS == ("arithmetic", "gsm8k", "math")
    assert CODE_FORMATS == ("humaneval", "mbpp")
    for name, fmt in FORMATS.items():
        assert fmt.name == name
        assert (fmt.final_answer is None) == (fmt.judged_as == "code")


def test_the_verifiers_read_each_format_as_its_module_declares() -> None:
    # The verifiers cannot import the engine, so they keep their own table of the formats.
    assert list(SAMPLE_STYLES) == list(FORMATS)
    extractors = {"boxed": boxed_answer, "number": number_answer, "code": None}
    for name, fmt in FORMATS.items():
        style = SAMPLE_STYLES[name]
        assert (style == "code") == (fmt.judged_as == "code"), name
        assert extractors[style] is fmt.final_answer, name
        assert registry.DEFAULT_FOR_FORMAT[name] == fmt.default_verifier, name
    assert frozenset(ANSWER_FORMATS) == answer_verifiers.ANSWER_FORMATS


def test_each_format_is_judged_by_its_default_verifier() -> None:
    for name, fmt in FORMATS.items():
        assert registry.for_format(name, fmt.default_verifier).name == fmt.default_verifier


def test_unknown_formats_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ProblemSetError) as info:
        get_format("aime")
    assert str(info.value) == (
        "unknown problem format 'aime' (known formats: humaneval, mbpp, gsm8k, math, arithmetic)"
    )


def test_builtin_sets_are_named_by_their_format() -> None:
    assert builtin_format("humaneval") is FORMATS["humaneval"]
    assert builtin_format("arithmetic") is FORMATS["arithmetic"]
    assert builtin_format("arithmetic:12:3") is FORMATS["arithmetic"]
    # Only arithmetic takes arguments; formats without a set are files' formats only.
    assert builtin_format("humaneval:3") is None
    assert builtin_format("gsm8k") is None and builtin_format("problems.jsonl") is None


def test_builtin_sets_keep_their_digests() -> None:
    # A session made before stays resumable: the digest pins each problem's content.
    assert load_problem_set("arithmetic").digest == (
        "887d67ab9689af9fd04666bdaa670626ee80cbbf86d5257cf74e68877b0f1491"
    )
    assert load_problem_set("humaneval").digest == (
        "0527b2cffba71a644a7dd0824408b9d9d1e4d51bf5754cd5301d408caaef7081"
    )


def test_instruct_models_are_asked_in_each_formats_own_words() -> None:
    assert instruction(problem("humaneval", "def f():\n")) == (
        "Complete the following Python function. Reply with the whole function in one "
        "```python code block.\n\n```python\ndef f():\n```"
    )
    assert instruction(problem("mbpp", "Write f.")) == (
        "Write f.\nReply with the Python code in one ```python code block."
    )
    assert instruction(problem("math", "Compute x.")) == (
        "Compute x.\nPut your final answer in \\boxed{}."
    )
    for fmt in ("gsm8k", "arithmetic"):
        assert instruction(problem(fmt, "What is 2 + 3?")) == (
            "What is 2 + 3?\nGive the final answer as a number after 'The answer is'."
        )


def test_base_models_continue_each_formats_own_layout() -> None:
    code_stops = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")
    assert raw_prompt(problem("humaneval", "def f():\n")) == ("def f():\n", code_stops)
    assert raw_prompt(problem("mbpp", "Write f.")) == ('"""Write f."""\n', code_stops)
    for fmt in ANSWER_FORMATS:
        assert raw_prompt(problem(fmt, "What is 2 + 3?")) == (
            "Question: What is 2 + 3?\nAnswer:",
            ("\nQuestion:", "\n\n\n"),
        )


def test_final_answers_are_read_per_format_and_code_has_none() -> None:
    assert final_answer("so \\boxed{\\frac12} and 5", "math") == "\\frac12"
    assert final_answer("so \\boxed{\\frac12} and 5", "gsm8k") == "5"  # a number, not LaTeX
    assert final_answer("The answer is 7.", "arithmetic") == "7"
    assert final_answer("return 7", "humaneval") is None


def test_each_format_module_is_small_and_says_what_it_is() -> None:
    for path in sorted(FORMAT_MODULES.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert text.startswith('"""'), f"{path.name}: no module docstring"
        assert text.count("\n") < 300, f"{path.name}: over 300 lines"
