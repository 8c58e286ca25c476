"""Arithmetic: generated integer questions, easy to harder, judged by the number a sample
ends with."""

from __future__ import annotations

import random
from collections.abc import Callable

from troop.engine.formats.base import (
    BuiltinSet,
    FileReader,
    Problem,
    ProblemFormat,
    answer_problem,
    number_instruction,
    question_answer_prompt,
)
from troop.errors import ProblemSetError
from troop.verifiers.answers import number_answer

_MAX_ARITHMETIC = 10_000  # the most questions one set may ask for


def arithmetic_problems(count: int = 40, seed: int = 0) -> tuple[Problem, ...]:
    """Generate `count` integer arithmetic questions, deterministic in `seed`, easiest first."""
    if count < 1 or count > _MAX_ARITHMETIC:
        raise ProblemSetError(f"arithmetic: count must be between 1 and {_MAX_ARITHMETIC}")
    rng = random.Random(seed)  # a private generator: callers' global random state is untouched
    # Four tiers of rising difficulty; a 135M model gets most of the first and few of the last,
    # so coverage visibly climbs with the sample budget. Earlier tiers take any remainder.
    tiers: list[Callable[[], tuple[str, int]]] = [
        lambda: _binary(rng.randint(1, 9), "+", rng.randint(1, 9)),
        lambda: _binary(rng.randint(10, 99), rng.choice("+-"), rng.randint(10, 99)),
        lambda: _binary(rng.randint(2, 9), "*", rng.randint(11, 99)),
        lambda: _two_step(rng),
    ]
    sizes = [count // len(tiers) + (1 if i < count % len(tiers) else 0) for i in range(len(tiers))]
    width = max(3, len(str(count - 1)))  # ids sort in order even past arith/999
    seen: set[str] = set()
    problems: list[Problem] = []
    for draw, size in zip(tiers, sizes, strict=True):
        for _ in range(size):
            # Redraw repeats a bounded number of times: small tiers run out of distinct questions
            # when count is large, and then a repeat is better than looping forever.
            expr, value = draw()
            for _retry in range(50):
                if expr not in seen:
                    break
                expr, value = draw()
            seen.add(expr)
            index = len(problems)
            problems.append(
                answer_problem(
                    f"arith/{index:0{width}d}",
                    "arithmetic",
                    f"What is {expr}?",
                    str(value),
                    None,
                    f"builtin:arithmetic:{index}",
                )
            )
    return tuple(problems)


def _binary(a: int, op: str, b: int) -> tuple[str, int]:
    """One operation; subtraction keeps the larger operand first so results stay non-negative."""
    if op == "-" and a < b:
        a, b = b, a
    value = a + b if op == "+" else a - b if op == "-" else a * b
    return f"{a} {op} {b}", value


def _two_step(rng: random.Random) -> tuple[str, int]:
    """Two operations, with and without brackets, so precedence matters."""
    a, b, c = rng.randint(2, 19), rng.randint(2, 19), rng.randint(2, 9)
    shape = rng.randrange(3)
    if shape == 0:
        return f"({a} + {b}) * {c}", (a + b) * c
    if shape == 1:
        return f"{a} * {c} + {b}", a * c + b
    a, b = max(a, b), min(a, b)
    return f"({a} - {b}) * {c}", (a - b) * c


def load(spec: str, read: FileReader) -> tuple[str, tuple[Problem, ...]]:
    """The set `arithmetic`, `arithmetic:N` or `arithmetic:N:SEED` names (40 and 0 if not)."""
    count, seed = _parse_spec(spec)
    return f"generated: {count} problems, seed {seed}", arithmetic_problems(count, seed)


def _parse_spec(spec: str) -> tuple[int, int]:
    parts = spec.split(":")[1:]
    try:
        count = int(parts[0]) if parts else 40
        seed = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        count = seed = -1
    if len(parts) > 2 or not 1 <= count <= _MAX_ARITHMETIC or seed < 0:
        raise ProblemSetError(
            f"bad problem set {spec!r}",
            hint=f"use arithmetic:N or arithmetic:N:SEED with N in 1..{_MAX_ARITHMETIC}, SEED >= 0",
        )
    return count, seed


FORMAT = ProblemFormat(
    name="arithmetic",
    fields=(),  # generated only: no file is read as arithmetic
    parse=None,
    instruction=number_instruction,
    raw_prompt=question_answer_prompt,
    judged_as="answer",
    default_verifier="math-answer",
    final_answer=number_answer,
    builtin=BuiltinSet(
        "40 generated integer arithmetic questions, easy to harder "
        "(arithmetic:N or arithmetic:N:SEED for another size or seed)",
        load,
        takes_arguments=True,
    ),
)
