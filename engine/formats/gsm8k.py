"""GSM8K: grade-school word problems, judged by the number a sample ends with."""

from __future__ import annotations

from troop.engine.formats.base import (
    Problem,
    ProblemFormat,
    Record,
    answer_problem,
    number_instruction,
    question_answer_prompt,
    record_id,
    text_field,
)
from troop.errors import ProblemSetError
from troop.verifiers.answers import number_answer


def parse(rec: Record, index: int, where: str) -> Problem:
    """A GSM8K record: the expected answer is what follows the solution's last "####"."""
    solution = text_field(rec, "answer", where)
    if "####" not in solution:
        raise ProblemSetError(f"{where}: GSM8K answer has no '#### <number>' final answer")
    final = solution.rsplit("####", 1)[1].strip().replace(",", "")
    if not final:
        raise ProblemSetError(f"{where}: GSM8K answer is empty after '####'")
    pid = record_id(rec, ("id", "task_id"), "gsm8k", index, where)
    return answer_problem(pid, "gsm8k", text_field(rec, "question", where), final, solution, where)


FORMAT = ProblemFormat(
    name="gsm8k",
    fields=("question", "answer"),
    parse=parse,
    instruction=number_instruction,
    raw_prompt=question_answer_prompt,
    judged_as="answer",
    default_verifier="math-answer",
    final_answer=number_answer,
)
