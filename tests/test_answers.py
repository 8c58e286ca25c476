"""Final answers: what a sample answers and how answers normalise (equivalence is math-verify's:
test_math_verify.py)."""

from __future__ import annotations

import pytest

from troop.verifiers.answers import final_answer, last_boxed, normalize

# --- final_answer: GSM8K and arithmetic ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # GSM8K's own solution format.
        (
            "Natalia sold 48/2 = 24 clips in May.\nAltogether she sold 48+24 = 72 clips.\n#### 72",
            "72",
        ),
        # A chatty SmolLM2-style answer with its final phrase.
        (
            "Sure! Let's solve this step by step.\n1. Janet's ducks lay 16 eggs per day.\n"
            "2. She eats 3 and bakes with 4, so 16 - 3 - 4 = 9 eggs are left.\n"
            "3. She sells them for $2 each: 9 * 2 = 18.\n\nThe answer is $18.",
            "18",
        ),
        ("The answer is: **-5**", "-5"),
        ("So the total cost is $1,234.50.", "1234.50"),
        ("Answer: 18 dollars. I hope this helps 4 you!", "18"),
        ("The answer is 3 + 4 = 7.", "7"),
        ("The final answer is:\n\n42", "42"),
        ("The discount is 12%.", "12"),
        ("She uses 1/2 of the flour.", "1/2"),
        ("It costs 3.50 per pound.", "3.50"),
        ("The answer is \\boxed{42}. Check: 41 + 1 = 42, and 7 is odd.", "42"),
        ("Final: \\boxed{\\$1,000}", "1000"),
        # Without a marker, the last number in the text.
        ("First 5 apples, then 3 more, so 8", "8"),
        ("The temperature fell to -12 degrees.", "-12"),
        # A minus between numbers is subtraction, not a sign.
        ("10-5", "5"),
        ("What is 7 + 8? 7 + 8 = 15", "15"),
    ],
)
def test_final_answer_of_number_answers(text: str, expected: str) -> None:
    assert final_answer(text, "gsm8k") == expected
    assert final_answer(text, "arithmetic") == expected


@pytest.mark.parametrize(
    "text", ["", "I don't know.", "Let's think about the ducks. They lay eggs every morning."]
)
def test_final_answer_none_without_numbers(text: str) -> None:
    assert final_answer(text, "gsm8k") is None


# --- final_answer: MATH -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We get $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("First \\boxed{3}, but correcting: \\boxed{4}", "4"),
        ("So the point is $\\boxed{\\left(3, \\{4\\}\\right)}$.", "\\left(3, \\{4\\}\\right)"),
        ("Nested braces: \\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
        ("An fbox: \\fbox{7}", "7"),
        ("Old style: \\boxed 5$.", "5"),
        # No box: the rest of the line after the last "answer is".
        ("The answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
        ("Final answer: 12\n\nThanks!", "12"),
    ],
)
def test_final_answer_of_math_answers(text: str, expected: str) -> None:
    assert final_answer(text, "math") == expected


@pytest.mark.parametrize(
    "text", ["No box here, just 42.", "An empty box \\boxed{}", "Unclosed \\boxed{1 + 2"]
)
def test_final_answer_math_none(text: str) -> None:
    assert final_answer(text, "math") is None


def test_last_boxed_skips_escaped_braces() -> None:
    assert last_boxed("\\boxed{\\{1, 2\\}}") == "\\{1, 2\\}"


# --- normalize ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" 12 ", "12"),
        ("$12$", "12"),
        ("\\$12", "12"),
        ("12.", "12"),
        ("12.0", "12"),
        ("12.00", "12"),
        ("3.50", "3.5"),
        (".5", "0.5"),
        ("1,000", "1000"),
        ("1,234,567.5", "1234567.5"),
        ("12 dollars", "12"),
        ("5 cm", "5"),
        ("10\\text{ cm}", "10"),
        ("10 \\mbox{inches}", "10"),
        ("6\\text{ cm}^2", "6"),
        ("\\text{Evelyn}", "Evelyn"),
        ("\\left(1, 2\\right)", "(1,2)"),
        ("\\left[ 0, 1 \\right)", "[0,1)"),
        ("3\\!000", "3000"),
        ("30^\\circ", "30"),
        ("30^{\\circ}", "30"),
        ("25\\%", "25"),
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("\\tfrac{3}{4}", "\\frac{3}{4}"),
        ("\\frac12", "\\frac{1}{2}"),
        ("\\frac1{x}", "\\frac{1}{x}"),
        ("\\frac{a}2", "\\frac{a}{2}"),
        ("\\sqrt2", "\\sqrt{2}"),
        ("x = 5", "5"),
        ("\\theta = 30^\\circ", "30"),
        ("y = 2x + 1", "2x+1"),
        ("\\boxed{7}", "7"),
        ("(C)", "C"),
        ("\\text{(C)}", "C"),
        ("-0", "0"),
        ("\u22123", "-3"),
        ("2\\mathrm{e}", "2e"),  # one letter is a symbol, not a unit
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected
