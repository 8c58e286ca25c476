"""How the sample browser shows a sample: control characters made inert, code highlighted,
the answer and the verdict as text."""

from __future__ import annotations

from rich.text import Text
from textual.content import Content
from textual.highlight import highlight

from troop.engine.storage.rows import StoredProblem, StoredVerdict
from troop.verifiers.base import credit_label
from troop.verifiers.extract import extract_code

# C0 controls (bar newline and tab), DEL and C1 controls become visible stand-ins, so an escape
# sequence (CSI, OSC, ...) a model wrote shows as text (␛[2J) and can never reach the terminal.
_CONTROLS = {c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)}
_CONTROLS |= {0x7F: "\u2421"} | {c: f"\\x{c:02x}" for c in range(0x80, 0xA0)}
# Bidirectional overrides and isolates could reorder what is shown; line separators break lines.
_CONTROLS |= {c: f"<U+{c:04X}>" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
_CONTROLS |= {0x2028: "\n", 0x2029: "\n"}


def inert(text: str) -> str:
    """`text` made harmless to display: every control character becomes a visible stand-in.
    Pair it with rich Text or Textual Content, never markup, so brackets stay brackets."""
    return text.translate(_CONTROLS)


def highlighted(text: str, code: bool, markdown: bool = False) -> Content:
    """A sample's text for display: code highlighted with the theme's colours, prose as is."""
    if not code:
        return Content(text)  # the constructor never parses markup
    # Chat models fence their code in prose: markdown highlights both; bare code is Python.
    # Textual's highlighter styles tokens with the theme's variables, never markup.
    return highlight(text, language="markdown" if markdown and "```" in text else "python")


def extracted_code(text: str, problem: StoredProblem | None) -> str | None:
    """The code python-tests would run from `text`; None without a problem to read."""
    if problem is None:
        return None
    try:
        code: str | None = extract_code(
            text, problem.record.prompt or "", problem.record.entry_point
        )
        return code
    except Exception as exc:  # an extraction bug must not close the browser
        return f"# extraction failed: {exc!r}"


def answer_text(verdict: StoredVerdict | None, problem: StoredProblem | None) -> Text:
    """The answer a verifier read from the sample, and the expected one."""
    extra = verdict.extra if verdict else {}
    expected = extra.get("expected", (problem.record.answer if problem else None))
    lines = [f"answer:   {extra['answer']}" if "answer" in extra else "answer:   (none)"]
    if expected is not None:
        lines.append(f"expected: {expected}")
    return Text(inert("\n".join(lines)))


def verdict_text(verdict: StoredVerdict | None) -> Text:
    """A verdict as the browser shows it: status, detail, credit, time, tier, output."""
    if verdict is None:
        return Text("not verified (yet) by the session's verifier")
    head = f"{verdict.status} · {verdict.detail}\n"
    credit = credit_label(verdict.extra)
    head += f"{credit} · " if credit else ""
    head += f"{verdict.duration_s:.2f} s · sandbox {verdict.tier or '-'}\n\n"
    body = verdict.output + ("\n… (output cut at the cap)" if verdict.truncated else "")
    return Text(inert(head + body))
