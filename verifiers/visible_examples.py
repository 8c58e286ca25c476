"""The python-examples verifier: runs the examples shown in a problem's prompt (a HumanEval
docstring's `>>> f(x)` lines, `f(x) == y`, an MBPP prompt's visible assert) against a sample."""

# This is the cheap, visible verifier a person has without the hidden tests; comparing its
# verdicts with python-tests' gives its false-positive rate (troop.engine.analytics.selection).
# The examples become a test function that python-tests' sandboxed checker runs exactly as it
# runs the hidden tests: same code extraction, same two-process isolation, same verdicts.

from __future__ import annotations

import ast
import builtins
import inspect
import re
import time
from dataclasses import dataclass, replace
from typing import Any

from troop.verifiers.base import Check, Status, Verdict
from troop.verifiers.python_tests import PythonTests

_MAX_CALL_LINES = 30  # longest example call spread over several lines, lines
_MAX_EXAMPLES = 50  # examples run per problem, at most
_SHOWN_CHARS = 120  # longest value quoted in a failure's detail, characters
# What may stand before an example call on its line: a bullet, "for", "assert".
_LEAD_RE = re.compile(r"^[ \t]*(?:[*\-\u2022][ \t]*|for[ \t]+|assert[ \t]+)?")
# Words between a call and its expected result, as HumanEval's docstrings write them.
_ARROW_RE = re.compile(
    r"^[ \t]*(?:==>|=>|==|\u279e|->|\u2192|=|#[ \t]*(?:=>|->|returns?)|returns?"
    r"|should[ \t]+return|should[ \t]+be)[ \t]*"
)
_DOCSTRING_END_RE = re.compile(r"(\"\"\"|''')[ \t]*$")
# "For lst = [1,2,3] the output should be 14": one argument named, then the result.
_FOR_RE = re.compile(
    r"^[ \t]*For[ \t]+\w+[ \t]*=[ \t]*(?P<args>.+?),?[ \t]+the output should be"
    r"[ \t]+(?P<result>.+)$",
    re.IGNORECASE,
)
# "Input: grid = [[1]], k = 1" or "Input: [1, 2]", and on a later line "Output: [1]".
_INPUT_RE = re.compile(r"^[ \t]*Input[ \t]*:[ \t]*(?P<args>.+)$")
_OUTPUT_RE = re.compile(r"^[ \t]*Output[ \t]*:[ \t]*(?P<result>.+)$")


@dataclass(frozen=True)
class Example:
    """One example found in a prompt."""

    line: int  # 1-based line of the prompt it starts on
    call: str  # Python expression that calls the entry point, normalised ("f(1, 2)")
    expected: str  # the expected result as written ("3", "'abc'", "True")
    literal: bool  # whether `expected` is a Python literal, compared as a value; otherwise
    # it is compared with the repr (or str) of the result, as doctest does
    expression: bool = False  # `expected` is an expression of the prompt's names (an assert's
    # right-hand side such as set((4, 5))), evaluated next to the call


def find_examples(prompt: str, entry_point: str) -> list[Example]:
    """The examples of `prompt` that call `entry_point`: doctest sessions (`>>> f(x)` and the
    output line after it; `>>> f(x) == y` on its own), lines of the forms `f(x) == y`,
    `f(x) ➞ y`, `f(x) => y`, `f(x) -> y`, `f(x) = y`, `f(x) returns y`, `f(x) should return y`
    (after an optional bullet, "for" or "assert"), `assert f(x) == y` statements, and two
    prose forms with literal arguments: "For lst = [1, 2] the output should be 3" and
    "Input: ..." followed by "Output: ...". Calls may use only literals, built-ins and the
    prompt's own names; other prose ("f(a) => False" for a string "a") is not read."""
    if not entry_point.isidentifier():
        return []
    known = _prompt_names(prompt) | set(dir(builtins)) | {entry_point}
    lines = prompt.splitlines()
    call_re = re.compile(_LEAD_RE.pattern + r"(?P<call>" + re.escape(entry_point) + r"[ \t]*\()")
    found: list[Example] = []
    i = 0
    while i < len(lines) and len(found) < _MAX_EXAMPLES:
        stripped = lines[i].strip()
        example: Example | None = None
        if stripped.startswith(">>>"):
            i, example = _doctest_example(lines, i, entry_point, known, call_re)
            if example is not None:
                found.append(example)
            continue
        call = call_re.match(lines[i])
        if call is not None:
            example = _arrow_example(lines, i, call.start("call"), entry_point, known)
        elif stripped.startswith("assert "):
            example = _assert_example(stripped, i, entry_point, known)
        elif (prose := _FOR_RE.match(lines[i]) or _INPUT_RE.match(lines[i])) is not None:
            example = _prose_example(lines, i, prose, prompt, entry_point)
        if example is not None:
            found.append(example)
        i += 1
    return found


