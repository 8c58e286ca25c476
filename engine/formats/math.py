"""MATH: competition problems, judged by the LaTeX answer a sample puts in \\boxed{}."""

from __future__ import annotations

import re

from troop.engine.formats.base import (
    Problem,
    ProblemFormat,
    Record,
    answer_problem,
    question_answer_prompt,
    record_id,
    text_field,
)
from troop.errors import ProblemSetError
from troop.verifiers.answers import BOXED_RE, boxed_answer, braced_group


def parse(rec: Record, index: int, where: str) -> Problem:
    """A MATH record: the expected answer is the solution's last \\boxed{...}."""
    solution = text_field(rec, "solution", where)
    pid = record_id(rec, ("id", "unique_id", "task_id"), "math", index, where)
    prompt = text_field(rec, "problem", where)
    return answer_problem(pid, "math", prompt, _last_boxed(solution, where), solution, where)


def instruction(problem: Problem) -> str:
    """An instruct model is asked to box its final answer, as the MATH solutions do."""
    return f"{problem.prompt}\nPut your final answer in \\boxed{{}}."


def _last_boxed(solution: str, where: str) -> str:
    """Content of the last \\boxed{...} or \\fbox{...}, matching braces and skipping \\{ \\}."""
    matches = list(BOXED_RE.finditer(solution))
    if not matches:
        raise ProblemSetError(f"{where}: MATH solution has no \\boxed{{...}} final answer")
    start = matches[-1].end()
    rest = solution[start:]
    if not rest.lstrip().startswith("{"):
        # MATH occasionally writes "\boxed 5": the answer runs to the next space or '$'.
        token = re.match(r"\s*([^\s$]+)", rest)
        if token is None:
            raise ProblemSetError(f"{where}: MATH solution has an empty \\boxed final answer")
        return token.group(1)
    content = braced_group(solution, start)
    if content is None:
        raise ProblemSetError(
            f"{where}: unbalanced braces in the MATH solution's last \\boxed{{...}}"
        )
    if not content.strip():
        raise ProblemSetError(f"{where}: MATH solution has an empty \\boxed{{}}")
    return content.strip()


FORMAT = ProblemFormat(
    name="math",
    fields=("problem", "solution"),
    parse=parse,
    instruction=instruction,
    raw_prompt=question_answer_prompt,
    judged_as="answer",
    default_verifier="math-answer",
    final_answer=boxed_answer,
)
