"""Write reports: one session or a comparison, as HTML, Markdown, JSON or CSV (atomically)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from troop import __version__
from troop.engine.analytics.results import Analysis, Comparison
from troop.engine.storage.session import Session
from troop.errors import TroopError
from troop.reports import atomic, html, markdown, tables
from troop.reports.blocks import Document
from troop.reports.compare import comparison_document, labels
from troop.reports.document import session_document
from troop.reports.samples import failure_examples

FORMATS = ("html", "md", "json", "csv")
SUFFIX = {"html": ".html", "md": ".md", "json": ".json", "csv": ".csv"}
GENERATOR = f"troop {__version__}"
EXAMPLES_PER_KIND = 3  # failed samples quoted per verdict status


def default_path(sessions: list[Path], fmt: str) -> Path:
    """Where a report goes without -o: the current folder, named after the session(s)."""
    stem = "-vs-".join(p.stem for p in sessions[:3]) + ("-etc" if len(sessions) > 3 else "")
    return Path.cwd() / f"{stem}-report{SUFFIX[fmt]}"


def dumps(data: Analysis | Comparison) -> str:
    """The JSON text of an analysis or comparison, as `--format json` prints it."""
    return json.dumps(data.to_json(), indent=2, ensure_ascii=False) + "\n"


def _assets_folder(out: Path) -> Path:
    return out.with_name(f"{out.stem}_files")


def _csv_paths(out: Path) -> tuple[Path, Path]:
    base = out.with_suffix("") if out.suffix == ".csv" else out
    return (
        base.with_name(f"{base.name}-problems.csv"),
        base.with_name(f"{base.name}-coverage.csv"),
    )


def write_session_report(session: Session, analysis: Analysis, fmt: str, out: Path) -> list[Path]:
    """Write one session's report to `out` (and files beside it); returns every path written.
    `analysis` is `troop.engine.analytics.analysis.analyse(session, ...)`."""
    if fmt == "json":
        atomic.write_text(out, dumps(analysis))
        return [out]
    if fmt == "csv":
        problems, curve = _csv_paths(out)
        atomic.write_text(problems, tables.problems_csv(analysis))
        atomic.write_text(curve, tables.coverage_csv(analysis))
        return [problems, curve]
    doc = session_document(analysis, failure_examples(session, analysis, EXAMPLES_PER_KIND))
    return _write_document(doc, fmt, out)


def write_comparison_report(comparison: Comparison, fmt: str, out: Path) -> list[Path]:
    """Write a comparison (`troop.engine.analytics.analysis.compare`) report; returns the paths."""
    if fmt == "json":
        atomic.write_text(out, dumps(comparison))
        return [out]
    if fmt == "csv":
        problems, curve = _csv_paths(out)
        names = labels(comparison)
        atomic.write_text(problems, comparison_problems_csv(comparison, names))
        parts = [
            tables.coverage_csv(a, name).splitlines(keepends=True)
            for a, name in zip(comparison.analyses, names, strict=True)
        ]
        # One header (the first session's), then every session's rows.
        text = "".join(parts[0][:1] + [line for part in parts for line in part[1:]])
        atomic.write_text(curve, text)
        return [problems, curve]
    return _write_document(comparison_document(comparison, GENERATOR), fmt, out)


def comparison_problems_csv(comparison: Comparison, names: list[str]) -> str:
    """problem, then per session (as `names` calls it): n, correct, pass@1 and status."""
    by_id = [{p.problem_id: p for p in a.problems} for a in comparison.analyses]
    ids = list(dict.fromkeys(pid for d in by_id for pid in d))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["problem"]
        + [
            f"{name}: {field}"
            for name in names
            for field in ("n", "correct", "pass_at_1", "status")
        ]
    )
    for pid in ids:
        row: list[Any] = [pid]
        for d in by_id:
            p = d.get(pid)
            row += (
                ["", "", "", "absent"]
                if p is None
                else [p.n, p.correct, "" if p.pass_at_1 is None else p.pass_at_1, p.status]
            )
        writer.writerow(row)
    return buf.getvalue()


def _write_document(doc: Document, fmt: str, out: Path) -> list[Path]:
    if fmt == "html":
        atomic.write_text(out, html.render(doc, GENERATOR))
        return [out]
    if fmt == "md":
        folder = _assets_folder(out)
        text, assets = markdown.render(doc, folder.name)
        atomic.write_with_assets(out, text, folder, assets)
        return [out, *(folder / name for name in assets)]
    raise TroopError(f"unknown report format {fmt!r}", f"one of {', '.join(FORMATS)}")
