"""A report document as GitHub-flavoured Markdown, its figures as PNG files beside it."""

# Text is escaped so that what a model wrote can never become a link, an image, HTML or a
# table break once pasted into a pull request; sample text goes in fenced blocks whose fence is
# longer than any backtick run inside, so nothing can close it early.

from __future__ import annotations

import re
from urllib.parse import quote

from troop.reports.atomic import asset_name
from troop.reports.blocks import Code, Document, Heading, Image, Para, Table

# CommonMark lets any ASCII punctuation be backslash-escaped. Escaped anywhere: what can open
# emphasis, code, HTML, entities or a table cell; a `]` that a link or image would continue
# (`](`, `][`); an `_` at a word's edge (inside a word, as in Q4_1, it is plain text in GFM).
_INLINE = re.compile(r"([\\`*<>|~&]|\](?=[(\[])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
# ...and these only at the start of a line (headings, lists, quotes, rules, link definitions).
# (escape() has already removed leading spaces.)
_LINE_START = re.compile(r"^()([#>+=\[-])|^(\d+)([.)])(?=\s|$)")


def escape(text: str, *, line_start: bool = True) -> str:
    """Plain text as Markdown that renders as exactly that text, on one line (`line_start`:
    the text begins a line, so a leading `#`, `-` or `1.` must not start a block)."""
    text = " ".join(text.split())
    text = _INLINE.sub(r"\\\1", text)
    if not line_start:
        return text
    return _LINE_START.sub(
        lambda m: f"{m.group(1) or m.group(3) or ''}\\{m.group(2) or m.group(4)}", text
    )


def _cell(text: str) -> str:
    return escape(text, line_start=False) or " "


def _table(t: Table) -> list[str]:
    numeric = t.numeric or (False,) * len(t.columns)
    lines = [f"**{escape(t.caption)}**", ""] if t.caption else []
    lines.append("| " + " | ".join(_cell(c) for c in t.columns) + " |")
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    for row in t.rows:
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return [*lines, ""]


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render(doc: Document, assets_folder: str) -> tuple[str, dict[str, bytes]]:
    """The Markdown text and its image files ({file name: PNG bytes}); images are linked as
    `assets_folder/NAME`, relative to the Markdown file."""
    out: list[str] = []
    assets: dict[str, bytes] = {}
    for block in doc.blocks:
        if isinstance(block, Heading):
            out += ["#" * min(max(block.level, 1), 4) + " " + escape(block.text), ""]
        elif isinstance(block, Para):
            text = escape(block.text)
            out += [f"*{text}*" if block.note else text, ""]
        elif isinstance(block, Table):
            out += _table(block)
        elif isinstance(block, Image):
            name = asset_name(block.stem, block.png, "png")
            assets[name] = block.png
            link = quote(f"{assets_folder}/{name}")
            out += [f"![{escape(block.alt)}]({link})", "", f"*{escape(block.caption)}*", ""]
        elif isinstance(block, Code):
            fence = _fence(block.text)
            out += [
                f"{escape(block.label)}:",
                "",
                f"{fence}text",
                block.text.rstrip("\n"),
                fence,
                "",
            ]
    return "\n".join(out).rstrip("\n") + "\n", assets
