"""The neutral building blocks of a report, rendered alike to HTML and Markdown."""

# A report is built once as a list of blocks; html.py and markdown.py only lay them out, so
# both formats hold the same content. Every text here is plain (unescaped): the renderers
# escape it for their own syntax, because sample text and problem ids are untrusted.

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Heading:
    """A section title."""

    level: int  # 1 (document title) to 4
    text: str  # plain text

    @property
    def anchor(self) -> str:
        """A stable id for links to this section."""
        return re.sub(r"[^a-z0-9]+", "-", self.text.lower()).strip("-") or "section"


@dataclass(frozen=True)
class Para:
    """A paragraph of plain text."""

    text: str  # plain text; no markup is interpreted
    note: bool = False  # True: a side remark (smaller, muted in HTML; italic in Markdown)


@dataclass(frozen=True)
class Table:
    """A table of already formatted cells."""

    columns: tuple[str, ...]  # header cells
    rows: tuple[tuple[str, ...], ...]  # body cells, each row as long as `columns`
    numeric: tuple[bool, ...] = ()  # per column: right-align (numbers); empty means none
    caption: str = ""  # one line shown above the table


@dataclass(frozen=True)
class Image:
    """A matplotlib figure."""

    stem: str  # file name stem for Markdown's image files (lower-case, dashes)
    png: bytes  # the figure as PNG
    alt: str  # what the figure shows, for readers who cannot see it
    caption: str  # one or two sentences under the figure


@dataclass(frozen=True)
class Code:
    """A verbatim block: a sample's text or a verifier's output."""

    text: str  # shown exactly, never interpreted
    label: str  # a short line above the block


Block = Heading | Para | Table | Image | Code


@dataclass
class Document:
    """A whole report: its blocks and the machine-readable data it was made from."""

    title: str  # the document title
    blocks: list[Block] = field(default_factory=list)  # in reading order
    data: dict[str, Any] = field(default_factory=dict)  # the analysis' (or comparison's) to_json()

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)
