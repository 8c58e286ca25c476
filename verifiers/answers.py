"""Final answers of GSM8K, MATH and arithmetic samples: extraction, normalisation, equivalence."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

from troop.engine.problems import BOXED_RE, braced_group

# Phrases after which a sample states its final answer; the last one in the text counts.
_MARKER_RE = re.compile(r"answer\s*(?:is|=|:)|####|\\boxed\b|\\fbox\b", re.IGNORECASE)
_BARE_BOXED_RE = re.compile(r"\s+([^\s${}]+)")  # "\boxed 5", as MATH sometimes writes
# Markers and boxes tried from the end, at most: each try may scan to the end of the text, and
# a hostile text with thousands of unclosed boxes must not take quadratic time.
_MAX_TRIES = 5
# A number as models write them: sign, currency, thousands separators, decimals, fractions.
# The sign is only a sign when no digit or word precedes it ("10-5" is not "-5").
_NUMBER_RE = re.compile(
    r"(?<![\w.])(?P<sign>[-\u2212])?\s?\\?\$?\s?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:\s?/\s?\d+)?|\.\d+)"
)
_PLAIN_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_GROUPED_NUMBER_RE = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
# Unit words dropped after a number ("12 dollars", "5 cm"); longer words go too, see normalize.
_UNITS = frozenset(
    ["m", "cm", "mm", "km", "g", "kg", "mg", "s", "h", "l", "ml", "ft", "in", "yd", "mi", "lb"]
    + ["lbs", "oz", "sq", "deg", "degree", "degrees"]
)
_LATEX_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_COMMAND_RE = re.compile(r"[A-Za-z]+")
_SUBSCRIPT_RE = re.compile(r"_(\{\w+\}|\w)")
# Refuse symbolic comparison past these sizes: an answer like 2003^{2002^{2001}} must not make
# sympy compute a number with billions of digits (the sandbox's limits are the last resort).
MAX_SYMBOLIC_CHARS = 300  # longest normalised answer compared symbolically, in characters
MAX_POWER_BITS = 100_000  # largest numeric power computed exactly, in bits of the result
MAX_EXPONENT = 100  # largest exponent applied to a symbolic base (simplify expands powers)
MAX_FACTORIAL = 1_000  # largest n for which n! is computed
MAX_ELEMENTS = 50  # most elements of a tuple, set or list compared one by one


class _Unparsable(ValueError):
    """An answer the small LaTeX parser does not read, or refuses to evaluate."""


def final_answer(text: str, fmt: str) -> str | None:
    """The final answer a sample gives, or None when it gives none.

    MATH: the content of the last `\\boxed{...}` or `\\fbox{...}`; without one, what follows the
    last "answer is"/"answer:" on its line. GSM8K and arithmetic: the number after the last
    "The answer is", "answer:", "####" or `\\boxed`, else the last number in the text, with
    `$`, thousands separators and `%` removed ("$1,234.50" gives "1234.50").
    """
    if fmt == "math":
        boxed = last_boxed(text)
        if boxed is not None:
            return boxed
        phrase = None
        for match in re.finditer(r"answer\s*(?:is|:)\s*:?", text, re.IGNORECASE):
            phrase = match
        if phrase is None:
            return None
        line = text[phrase.end() :].split("\n", 1)[0].strip()
        line = re.sub(r"^\$+|\$+\.?$", "", line.rstrip(".").strip()).strip()
        return line or None
    markers = list(_MARKER_RE.finditer(text))[-_MAX_TRIES:]
    for marker in reversed(markers):
        start = marker.end()
        found = None
        if marker.group(0).startswith("\\"):
            boxed = braced_group(text, start)
            if boxed is not None:
                found = _NUMBER_RE.search(boxed)
        else:
            # "The answer is 3 + 4 = 7": the value after the line's last "=" is the answer.
            end = text.find("\n", start)
            equals = text.rfind("=", start, len(text) if end < 0 else end)
            if equals >= 0:
                found = _NUMBER_RE.search(text, equals + 1, len(text) if end < 0 else end)
        found = found or _NUMBER_RE.search(text, start)
        if found is not None:
            return _clean_number(found)
    numbers = list(_NUMBER_RE.finditer(text))
    return _clean_number(numbers[-1]) if numbers else None


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}`/`\\fbox{...}` (braces balanced, `\\{` skipped); also
    `\\boxed 5`. None when there is none or it is empty."""
    for match in reversed(list(BOXED_RE.finditer(text))[-_MAX_TRIES:]):
        content = braced_group(text, match.end())
        if content is None:
            token = _BARE_BOXED_RE.match(text, match.end())
            content = token.group(1) if token else None
        if content is not None and content.strip():
            return content.strip()
    return None