def _prompt_names(prompt: str) -> set[str]:
    """Names the prompt defines or imports at top level (helpers the examples may call)."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _doctest_example(
    lines: list[str], i: int, entry_point: str, known: set[str], call_re: re.Pattern[str]
) -> tuple[int, Example | None]:
    """The doctest example starting at line i, and the line after it. Its output runs to a
    blank line, the next `>>>` or the docstring's end (or, unlike doctest, a line that starts
    with another call of the entry point: docstrings mix forms without blank lines)."""
    source = lines[i].strip()[3:].strip()
    j = i + 1
    while j < len(lines) and lines[j].strip().startswith("..."):
        source += "\n" + lines[j].strip()[3:].strip()
        j += 1
    output: list[str] = []
    while j < len(lines):
        text = lines[j].strip()
        if not text or text.startswith(">>>") or call_re.match(lines[j]):
            break
        if _DOCSTRING_END_RE.search(text):
            output.append(_DOCSTRING_END_RE.sub("", text).strip())
            break
        output.append(text)
        j += 1
    expected = "\n".join(output).strip()
    if expected:
        return j, _make_example(i, source, expected, entry_point, known, literal_only=False)
    # No output line: `>>> f(x) == y` (or `>>> f(x) y`) states the result on the line itself;
    # a bare `>>> f(x)` prints nothing, so its result is None.
    if re.match(re.escape(entry_point) + r"[ \t]*\(", source):
        split = _split_call(source, 0, entry_point)
        if split is not None and split[1].strip():
            arrow = _ARROW_RE.match(split[1])
            rest = split[1][arrow.end() :] if arrow else split[1]
            example = _make_example(i, split[0], rest, entry_point, known, literal_only=True)
            if example is not None:
                return j, example
    tree = _parse_expression(source)
    if isinstance(tree, ast.Compare) and len(tree.ops) == 1 and isinstance(tree.ops[0], ast.Eq):
        return j, _compare_example(i, tree, entry_point, known)
    return j, _make_example(i, source, "None", entry_point, known, literal_only=False)


def _arrow_example(
    lines: list[str], i: int, offset: int, entry_point: str, known: set[str]
) -> Example | None:
    """An example of the form `f(x) ARROW y` starting at column `offset` of line i; the call
    may span lines, the expected result is the rest of the line where the call closes."""
    text = "\n".join(lines[i : i + _MAX_CALL_LINES])
    split = _split_call(text, offset, entry_point)
    if split is None:
        return None
    call, rest = split
    rest = rest.split("\n", 1)[0]
    arrow = _ARROW_RE.match(rest)
    if arrow is None:
        return None
    return _make_example(i, call, rest[arrow.end() :], entry_point, known, literal_only=True)


def _prose_example(
    lines: list[str], i: int, match: re.Match[str], prompt: str, entry_point: str
) -> Example | None:
    """ "For x = v the output should be y", or "Input: ..." with "Output: y" within the next
    three lines. The arguments must be literals, bare or named after the parameters; they
    are passed by position, in the order of the prompt's signature (a sample may rename
    its parameters)."""
    result = match.groupdict().get("result")
    if result is None:  # an Input: line; its Output: follows
        following = (_OUTPUT_RE.match(line) for line in lines[i + 1 : i + 4])
        output = next((m for m in following if m is not None), None)
        if output is None:
            return None
        result = output.group("result")
    signature = _parameters(prompt, entry_point)
    args = match.group("args").strip().rstrip(",")
    call = None
    for candidate in (args, args.split(", ")[0]):  # "1000, the sum of digits will be 1"
        call = _parse_expression(f"{entry_point}({candidate})")
        if isinstance(call, ast.Call):
            break
    if not isinstance(call, ast.Call) or signature is None:
        return None
    params, required = signature
    values: list[ast.expr] = list(call.args)
    named = {kw.arg: kw.value for kw in call.keywords}
    if named:
        given = [p for p in params if p in named]
        if call.args or len(given) != len(named) or given != params[: len(given)]:
            return None
        values = [named[p] for p in given]
    if not required <= len(values) <= len(params) or not all(_is_literal(v) for v in values):
        return None
    source = f"{entry_point}({', '.join(ast.unparse(v) for v in values)})"
    return _make_example(i, source, result, entry_point, {entry_point}, literal_only=True)


def _parameters(prompt: str, entry_point: str) -> tuple[list[str], int] | None:
    """Positional parameter names of the prompt's definition of `entry_point`, and how many
    of them have no default."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            names = [a.arg for a in node.args.posonlyargs + node.args.args]
            return names, len(names) - len(node.args.defaults)
    return None


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def _assert_example(stripped: str, i: int, entry_point: str, known: set[str]) -> Example | None:
    """`assert f(x) == y` (any expressions) as an example; other asserts are not read."""
    try:
        tree = ast.parse(stripped)
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return None
    test = tree.body[0].test
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
        return _compare_example(i, test, entry_point, known)
    return None


