"""Final answers of GSM8K, MATH and arithmetic samples: extraction and string normalisation."""

# Equivalence of answers is math-verify's (troop.verifiers.answer_verifiers), in the sandbox.
# What stays here is cheap string work for what runs outside it: the `exact` verifier's
# normalised match, the until-consistent policy's vote on every sample as it is drawn, and
# GSM8K's final-number extraction, which troop does its own way on purpose (README).

from __future__ import annotations

import re

from troop.verifiers.base import SAMPLE_STYLES

#: Where a LaTeX final answer starts, in MATH's solutions and in samples alike.
BOXED_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")

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


def final_answer(text: str, fmt: str) -> str | None:
    """The final answer a sample of format `fmt` gives, or None when it gives none: its
    `boxed_answer` where the format's samples box it (MATH), else its `number_answer`."""
    return boxed_answer(text) if SAMPLE_STYLES.get(fmt) == "boxed" else number_answer(text)


def boxed_answer(text: str) -> str | None:
    """A MATH sample's final answer: the content of the last `\\boxed{...}` or `\\fbox{...}`;
    without one, what follows the last "answer is"/"answer:" on its line. None without either."""
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


def number_answer(text: str) -> str | None:
    """A GSM8K or arithmetic sample's final answer: the number after the last "The answer is",
    "answer:", "####" or `\\boxed`, else the last number in the text, with `$`, thousands
    separators and `%` removed ("$1,234.50" gives "1234.50"). None when it has no number."""
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


def braced_group(text: str, start: int) -> str | None:
    """The content of the brace group opening at or after `start` (after spaces), braces
    balanced and escaped `\\{ \\}` skipped; None when there is none or it never closes."""
    i = start
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text) or text[i] != "{":
        return None
    depth, begin = 0, i + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        depth += (ch == "{") - (ch == "}")
        if depth == 0:
            return text[begin:i]
        i += 1
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
    is math-verify's business, not this function's.
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
