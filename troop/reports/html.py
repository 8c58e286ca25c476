"""A report document as one self-contained HTML file (inline CSS, images as data URIs)."""

# Every text is escaped with html.escape: sample text and problem ids come from a model or a
# problem file and must read as text, never as markup. A Content-Security-Policy forbids
# scripts and network fetches, as a second line of defence and so the file works offline.

from __future__ import annotations

import base64
import json
from html import escape
from typing import Any

from troop.reports.blocks import Code, Document, Heading, Image, Para, Table

DATA_ID = "troop-data"  # id of the <script type="application/json"> holding the analysis

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b;
       max-width: 1100px; margin: 2em auto; padding: 0 1.5em; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
nav { font-size: .9em; margin: 1em 0; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: .8em 0 1.2em; font-size: .9em; }
caption { text-align: left; font-weight: 600; padding-bottom: .3em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; vertical-align: top; text-align: left; }
th { background: #f2f2f2; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1em 0 1.5em; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: .88em; color: #444; margin-top: .3em; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: .6em; overflow-x: auto;
      white-space: pre-wrap; word-break: break-word; font-size: .82em; max-height: 28em; }
.label { font-size: .8em; color: #555; margin: .6em 0 0; }
p.note { font-size: .9em; color: #555; }
@media print {
  body { max-width: none; margin: 0; font-size: 11pt; }
  nav { display: none; }
  h2 { break-after: avoid; }
  figure, table { break-inside: avoid; }
  pre { max-height: none; }
}
"""

# No script may run and nothing may be fetched: images are data URIs, styles inline.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


def _table(t: Table) -> str:
    numeric = t.numeric or (False,) * len(t.columns)
    out = ["<table>"]
    if t.caption:
        out.append(f"<caption>{_e(t.caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in t.columns) + "</tr></thead>")
    out.append("<tbody>")
    for row in t.rows:
        cells = "".join(
            f'<td class="n">{_e(c)}</td>' if n else f"<td>{_e(c)}</td>"
            for c, n in zip(row, numeric, strict=True)
        )
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _image(img: Image) -> str:
    data = base64.b64encode(img.png).decode("ascii")
    return (
        f'<figure id="fig-{_e(img.stem)}"><img src="data:image/png;base64,{data}" '
        f'alt="{_e(img.alt)}"><figcaption>{_e(img.caption)}</figcaption></figure>'
    )


def embedded_json(data: dict[str, Any]) -> str:
    """The analysis as JSON that cannot end its <script> element early: <, > and & are
    written as \\u escapes, which JSON readers turn back into the same characters."""
    text = json.dumps(data, ensure_ascii=False, indent=1)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(doc: Document, generator: str) -> str:
    """The document as an HTML page."""
    body = []
    toc = [b for b in doc.blocks if isinstance(b, Heading) and b.level == 2]
    for block in doc.blocks:
        if isinstance(block, Heading):
            level = min(max(block.level, 1), 4)
            body.append(f'<h{level} id="{_e(block.anchor)}">{_e(block.text)}</h{level}>')
            if level == 1 and toc:
                links = "".join(f'<a href="#{_e(h.anchor)}">{_e(h.text)}</a>' for h in toc)
                body.append(f"<nav>{links}</nav>")
        elif isinstance(block, Para):
            cls = ' class="note"' if block.note else ""
            body.append(f"<p{cls}>{_e(block.text)}</p>")
        elif isinstance(block, Table):
            body.append(_table(block))
        elif isinstance(block, Image):
            body.append(_image(block))
        elif isinstance(block, Code):
            body.append(
                f'<p class="label">{_e(block.label)}</p><pre><code>{_e(block.text)}</code></pre>'
            )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        f'<meta name="generator" content="{_e(generator)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(doc.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + f'\n<script type="application/json" id="{DATA_ID}">\n{embedded_json(doc.data)}\n'
        "</script>\n</body>\n</html>\n"
    )