def _compare_example(
    i: int, tree: ast.Compare, entry_point: str, known: set[str]
) -> Example | None:
    left, right = tree.left, tree.comparators[0]
    if not _calls(left, entry_point) or not _names_ok(right, known):
        return None
    example = _make_example(
        i, ast.unparse(left), ast.unparse(right), entry_point, known, literal_only=False
    )
    if example is None or example.literal:
        return example
    return replace(example, expression=True)


def _make_example(
    i: int, call: str, expected: str, entry_point: str, known: set[str], *, literal_only: bool
) -> Example | None:
    """An Example, if `call` is a call of the entry point using known names only and
    `expected` reads as a result (a literal; with `literal_only` false, any text)."""
    tree = _parse_expression(call)
    if tree is None or not _calls(tree, entry_point) or not _names_ok(tree, known):
        return None
    value = _result_text(expected)
    if value is not None:
        return Example(i + 1, ast.unparse(tree), value, True)
    if literal_only or not expected.strip():
        return None
    return Example(i + 1, ast.unparse(tree), expected.strip(), False)


def _result_text(text: str) -> str | None:
    """`text` as a Python literal's source, tidied: a trailing full stop or comment dropped,
    true/false read as booleans; None if it is not a literal."""
    text = text.strip()
    candidates = [text.rstrip(".").rstrip(), text, text.split(" #")[0].strip()]
    # "'No' (the name should start with a letter)": a literal, then a remark.
    if " (" in text:
        candidates.append(text.split(" (")[0].strip())
    for candidate in candidates:
        if candidate.lower() in ("true", "false"):
            return candidate.capitalize()
        try:
            value = ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        # Doctest's "..." elides output, it is no result; 1e999 (inf) has no literal repr.
        if value is not Ellipsis and _round_trips(value):
            return candidate
    return None


