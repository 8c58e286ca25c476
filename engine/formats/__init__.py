"""The problem formats troop knows, one module each, and the one registry that names them."""

from __future__ import annotations

from troop.engine.formats import arithmetic, gsm8k, humaneval, math, mbpp
from troop.engine.formats.base import BuiltinSet, Problem, ProblemFormat
from troop.errors import ProblemSetError

__all__ = [
    "ANSWER_FORMATS",
    "CODE_FORMATS",
    "FORMATS",
    "BuiltinSet",
    "Problem",
    "ProblemFormat",
    "builtin_format",
    "final_answer",
    "get_format",
]

#: Every format by name, in detection order: a record with the required fields of two formats
#: is read as the earlier one.
FORMATS: dict[str, ProblemFormat] = {
    f.name: f for f in (humaneval.FORMAT, mbpp.FORMAT, gsm8k.FORMAT, math.FORMAT, arithmetic.FORMAT)
}
#: Formats whose samples are judged by one final answer (they can be voted on), by name.
ANSWER_FORMATS = tuple(sorted(name for name, f in FORMATS.items() if f.judged_as == "answer"))
#: Formats whose samples are programs, judged by running tests, by name.
CODE_FORMATS = tuple(sorted(name for name, f in FORMATS.items() if f.judged_as == "code"))


def get_format(name: str) -> ProblemFormat:
    """The format registered as `name`; unknown names list the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ProblemSetError(
            f"unknown problem format {name!r}", hint=f"known formats: {', '.join(FORMATS)}"
        ) from None


def builtin_format(spec: str) -> ProblemFormat | None:
    """The format whose built-in set `spec` names (`humaneval`, `arithmetic:20`), if any."""
    name = spec.split(":", 1)[0]
    fmt = FORMATS.get(name)
    if fmt is None or fmt.builtin is None:
        return None
    if spec != name and not fmt.builtin.takes_arguments:
        return None
    return fmt


def final_answer(text: str, format_name: str) -> str | None:
    """The final answer a sample of the named format states; None when it states none, and
    for formats judged as code."""
    extract = get_format(format_name).final_answer
    return extract(text) if extract is not None else None
