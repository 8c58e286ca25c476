"""Deterministic extraction of the Python program to test from a model's output (HumanEval/MBPP)."""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

# An opening or closing fence: three or more backticks at the start of a line, then an optional
# language tag. Anything after the tag on the line (e.g. "```python title=x") is ignored.
_FENCE_RE = re.compile(r"^[ \t]*(`{3,})[ \t]*([\w+#.-]*)[^`\n]*$")
# Language tags whose block is Python; an empty tag counts, since small models often omit it.
_PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3", "python2", "ipython"})
_TOP_DEF_RE = re.compile(r"^(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)[ \t]*\(")
_TOP_CLASS_RE = re.compile(r"^class[ \t]+([A-Za-z_]\w*)")
_IMPORT_RE = re.compile(r"^(?:import[ \t]+[\w.]|from[ \t]+[\w.]+[ \t]+import\b)")
# Lines that start a top-level definition: the head of a code region.
_HEAD_RE = re.compile(
    r"^(?:import[ \t]|from[ \t]+[\w.]+[ \t]+import\b|(?:async[ \t]+)?def[ \t]|class[ \t]|@)"
)
# Top-level lines that may sit between definitions without ending a code region.
_CODE_LINE_RE = re.compile(
    r"^(?:import[ \t]|from[ \t]+[\w.]+[ \t]+import\b|(?:async[ \t]+)?def[ \t]|class[ \t]|@|#"
    r"|[A-Za-z_]\w*(?:[ \t]*:[^=\n]+)?[ \t]*=[^=])"
)
# Top-level lines of example usage: a block made only of these does not define the solution.
_USAGE_RE = re.compile(
    r"^(?:assert\b|print[ \t]*\(|>>>|\.\.\.|if[ \t]+__name__\b|for[ \t]|while[ \t]"
    r"|[A-Za-z_][\w.]*[ \t]*\(|[A-Za-z_][\w, ]*=[^=].*\()"
)
_IDENT_RE = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class _Block:
    """One fenced block of the model's output."""

    lang: str  # the fence's language tag, lower-cased ("" when none)
    code: str  # the block's content, dedented, without the fences
    raw: str  # the content with only the opening fence's own indentation removed, so that a
    # function body keeps its indentation


def extract_code(text: str, prompt: str, entry_point: str | None) -> str | None:
    """The program to test from a model's `text`, or None when the text holds no code at all.

    Fenced blocks win over bare text. Among blocks, the one defining `entry_point` is taken with
    the other code blocks (helpers, imports) in order; blocks of mere example usage are dropped.
    Without fences, the region around a `def entry_point(` line is taken; a text that only
    continues the prompt's function (a base model's completion) is appended to the prompt. The
    prompt's imports and helper functions that the code uses but lacks are prepended. Pure:
    the text is parsed, never executed.
    """
    blocks, outside = _fenced_blocks(text)
    if blocks and not (
        # Code written bare with only its output fenced: the definition is outside the fences.
        entry_point is not None
        and not any(_defines(b.code, entry_point) for b in blocks)
        and _defines(outside, entry_point)
    ):
        code, continues = _from_blocks(blocks, prompt, entry_point)
    else:
        code, continues = _from_bare_text(outside, prompt, entry_point)
    if code is None or not code.strip():
        return None
    if continues:
        return prompt + code
    return _with_prompt_context(code.strip("\n") + "\n", prompt, entry_point)


def _fenced_blocks(text: str) -> tuple[list[_Block], str]:
    """Every fenced block, in order (a fence left open runs to the end of the text), and the
    text outside the blocks."""
    blocks: list[_Block] = []
    outside: list[str] = []
    lang: str | None = None  # the open block's tag, None outside a block
    margin = 0  # the open block's fence indentation
    body: list[str] = []
    for line in text.splitlines():
        fence = _FENCE_RE.match(line)
        if fence is None:
            (body if lang is not None else outside).append(line)
            continue
        tag = fence.group(2).lower()
        if lang is None:
            lang, body, margin = tag, [], _indent(line)
            continue
        blocks.append(_block(lang, body, margin))
        # Small models often open the next block without closing the previous one:
        # a tagged fence inside a block closes it and opens another.
        lang, body, margin = (tag, [], _indent(line)) if tag else (None, [], 0)
    if lang is not None:
        blocks.append(_block(lang, body, margin))
    return [b for b in blocks if b.code.strip()], "\n".join(outside)


def _block(lang: str, body: list[str], margin: int) -> _Block:
    raw = "\n".join(ln[min(margin, _indent(ln)) :] for ln in body).strip("\n")
    return _Block(lang, _dedent(body), raw)


def _dedent(lines: list[str]) -> str:
    return textwrap.dedent("\n".join(lines)).strip("\n")


def _from_blocks(
    blocks: list[_Block], prompt: str, entry_point: str | None
) -> tuple[str | None, bool]:
    """The code from fenced blocks, and whether it continues the prompt's function."""
    python = [b for b in blocks if b.lang in _PYTHON_TAGS] or blocks
    code_blocks = [b for b in python if not _is_usage_only(b.code)] or python
    defining = [i for i, b in enumerate(code_blocks) if _defines(b.code, entry_point)]
    if defining:
        # Several blocks defining the function are usually a draft and a corrected version:
        # keep the last, with the other blocks that define something (imports, helpers), in
        # order; example usage and program output would only break the program.
        last = defining[-1]
        keep = [
            b.code
            for i, b in enumerate(code_blocks)
            if i == last or (i not in defining and _has_definition(b.code))
        ]
        return "\n\n".join(keep), False
    first = code_blocks[0].raw
    if _continues_prompt(first, prompt, entry_point):
        return _function_body(first), True
    if _is_bare_body(first) and _defines(prompt, entry_point):
        # A body written flush left ("return x" on its own): indent it under the signature.
        return _function_body(textwrap.indent(first, "    ")), True
    return "\n\n".join(b.code for b in code_blocks), False


def _from_bare_text(text: str, prompt: str, entry_point: str | None) -> tuple[str | None, bool]:
    """The code in text without fences, and whether it continues the prompt's function."""
    lines = text.splitlines()
    target = None
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        match = _TOP_DEF_RE.match(stripped)
        if match and (entry_point is None or match.group(1) == entry_point):
            target = i
            break
    if target is None and entry_point is not None and _continues_prompt(text, prompt, entry_point):
        return _function_body(text), True
    if target is None:
        # No definition of the entry point: the first region that starts like code, if any.
        target = next((i for i, ln in enumerate(lines) if _HEAD_RE.match(ln.lstrip())), None)
        if target is None:
            return None, False
    return _region(lines, target), False


def _region(lines: list[str], anchor: int) -> str:
    """The code region around line `anchor`: back over the contiguous code lines before it,
    forward through its indented body and any top-level definitions that follow."""
    indent = _indent(lines[anchor])
    start = anchor
    while start > 0 and _is_code_line(lines[start - 1], indent):
        start -= 1
    # The region starts at its first definition-like line, not at blank lines or comments.
    while (
        start < anchor
        and not _HEAD_RE.match(lines[start][indent:])
        and not (
            _CODE_LINE_RE.match(lines[start][indent:]) and not lines[start][indent:].startswith("#")
        )
    ):
        start += 1
    end = anchor + 1
    while end < len(lines):
        line = lines[end]
        if not line.strip() or _indent(line) > indent:
            end += 1
            continue
        head = line[indent:]
        if _indent(line) == indent and (_HEAD_RE.match(head) or head.startswith("#")):
            end += 1  # a helper defined after the function, or a comment between definitions
            continue
        break
    return _dedent(lines[start:end])


def _is_code_line(line: str, indent: int) -> bool:
    if not line.strip():
        return True
    if _indent(line) > indent:
        return True
    return _indent(line) == indent and bool(_CODE_LINE_RE.match(line[indent:]))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _defines(code: str, entry_point: str | None) -> bool:
    """Whether `code` defines `entry_point` (any top-level function when it is None)."""
    for line in code.splitlines():
        match = _TOP_DEF_RE.match(line.lstrip())
        if match and (entry_point is None or match.group(1) == entry_point):
            return True
    return False


def _has_definition(code: str) -> bool:
    """Whether a block imports or defines anything at top level."""
    return any(_HEAD_RE.match(line) for line in code.splitlines())


def _is_usage_only(code: str) -> bool:
    """Whether a block only exercises code (asserts, prints, calls, a doctest session) and
    defines nothing."""
    tops = [ln for ln in code.splitlines() if ln.strip() and not ln.startswith((" ", "\t", "#"))]
    if not tops or _has_definition(code):
        return False  # an indented fragment (a function body) or a definition: not usage
    if tops[0].startswith(">>>"):
        return True  # a doctest session: the lines between prompts are its printed output
    return all(_USAGE_RE.match(ln) for ln in tops)


def _continues_prompt(text: str, prompt: str, entry_point: str | None) -> bool:
    """Whether `text` reads as the body of the prompt's `entry_point` (a completion)."""
    if entry_point is None or not _defines(prompt, entry_point):
        return False
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    return first.startswith((" ", "\t"))


def _is_bare_body(code: str) -> bool:
    """Whether a block is a function body written without indentation: it returns at top level
    and defines nothing."""
    lines = code.splitlines()
    return any(re.match(r"return\b", ln) for ln in lines) and not _has_definition(code)


def _function_body(text: str) -> str:
    """The function body at the head of `text`, through any top-level definitions right after
    it; trailing prose or test code (a base model rambling on) is cut."""
    lines = text.splitlines()
    end = 0
    while end < len(lines):
        line = lines[end]
        if not line.strip() or line.startswith((" ", "\t")):
            end += 1
            continue
        if _HEAD_RE.match(line) and not line.startswith(("def check", "def test")):
            end += 1
            continue
        break
    body = "\n".join(lines[:end]).rstrip()
    return body + "\n"


def _with_prompt_context(code: str, prompt: str, entry_point: str | None) -> str:
    """`code` preceded by the prompt's imports and helper functions that it uses but lacks."""
    imports, helpers = _prompt_context(prompt, entry_point)
    bound = _bound_names(code)
    used = set(_IDENT_RE.findall(code))
    # Helpers first, so that the imports the helpers need are found too.
    added_helpers = [src for name, src in helpers if name in used and name not in bound]
    for src in added_helpers:
        used |= set(_IDENT_RE.findall(src))
    added_imports = [
        src for names, src in imports if any(n in used and n not in bound for n in names)
    ]
    head = "\n".join(added_imports) + "\n\n" if added_imports else ""
    head += "".join(src.rstrip("\n") + "\n\n\n" for src in added_helpers)
    return head + code


def _prompt_context(
    prompt: str, entry_point: str | None
) -> tuple[list[tuple[list[str], str]], list[tuple[str, str]]]:
    """The prompt's top-level imports (names bound, source) and helper definitions (name,
    source), other than `entry_point` itself."""
    try:
        tree = ast.parse(prompt)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # Prose prompts (MBPP) do not parse: keep only the import lines they might carry.
        lines = [ln.strip() for ln in prompt.splitlines() if _IMPORT_RE.match(ln)]
        return [(_import_names(ln), ln) for ln in lines], []
    imports: list[tuple[list[str], str]] = []
    helpers: list[tuple[str, str]] = []
    for node in tree.body:
        source = ast.get_source_segment(prompt, node) or ""
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [(a.asname or a.name).split(".")[0] for a in node.names]
            imports.append((names, source))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == entry_point:
                continue
            decorators = [ast.get_source_segment(prompt, d) or "" for d in node.decorator_list]
            source = "".join(f"@{d}\n" for d in decorators) + source
            helpers.append((node.name, source))
    return imports, helpers


def _import_names(line: str) -> list[str]:
    """Names an import line binds, read without parsing the rest of the file."""
    try:
        tree = ast.parse(line)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # not an import after all (or a null byte): it binds nothing
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names += [(a.asname or a.name).split(".")[0] for a in node.names]
    return names


def _bound_names(code: str) -> set[str]:
    """Names the code defines or imports at top level, read line by line so that code with a
    syntax error still counts."""
    bound: set[str] = set()
    for line in code.splitlines():
        match = _TOP_DEF_RE.match(line) or _TOP_CLASS_RE.match(line)
        if match:
            bound.add(match.group(1))
        elif _IMPORT_RE.match(line):
            bound.update(_import_names(line.strip()))
        elif (assign := re.match(r"^([A-Za-z_]\w*)[ \t]*(?::[^=\n]+)?=[^=]", line)) is not None:
            bound.add(assign.group(1))
    return bound
