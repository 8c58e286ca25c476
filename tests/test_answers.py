"""Final answers: what a sample answers, how answers normalise, and when two are the same."""

from __future__ import annotations

import time

import pytest

from troop.verifiers.answers import equivalent, final_answer, last_boxed, normalize

# --- final_answer: GSM8K and arithmetic ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # GSM8K's own solution format.
        ("Natalia sold 48/2 = 24 clips in May.\nAltogether she sold 48+24 = 72 clips.\n#### 72",
         "72"),
        # A chatty SmolLM2-style answer with its final phrase.
        ("Sure! Let's solve this step by step.\n1. Janet's ducks lay 16 eggs per day.\n"
         "2. She eats 3 and bakes with 4, so 16 - 3 - 4 = 9 eggs are left.\n"
         "3. She sells them for $2 each: 9 * 2 = 18.\n\nThe answer is $18.", "18"),
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


# --- equivalent ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("\\dfrac{1}{2}", "0.5"),
        ("0.5", "\\frac{1}{2}"),
        ("1/2", "\\frac12"),
        ("-\\frac{3}{4}", "-0.75"),
        ("\\frac{-3}{4}", "-\\frac34"),
        ("\\left(1,2\\right)", "(1,2)"),
        ("(1, \\frac{1}{2})", "(1,0.5)"),
        ("1,000", "1000"),
        ("12.0", "12"),
        ("$12", "12"),
        ("10\\text{ cm}", "10"),
        ("\\sqrt{8}", "2\\sqrt{2}"),
        ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}"),
        ("\\frac{\\pi}{2}", "\\pi/2"),
        ("(x+1)^2", "x^2+2x+1"),
        ("2x+1", "1+2x"),
        ("x = 3", "3"),
        ("y = 2x+1", "y = 1 + 2x"),
        ("\\sqrt[3]{27}", "3"),
        ("2^{10}", "1024"),
        ("5!", "120"),
        ("\\{1, 2\\}", "\\{2, 1\\}"),
        ("3, 1", "1, 3"),  # a list of solutions in any order
        ("[0, \\infty)", "[0,\\infty)"),
        ("0.333", "0.333"),
        ("\\tfrac{6}{8}", "\\frac{3}{4}"),
        ("4\\sqrt{2}", "\\sqrt{32}"),
        ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}"),
    ],
)
def test_equivalent(given: str, expected: str) -> None:
    assert equivalent(given, expected)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2", "3"),
        ("0.333", "\\frac{1}{3}"),  # a rounded decimal is not the exact fraction
        ("1.4142135623730951", "\\sqrt{2}"),
        ("(1,2]", "(1,2)"),
        ("(1,2)", "(2,1)"),  # tuples are ordered
        ("\\{1, 2\\}", "\\{1, 3\\}"),
        ("1, 2", "1, 2, 3"),
        ("x + 1", "x + 2"),
        ("", "5"),
        ("5", ""),
        ("\\text{Evelyn}", "\\text{Alice}"),
        ("\\frac{1}{0}", "1"),
        ("\\unknowncommand{3}", "3"),
        ("x = 3", "y = 4"),
        ("x = 3", "3x"),
    ],
)
def test_not_equivalent(given: str, expected: str) -> None:
    assert not equivalent(given, expected)


@pytest.mark.parametrize(
    "given",
    [
        "2003^{2002^{2001}}",
        "2^{2^{2^{2^{2^{2}}}}}",
        "10^{10^{10}}",
        "x^{1000000}",
        "(x+1)^{99999}",
        "100000!",
        "9" * 5000,
        "(" * 500 + "1" + ")" * 500,
        "2^" * 200 + "2",
    ],
)
def test_huge_answers_are_refused_quickly(given: str) -> None:
    start = time.monotonic()
    assert not equivalent(given, "1")
    assert not equivalent("1", given)
    assert time.monotonic() - start < 5.0


def test_huge_but_equal_strings_are_still_equal() -> None:
    # String equality needs no arithmetic, however large the power.
    assert equivalent("2003^{2002^{2001}}", "2003^{2002^{2001}}")


def test_equivalent_never_raises_on_garbage() -> None:
    for junk in ["\\frac{", "}{", "^^", "\\sqrt[", "((", "1/0/0", "\\left(", "\\", "=", "=="]:
        assert isinstance(equivalent(junk, "1"), bool)