def _clean_number(match: re.Match[str]) -> str:
    number = re.sub(r"\s", "", match.group("num")).replace(",", "")
    return ("-" if match.group("sign") else "") + number


def normalize(answer: str) -> str:
    """A canonical string form of an answer, for exact comparison.

    Removes spaces, `$`, `\\!`-style spacing, `\\left`/`\\right`, degrees, `%`, units (a
    trailing `\\text{...}`/`\\mbox{...}` after a value, or unit words after a number), a leading
    `x =`, thousands separators and a trailing `.`, `.0` or `.00`; rewrites `\\dfrac`/`\\tfrac`
    as `\\frac` and `\\frac12` as `\\frac{1}{2}`. Numeric equivalence ("0.5" and "\\frac{1}{2}")
    is `equivalent`'s business, not this function's.
    """
    s = answer.strip().replace("\u2212", "-").replace("\u03c0", "\\pi").replace("\u221a", "\\sqrt")
    s = s.replace("\\$", "").replace("$", "")
    inner = last_boxed(s) if s.startswith(("\\boxed", "\\fbox")) else None
    s = inner if inner is not None else s
    # Sizing and spacing carry no meaning; `\left.` is an invisible delimiter.
    s = re.sub(r"\\(?:left|right)(?![A-Za-z])\.?", "", s)
    s = re.sub(r"\\(?:displaystyle|big|Big|bigg|Bigg|limits)(?![A-Za-z])", "", s)
    s = re.sub(r"\\[!,;: ]", "", s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "", s)
    s = s.replace("\\%", "").replace("%", "").replace("\u00b0", "")
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    # A trailing \text{...} after a value is its unit ("10\text{ cm}"); elsewhere keep the words.
    # (A single letter, as in 2\mathrm{e}, is a symbol rather than a unit.)
    s = re.sub(
        r"(?<=\S)\s*\\(?:text|mbox|mathrm)\s*\{(?:\s[^{}]*|[^{}]*[A-Za-z]{2}[^{}]*)\}"
        r"(?:\^\{?\d\}?)?\s*$",
        "",
        s,
    )
    s = re.sub(r"\\(?:text|textbf|mbox|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}", r"\1", s)
    s = _braced_shorthand(s)
    s = s.strip()
    number_and_words = re.fullmatch(r"(-?[\d.,/]+)\s+([A-Za-z][A-Za-z ]*?)\.?", s)
    if number_and_words and _is_unit(number_and_words.group(2)):
        s = number_and_words.group(1)
    if s.count("=") == 1:
        lhs, rhs = s.split("=")
        # "x = 5" or "\theta = 30": a variable's name is not part of its value.
        if re.fullmatch(r"\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?\w+\}?)?\s*", lhs):
            s = rhs
    s = re.sub(r"\s+", "", s)
    s = s.rstrip(".") if not s.endswith("..") else s
    if _GROUPED_NUMBER_RE.fullmatch(s):
        s = s.replace(",", "")
    if _PLAIN_NUMBER_RE.fullmatch(s) and "." in s:
        s = s.rstrip("0").rstrip(".") or "0"
        s = re.sub(r"^(-?)\.", r"\g<1>0.", s)
    s = "0" if s == "-0" else s
    if re.fullmatch(r"\(([A-Za-z])\)", s):
        s = s[1]  # a multiple-choice letter: "(C)" is "C"
    return s


def _is_unit(words: str) -> bool:
    first = words.split()[0].lower()
    return first in _UNITS or len(first) >= 3


def _braced_shorthand(s: str) -> str:
    """`\\frac12` → `\\frac{1}{2}`, `\\frac1{x}` → `\\frac{1}{x}`, `\\sqrt2` → `\\sqrt{2}`."""
    s = re.sub(r"\\sqrt\s*(?![\s{\[])(\\[A-Za-z]+|\w)", r"\\sqrt{\1}", s)
    out, i = [], 0
    while (j := s.find("\\frac", i)) >= 0:
        out.append(s[i : j + 5])
        i = j + 5
        for _ in range(2):
            while i < len(s) and s[i] == " ":
                i += 1
            if i < len(s) and s[i] != "{":
                token = re.match(r"\\[A-Za-z]+|.", s[i:])
                assert token is not None  # "." matches any character
                out.append("{" + token.group(0) + "}")
                i += len(token.group(0))
            elif i < len(s):
                group = braced_group(s, i)
                if group is None:
                    break
                out.append("{" + group + "}")
                i += len(group) + 2
    out.append(s[i:])
    return "".join(out)


def equivalent(given: str, expected: str) -> bool:
    """Whether two answers are the same: equal normalised strings, equal exact numbers (ints,
    decimals, `a/b`, `\\frac{a}{b}` as fractions), the same tuple, interval or list element by
    element, or expressions sympy simplifies to the same thing. Never raises; an answer too big
    to compare safely is not equivalent."""
    a, b = normalize(given), normalize(expected)
    if a == b:
        return True
    if not a or not b:
        return False
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return x == y
    same = _same_sequence(a, b)
    if same is not None:
        return same
    try:
        return _symbolic_equal(a, b)
    except (_Unparsable, RecursionError, ValueError, TypeError, ZeroDivisionError,
            ArithmeticError, AttributeError):
        return False


def _number(s: str) -> Fraction | None:
    """An exact number from a normalised integer, decimal, `a/b` or `\\frac{a}{b}`."""
    m = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}", s) or re.fullmatch(
        r"(-?)\(?(-?\d+)\)?/\(?(-?\d+)\)?", s
    )
    try:
        if m:
            value = Fraction(int(m.group(2)), int(m.group(3)))
            return -value if m.group(1) else value
        if _PLAIN_NUMBER_RE.fullmatch(s) and len(s) < 400:
            return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _split_top(s: str) -> list[str]:
    """`s` split at commas outside brackets and braces."""
    parts, depth, current = [], 0, []
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s) and s[i + 1] in "{}":
            current.append(s[i : i + 2])
            i += 2
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _same_sequence(a: str, b: str) -> bool | None:
    """Whether two tuples, intervals, sets or lists are equal element by element; None when the
    answers are not both sequences of the same kind."""

    def shape(s: str) -> tuple[str, str, list[str]] | None:  # (opening, closing, elements)
        for opening, closing in (("\\{", "\\}"), ("(", ")"), ("[", "]"), ("(", "]"), ("[", ")")):
            if s.startswith(opening) and s.endswith(closing):
                items = _split_top(s[len(opening) : len(s) - len(closing)])
                if len(items) > 1:
                    return opening, closing, items
        items = _split_top(s)
        return ("", "", items) if len(items) > 1 else None

    sa, sb = shape(a), shape(b)
    if sa is None or sb is None or sa[:2] != sb[:2]:
        return None
    xs, ys = sa[2], sb[2]
    if len(xs) != len(ys) or len(xs) > MAX_ELEMENTS:
        return False  # (past MAX_ELEMENTS, only equal strings match: pairing is quadratic)
    if sa[0] in ("(", "["):
        return all(equivalent(x, y) for x, y in zip(xs, ys, strict=True))
    # Sets and bare lists of solutions: order does not matter.
    left = list(ys)
    for x in xs:
        match = next((y for y in left if equivalent(x, y)), None)
        if match is None:
            return False
        left.remove(match)
    return True


def _symbolic_equal(a: str, b: str) -> bool:
    """Whether sympy simplifies the difference of the two parsed expressions to zero."""
    if len(a) > MAX_SYMBOLIC_CHARS or len(b) > MAX_SYMBOLIC_CHARS:
        return False
    import sympy  # deferred: most answers are settled by strings and fractions

    if a.count("=") == 1 and b.count("=") == 1:
        (la, ra), (lb, rb) = a.split("="), b.split("=")
        x = _Parser(la).parse() - _Parser(ra).parse()
        y = _Parser(lb).parse() - _Parser(rb).parse()
        return bool(sympy.simplify(x - y) == 0 or sympy.simplify(x + y) == 0)
    if "=" in a or "=" in b:
        return False
    diff = _Parser(a).parse() - _Parser(b).parse()
    return bool(diff == 0 or sympy.simplify(diff) == 0)