def _round_trips(value: Any) -> bool:
    try:
        return bool(ast.literal_eval(repr(value)) == value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def _split_call(text: str, offset: int, entry_point: str) -> tuple[str, str] | None:
    """(the call `entry_point(...)` starting at `offset`, the text after it), scanning
    brackets and string literals; None if the call does not close."""
    start = text.index("(", offset + len(entry_point))
    depth, quote, k = 0, "", start
    while k < len(text):
        ch = text[k]
        if quote:
            if ch == "\\":
                k += 1
            elif text.startswith(quote, k):
                k += len(quote) - 1
                quote = ""
        elif ch in "\"'":
            quote = ch * 3 if text.startswith(ch * 3, k) else ch
            k += len(quote) - 1
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return text[offset : k + 1], text[k + 1 :]
        k += 1
    return None


def _parse_expression(source: str) -> ast.expr | None:
    try:
        return ast.parse(source.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def _calls(tree: ast.AST, entry_point: str) -> bool:
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == entry_point
        for node in ast.walk(tree)
    )


def _names_ok(tree: ast.AST, known: set[str]) -> bool:
    """Whether the expression uses only known names and no private attributes."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in known:
            return False
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            return False
        if isinstance(node, ast.Lambda | ast.NamedExpr):
            return False
    return True


# --- the test code the sandboxed checker runs ---------------------------------------------------


class VisibleExampleFailed(Exception):
    """A docstring example gave another result (or raised)."""


def _troop_same(got: Any, want: Any) -> bool:
    """Whether a result equals an expected literal: numbers within 1e-6 (relative to the
    larger of 1 and the expected value), containers element by element, else ==."""
    if isinstance(want, bool) or isinstance(got, bool):
        return bool(got == want)
    if isinstance(want, int | float) and isinstance(got, int | float):
        return bool(abs(got - want) <= 1e-6 * max(1.0, abs(want)))
    if type(want) in (list, tuple) and type(got) is type(want):
        return len(got) == len(want) and all(
            _troop_same(a, b) for a, b in zip(got, want, strict=True)
        )
    if type(want) is dict and type(got) is dict:
        return got.keys() == want.keys() and all(_troop_same(got[k], want[k]) for k in want)
    return bool(got == want)


def _troop_shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _troop_example(number: int, call: str, run: Any, want: Any, shown: str, literal: bool) -> None:
    """Run one example; raise VisibleExampleFailed saying what it gave instead."""
    try:
        got = run()
    except Exception as exc:
        # The checker's stand-in for an exception type the sample defined names it in str().
        kind = "" if type(exc).__name__ == "_SampleRaised" else type(exc).__name__ + ": "
        raise VisibleExampleFailed(f"example {number}: {call} raised {kind}{exc}") from None
    if literal:
        ok = _troop_same(got, want)
    else:  # doctest's rule: the printed result matches the text (spacing aside)
        flat = " ".join(str(want).split())
        ok = flat in (" ".join(repr(got).split()), " ".join(str(got).split()))
    if not ok:
        raise VisibleExampleFailed(
            f"example {number}: {call} returned {_troop_shown(got)}, expected {shown}"
        )


def examples_test_code(examples: list[Example]) -> str:
    """Test code defining `check(candidate)` that runs the examples, for python-tests' checker:
    the call refers to the entry point by name, which the checker binds to the sample's."""
    # Annotations stay unevaluated: the checker's namespace has no `Any`.
    parts = [
        "from __future__ import annotations",
        "# Examples from the prompt, checked by troop's python-examples verifier.",
        f"_SHOWN_CHARS = {_SHOWN_CHARS}",
    ]
    parts += [
        inspect.getsource(obj)
        for obj in (VisibleExampleFailed, _troop_same, _troop_shown, _troop_example)
    ]
    body = []
    for number, ex in enumerate(examples, 1):
        if ex.literal:
            want = repr(ast.literal_eval(ex.expected))
        elif ex.expression:
            want = ex.expected
        else:
            want = repr(ex.expected)
        body.append(
            f"    _troop_example({number}, {ex.call!r}, lambda: {ex.call}, {want}, "
            f"{ex.expected!r}, {ex.literal or ex.expression})"
        )
    parts.append("def check(candidate):\n" + "\n".join(body) + "\n")
    return "\n".join(parts)


class VisibleExamples(PythonTests):
    """Judges HumanEval (and MBPP) samples by the examples their prompt shows, in the sandbox
    python-tests uses; a problem whose prompt shows no example it can run is `invalid`."""

    name = "python-examples"
    version = "1"  # bump when find_examples reads prompts differently

    def verify(self, check: Check, sandbox: Any) -> Verdict:
        start = time.monotonic()
        problem = check.problem
        examples = find_examples(problem.get("prompt") or "", problem.get("entry_point") or "")
        if not examples:
            return Verdict(
                Status.INVALID,
                self.name,
                self.version,
                time.monotonic() - start,
                "",
                False,
                "the prompt shows no example troop can run "
                "(it reads `>>> f(x)` sessions and `f(x) == y`-style lines)",
            )
        source = examples_test_code(examples)
        if problem.get("format") == "mbpp":
            # MBPP's checker runs assert lines with the sample's functions bound by name.
            judged = {**problem, "test": source + "\ncheck(None)", "test_list": ["check(None)"]}
        else:
            judged = {**problem, "test": source}
        verdict = super().verify(Check(text=check.text, problem=judged), sandbox)
        return replace(
            verdict,
            duration_s=time.monotonic() - start,
            extra={**verdict.extra, "examples": len(examples)},
        )
