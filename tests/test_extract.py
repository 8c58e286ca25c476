"""extract_code picks the program to test out of realistic model outputs, deterministically."""

from __future__ import annotations

from typing import Any

import pytest

from troop.verifiers.extract import extract_code

# HumanEval/0: the solution needs `List` from the prompt's imports.
HE0_PROMPT = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold.
    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
    False
    >>> has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)
    True
    """
'''
HE0_ENTRY = "has_close_elements"

# HumanEval/32: the prompt defines a helper (`poly`, needing `math`) that solutions call.
HE32_PROMPT = '''import math


def poly(xs: list, x: float):
    """
    Evaluates polynomial with coefficients xs at point x.
    """
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])


def find_zero(xs: list):
    """ xs are coefficients of a polynomial.
    >>> round(find_zero([1, 2]), 2) # f(x) = 1 + 2x
    -0.5
    """
'''

# MBPP-style: the prompt is prose plus one assert.
MBPP_PROMPT = (
    "Write a function to find the shared elements from the given two lists.\n"
    "Your code should pass this test:\n"
    "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"
)

HE0_TESTS = [
    (([1.0, 2.0, 3.0], 0.5), False),
    (([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3), True),
]


def _run(code: str, entry_point: str) -> Any:
    """Execute trusted test fixtures (the strings in this file) and return the entry point."""
    namespace: dict[str, Any] = {"__name__": "extracted"}
    exec(compile(code, "<extracted>", "exec"), namespace)
    return namespace[entry_point]


def _assert_he0(code: str | None) -> None:
    assert code is not None
    fn = _run(code, HE0_ENTRY)
    for args, expected in HE0_TESTS:
        assert fn(*args) is expected


def test_single_python_block_in_a_chatty_answer() -> None:
    text = """Sure! Here's a Python function that checks whether any two numbers are closer \
than the threshold:

```python
def has_close_elements(numbers: List[float], threshold: float) -> bool:
    for i in range(len(numbers)):
        for j in range(i + 1, len(numbers)):
            if abs(numbers[i] - numbers[j]) < threshold:
                return True
    return False
```

This function uses two nested loops to compare every pair of numbers. I hope this helps!"""
    code = extract_code(text, HE0_PROMPT, HE0_ENTRY)
    assert code is not None
    # `List` comes from the prompt's imports, which the block lacks.
    assert code.startswith("from typing import List\n")
    assert "I hope this helps" not in code and "Sure!" not in code
    _assert_he0(code)


@pytest.mark.parametrize("tag", ["", "py", "Python", "python3", "PYTHON"])
def test_fence_language_tag_variants(tag: str) -> None:
    text = f"Here is the code:\n```{tag}\ndef add(a, b):\n    return a + b\n```\nDone."
    assert extract_code(text, "Write add.", "add") == "def add(a, b):\n    return a + b\n"


def test_usage_block_does_not_shadow_the_definition() -> None:
    text = """Here's the solution:

```python
from typing import List

def has_close_elements(numbers: List[float], threshold: float) -> bool:
    numbers = sorted(numbers)
    return any(b - a < threshold for a, b in zip(numbers, numbers[1:]))
```

You can test it like this:

```python
print(has_close_elements([1.0, 2.0, 3.0], 0.5))  # False
assert has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)
```
"""
    code = extract_code(text, HE0_PROMPT, HE0_ENTRY)
    assert code is not None
    assert "print(" not in code and "assert " not in code
    _assert_he0(code)


def test_usage_block_before_the_definition_is_dropped_too() -> None:
    text = """For example:

```python
>>> has_close_elements([1.0, 2.0, 3.0], 0.5)
False
```

And the implementation:

```python
def has_close_elements(numbers, threshold):
    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])
```"""
    code = extract_code(text, HE0_PROMPT, HE0_ENTRY)
    assert code is not None and ">>>" not in code
    _assert_he0(code)


def test_definition_split_across_blocks_is_joined_in_order() -> None:
    text = """First we need a helper that measures the gap between two numbers:

```python
def gap(a: float, b: float) -> float:
    return abs(a - b)
```

Then the main function uses it:

```python
def has_close_elements(numbers: List[float], threshold: float) -> bool:
    return any(gap(a, b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])
```

Example:

```python
print(has_close_elements([1.0, 2.0], 0.5))
```"""
    code = extract_code(text, HE0_PROMPT, HE0_ENTRY)
    assert code is not None
    assert code.index("def gap") < code.index("def has_close_elements")
    assert "print(" not in code
    _assert_he0(code)


def test_imports_in_their_own_block_are_kept() -> None:
    text = """```python
import itertools
```