class _Parser:
    """A small recursive-descent reader of LaTeX-ish math into sympy objects, built directly
    (no `eval`, no `sympify` of strings) so that untrusted answers cannot run code, with size
    guards on powers and factorials."""

    # Longest first, so that "arcsin(" is not read as a*r*c*sin(.
    _FUNCS = ("arcsin", "arccos", "arctan", "sin", "cos", "tan", "cot", "sec", "csc", "ln", "log",
              "exp")

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def parse(self) -> Any:
        value = self._expr()
        self._skip()
        if self.i != len(self.s):
            raise _Unparsable(f"unexpected {self.s[self.i:self.i + 10]!r}")
        return value

    # -- scanning helpers
    def _skip(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def _peek(self, token: str) -> bool:
        self._skip()
        if not self.s.startswith(token, self.i):
            return False
        # A command must not be the prefix of a longer one (\pi vs \pin).
        end = self.i + len(token)
        return not (token[-1].isalpha() and token[0] == "\\" and end < len(self.s)
                    and self.s[end].isalpha())

    def _eat(self, token: str) -> bool:
        if self._peek(token):
            self.i += len(token)
            return True
        return False

    def _expect(self, token: str) -> None:
        if not self._eat(token):
            raise _Unparsable(f"expected {token!r} at {self.i}")

    # -- grammar
    def _expr(self) -> Any:
        value = self._term()
        while True:
            if self._eat("+"):
                value = value + self._term()
            elif self._eat("-"):
                value = value - self._term()
            else:
                return value

    def _term(self) -> Any:
        value = self._unary()
        while True:
            if self._eat("*") or self._eat("\\cdot") or self._eat("\\times"):
                value = value * self._unary()
            elif self._eat("/") or self._eat("\\div"):
                value = value / self._unary()
            elif self._starts_atom():
                value = value * self._power()  # implicit product: 2x, 2\sqrt{2}, (a)(b)
            else:
                return value

    def _unary(self) -> Any:
        if self._eat("-"):
            return -self._unary()
        if self._eat("+"):
            return self._unary()
        return self._power()

    def _power(self) -> Any:
        base = self._postfix()
        if not self._eat("^"):
            return base
        self._skip()
        if self._peek("{"):
            exponent = self._group()
        elif self.i < len(self.s) and self.s[self.i].isdigit():
            # TeX binds one character: x^23 is x^2 times 3.
            import sympy

            exponent = sympy.Integer(int(self.s[self.i]))
            self.i += 1
        else:
            exponent = self._unary()
        return _guarded_pow(base, exponent)

    def _postfix(self) -> Any:
        value = self._atom()
        while self._eat("!"):
            value = _guarded_factorial(value)
        return value

    def _starts_atom(self) -> bool:
        self._skip()
        if self.i >= len(self.s):
            return False
        ch = self.s[self.i]
        if ch.isalnum() or ch in "({[.":
            return True
        return ch == "\\" and not any(self._peek(op) for op in ("\\cdot", "\\times", "\\div"))

    def _group(self) -> Any:
        self._expect("{")
        value = self._expr()
        self._expect("}")
        return value

    def _atom(self) -> Any:
        import sympy

        self._skip()
        if self.i >= len(self.s):
            raise _Unparsable("unexpected end")
        number = _LATEX_NUMBER_RE.match(self.s, self.i)
        if number:
            self.i = number.end()
            if len(number.group(0)) > 1000:
                raise _Unparsable("number too long")
            return sympy.Rational(number.group(0))  # exact: 1.5 is 3/2, never a float
        for opening, closing in (("(", ")"), ("[", "]"), ("{", "}")):
            if self._eat(opening):
                value = self._expr()
                self._expect(closing)
                return value
        if self._eat("\\frac"):
            numerator = self._group()
            return numerator / self._group()
        if self._eat("\\sqrt"):
            if self._eat("["):
                degree = self._expr()
                self._expect("]")
                return _guarded_pow(self._group(), 1 / degree)
            return sympy.sqrt(self._group())
        if self._eat("\\pi"):
            return sympy.pi
        if self._eat("\\infty"):
            return sympy.oo
        for name in self._FUNCS:
            if self._eat("\\" + name) or self._eat(name + "("):
                if self.s[self.i - 1] == "(":
                    self.i -= 1
                function = getattr(sympy, {"ln": "log", "arcsin": "asin", "arccos": "acos",
                                           "arctan": "atan"}.get(name, name))
                return function(self._power())
        if self._eat("\\"):
            command = _COMMAND_RE.match(self.s, self.i)
            if command and command.group(0) in _GREEK:
                self.i = command.end()
                return sympy.Symbol(command.group(0))
            raise _Unparsable("unknown command")
        ch = self.s[self.i]
        if ch.isalpha() and ch.isascii():
            self.i += 1
            name = ch
            subscript = _SUBSCRIPT_RE.match(self.s, self.i)
            if subscript:
                self.i = subscript.end()
                name += "_" + subscript.group(1).strip("{}")
            return sympy.Symbol(name)
        raise _Unparsable(f"unexpected {ch!r}")


_GREEK = frozenset(
    ["alpha", "beta", "gamma", "delta", "epsilon", "theta", "lambda", "mu", "nu", "phi", "psi"]
    + ["omega", "rho", "sigma", "tau"]
)


def _guarded_pow(base: Any, exponent: Any) -> Any:
    """`base ** exponent`, refused when the result would be too big to compute exactly."""
    if exponent.is_Number and abs(exponent) > MAX_EXPONENT:
        if not base.is_Number:
            raise _Unparsable("exponent too large for a symbolic base")
        if abs(base) not in (0, 1):
            if abs(exponent) > MAX_POWER_BITS:
                raise _Unparsable("power too large")
            p, q = abs(base.p), abs(base.q)  # a Rational: numerator and denominator
            if math.log2(max(p, q)) * float(abs(exponent)) > MAX_POWER_BITS:
                raise _Unparsable("power too large")
    return base**exponent


def _guarded_factorial(value: Any) -> Any:
    import sympy

    if not value.is_Integer or value < 0 or value > MAX_FACTORIAL:
        raise _Unparsable("factorial refused")
    return sympy.factorial(value)