```python
def has_close_elements(numbers, threshold):
    return any(abs(a - b) < threshold for a, b in itertools.combinations(numbers, 2))
```"""
    code = extract_code(text, HE0_PROMPT, HE0_ENTRY)
    assert code is not None and code.startswith("import itertools")
    _assert_he0(code)


def test_the_last_of_several_definitions_is_taken() -> None:
    text = """Here's a first attempt:

```python
def add(a, b):
    return a - b
```

Wait, that subtracts. Here's the corrected version:

```python
def add(a, b):
    return a + b
```"""
    code = extract_code(text, "Write add.", "add")
    assert code == "def add(a, b):\n    return a + b\n"


def test_unterminated_fence_takes_everything_after_it() -> None:
    text = (
        "Here's my solution:\n\n```python\ndef add(a, b):\n    # add the two numbers\n"
        "    return a + b\n"
    )
    assert extract_code(text, "Write add.", "add") == (
        "def add(a, b):\n    # add the two numbers\n    return a + b\n"
    )


def test_unclosed_block_followed_by_a_new_tagged_fence() -> None:
    text = "```python\ndef add(a, b):\n    return a + b\n```python\nprint(add(1, 2))\n```"
    assert extract_code(text, "Write add.", "add") == "def add(a, b):\n    return a + b\n"


def test_non_python_blocks_are_ignored_when_python_exists() -> None:
    text = """Install nothing, then run:

```bash
python solution.py
```

```python
def add(a, b):
    return a + b
```

Output:

```text
3
```"""
    assert extract_code(text, "Write add.", "add") == "def add(a, b):\n    return a + b\n"


def test_indented_fence_in_a_list_is_dedented() -> None:
    text = "1. Define it:\n\n    ```python\n    def add(a, b):\n        return a + b\n    ```\n"
    assert extract_code(text, "Write add.", "add") == "def add(a, b):\n    return a + b\n"


def test_bare_code_with_prose_around_it() -> None:
    text = """To solve this, we compare each pair.

from typing import List

def has_close_elements(numbers: List[float], threshold: float) -> bool:
    for i, a in enumerate(numbers):
        for b in numbers[i + 1:]:
            if abs(a - b) < threshold:
                return True
    return False

This function returns True if two numbers are closer than the threshold.
For example, has_close_elements([1.0, 2.0, 3.0], 0.5) returns False."""
    code = extract_code(text, HE0_PROMPT, HE0_ENTRY)
    assert code is not None
    assert code.startswith("from typing import List\n\ndef has_close_elements")
    assert "This function" not in code and "To solve" not in code
    _assert_he0(code)


def test_bare_code_keeps_a_helper_defined_after_the_function() -> None:
    text = """Here you go:
def add(a, b):
    return plus(a, b)

def plus(x, y):
    return x + y

print(add(2, 3))
It prints 5."""
    code = extract_code(text, "Write add.", "add")
    assert code == "def add(a, b):\n    return plus(a, b)\n\ndef plus(x, y):\n    return x + y\n"


def test_bare_code_with_only_its_output_fenced() -> None:
    text = """def add(a, b):
    return a + b

print(add(2, 3))

Output:
```
5
```"""
    assert extract_code(text, "Write add.", "add") == "def add(a, b):\n    return a + b\n"


def test_base_model_completion_continues_the_prompt() -> None:
    text = """    for i, a in enumerate(numbers):
        for b in numbers[i + 1:]:
            if abs(a - b) < threshold:
                return True
    return False


def check(candidate):
    assert candidate([1.0, 2.0], 0.5) is False

if __name__ == "__main__":
    import doctest"""
    code = extract_code(text, HE0_PROMPT, HE0_ENTRY)
    assert code is not None
    assert code.startswith(HE0_PROMPT)
    # The base model's rambling after the function (its own test harness) is cut.
    assert "def check" not in code and "__main__" not in code
    _assert_he0(code)


def test_fenced_function_body_continues_the_prompt() -> None:
    text = "```python\n    return number % 1.0\n```"
    prompt = 'def truncate_number(number: float) -> float:\n    """ Decimal part. """\n'
    code = extract_code(text, prompt, "truncate_number")
    assert code == prompt + "    return number % 1.0\n"
    assert _run(code, "truncate_number")(3.5) == 0.5


def test_prompt_helpers_and_their_imports_are_prepended() -> None:
    text = """Here's an implementation using bisection:

```python
def find_zero(xs: list):
    lo, hi = -1.0, 1.0
    while poly(xs, lo) * poly(xs, hi) > 0:
        lo, hi = lo * 2.0, hi * 2.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        if poly(xs, mid) * poly(xs, lo) > 0:
            lo = mid
        else:
            hi = mid
    return lo
```"""
    code = extract_code(text, HE32_PROMPT, "find_zero")
    assert code is not None
    assert code.startswith("import math\n")
    assert code.index("def poly") < code.index("def find_zero")
    assert round(_run(code, "find_zero")([1, 2]), 2) == -0.5


def test_helpers_the_code_defines_itself_are_not_prepended() -> None:
    text = (
        "```python\nimport math\n\ndef poly(xs, x):\n    return sum(c * x**i for i, c in "
        "enumerate(xs))\n\ndef find_zero(xs):\n    return -xs[0] / xs[1]\n```"
    )
    code = extract_code(text, HE32_PROMPT, "find_zero")
    assert code is not None
    assert code.count("def poly") == 1 and code.count("import math") == 1


def test_no_prepending_when_the_code_uses_nothing_from_the_prompt() -> None:
    text = "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"
    code = extract_code(text, HE0_PROMPT, HE0_ENTRY)
    assert code == "def has_close_elements(numbers, threshold):\n    return False\n"


def test_mbpp_answer_with_a_prose_prompt() -> None:
    text = """To find the shared elements, convert both to sets and intersect them.

```python
def similar_elements(test_tup1, test_tup2):
    res = tuple(set(test_tup1) & set(test_tup2))
    return res
```

Let's test the function:

```python
assert set(similar_elements((3, 4, 5, 6), (5, 7, 4, 10))) == set((4, 5))
```"""
    code = extract_code(text, MBPP_PROMPT, "similar_elements")
    assert code is not None and "assert" not in code
    assert set(_run(code, "similar_elements")((3, 4, 5, 6), (5, 7, 4, 10))) == {4, 5}


def test_code_defining_another_name_is_still_returned() -> None:
    # A wrong function name is the sample's mistake: the tests, not extraction, reject it.
    text = "```python\ndef addition(a, b):\n    return a + b\n```"
    assert extract_code(text, "Write add.", "add") == "def addition(a, b):\n    return a + b\n"


def test_entry_point_none_takes_the_first_code_region() -> None:
    text = "Sure.\n\nimport math\n\ndef area(r):\n    return math.pi * r * r\n\nThat's it."
    expected = "import math\n\ndef area(r):\n    return math.pi * r * r\n"
    assert extract_code(text, "", None) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\n",
        "I'm sorry, but I can't help with that. The numbers should be compared pairwise.",
        "The answer is to loop over the list and compare each pair of numbers. If any two are "
        "closer than the threshold, return True; otherwise return False.",
    ],
)
def test_pure_prose_gives_none(text: str) -> None:
    assert extract_code(text, HE0_PROMPT, HE0_ENTRY) is None
    assert extract_code(text, MBPP_PROMPT, "similar_elements") is None


def test_extraction_is_deterministic_and_never_executes() -> None:
    # A sample whose code would have a side effect if run: extraction only reads it.
    text = "```python\nimport os\nos.environ['TROOP_EXTRACT_RAN'] = '1'\ndef f():\n    pass\n```"
    import os

    first = extract_code(text, "", "f")
    assert first == extract_code(text, "", "f")
    assert "TROOP_EXTRACT_RAN" not in os.environ


def test_flush_left_fenced_body_is_indented_under_the_prompt() -> None:
    text = "The body is:\n```python\nreturn number - int(number)\n```"
    prompt = 'def truncate_number(number: float) -> float:\n    """ Decimal part. """\n'
    code = extract_code(text, prompt, "truncate_number")
    assert code == prompt + "    return number - int(number)\n"
    assert _run(code, "truncate_number")(3.5) == 0.5


def test_every_humaneval_canonical_solution_survives_extraction() -> None:
    """Four ways a model may present a correct solution, for all 164 problems: the extracted
    program passes the problem's own tests (trusted canonical code, run in-process)."""
    from troop.engine.formats.loading import load_problem_set

    failures = []
    for problem in load_problem_set("humaneval").problems:
        prompt, body, entry = problem.prompt, problem.reference or "", problem.entry_point
        assert entry is not None and problem.test is not None
        signature_on = prompt[prompt.index(f"def {entry}") :]
        presentations = {
            "completion": body,
            "fenced": f"Sure! Here is the code:\n```python\n{prompt}{body}```\nHope it helps.",
            "bare": f"Here is the code:\n\n{prompt}{body}\nThis works because it loops.",
            "fenced, no prompt imports": f"```python\n{signature_on}{body}```",
        }
        for how, text in presentations.items():
            code = extract_code(text, prompt, entry)
            try:
                assert code is not None
                _run(f"{code}\n{problem.test}\ncheck({entry})\n", "check")
            except Exception as exc:  # collected so one run names every failure
                failures.append(f"{problem.id} ({how}): {exc!r}"[:200])
    assert not failures, "\n".join(failures)
