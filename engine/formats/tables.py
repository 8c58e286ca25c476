"""Problem records from tables (Parquet, CSV, saved and Hugging Face datasets) and the --fields
mapping of their columns to the fields troop reads."""

from __future__ import annotations

import csv
import importlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from troop.errors import ProblemSetError

#: How a table's records are named in messages: "FILE row N", N counting from 0 as
#: `datasets` and pandas index them.
ROW = "{shown} row {index}"
_INSTALL = "pip install 'troop[datasets]'"


def parse_fields(text: str) -> dict[str, str]:
    """`question=problem,answer=solution` as {troop's field: the data's column}."""
    out: dict[str, str] = {}
    for pair in text.split(","):
        field, _, column = (part.strip() for part in pair.partition("="))
        if not field or not column or field in out:
            raise ProblemSetError(
                f"bad --fields {text!r}",
                hint="use FIELD=COLUMN[,FIELD=COLUMN...], e.g. question=problem,answer=solution",
            )
        out[field] = column
    return out


def mapped(
    rows: Iterable[tuple[str, str, Any]], fields: dict[str, str], shown: str
) -> Iterator[tuple[str, str, Any]]:
    """The records with each mapped column renamed to troop's field (`fields`: field to
    column); the first record missing a mapped column is an error naming it."""
    for where, label, record in rows:
        if fields and isinstance(record, dict):
            missing = [c for c in fields.values() if c not in record]
            if missing:
                raise ProblemSetError(
                    f"{where}: --fields names column {missing[0]!r}, which the data lacks",
                    hint=f"its columns: {', '.join(map(str, record))}",
                )
            renamed = {k: v for k, v in record.items() if k not in fields.values()}
            renamed.update({field: record[column] for field, column in fields.items()})
            record = renamed
        yield where, label, record


def is_table(spec: str, path: Path) -> bool:
    """Whether `spec` names a table source rather than a JSONL file or a built-in set."""
    return spec.startswith("hf:") or path.is_dir() or path.suffix.lower() in (".parquet", ".csv")


def read_table(spec: str, path: Path) -> tuple[str, Iterator[tuple[str, str, Any]]]:
    """A description of the source and its records, each with the words that name its row.
    Nothing is parsed as a problem here: that is problems.py's business, row by row."""
    if spec.startswith("hf:"):
        return _hub(spec)
    if not path.exists():
        raise ProblemSetError(f"{spec}: no such file or folder")
    if path.is_dir():
        return _saved(spec, path)
    if path.suffix.lower() == ".parquet":
        return _parquet(spec, path)
    return _csv(spec, path)


def _rows(shown: str, records: list[Any]) -> Iterator[tuple[str, str, Any]]:
    """Each record with the words that place it ("FILE row 3") and name it ("row 3")."""
    for index, record in enumerate(records):
        yield ROW.format(shown=shown, index=index), f"row {index}", record


def _module(name: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ProblemSetError(f"{what} needs the {name} package", hint=_INSTALL) from None


def _parquet(shown: str, path: Path) -> tuple[str, Iterator[tuple[str, str, Any]]]:
    _module("pyarrow", "reading Parquet")
    parquet = _module("pyarrow.parquet", "reading Parquet")
    try:
        table = parquet.read_table(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ProblemSetError(f"{shown}: not a readable Parquet file: {_first_line(exc)}") from None
    return f"Parquet file {path.resolve()}", _rows(shown, table.to_pylist())


def _csv(shown: str, path: Path) -> tuple[str, Iterator[tuple[str, str, Any]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            records = list(csv.DictReader(f))
    except UnicodeDecodeError as exc:
        raise ProblemSetError(f"{shown}: not valid UTF-8 (byte offset {exc.start})") from None
    except csv.Error as exc:
        raise ProblemSetError(f"{shown}: malformed CSV: {exc}") from None
    except OSError as exc:
        raise ProblemSetError(f"{shown}: cannot read: {exc.strerror}") from None
    # DictReader puts cells past the header under None: a row longer than its header.
    for index, record in enumerate(records):
        if None in record:
            raise ProblemSetError(
                f"{ROW.format(shown=shown, index=index)}: more cells than the header has columns"
            )
    return f"CSV file {path.resolve()}", _rows(shown, records)


def _saved(shown: str, path: Path) -> tuple[str, Iterator[tuple[str, str, Any]]]:
    datasets = _module("datasets", "reading a saved dataset folder")
    try:
        data = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise ProblemSetError(
            f"{shown}: not a dataset folder written by save_to_disk: {_first_line(exc)}",
            hint="a folder must hold one saved Dataset (or DatasetDict)",
        ) from None
    if isinstance(data, datasets.DatasetDict):
        splits = ", ".join(data)
        raise ProblemSetError(
            f"{shown}: a dataset with splits {splits}: name one",
            hint=f"--problems {Path(shown) / next(iter(data))}",
        )
    return f"saved dataset {path.resolve()}", _rows(shown, data.to_list())


def _hub(spec: str) -> tuple[str, Iterator[tuple[str, str, Any]]]:
    """hf:NAME:SPLIT or hf:NAME:CONFIG:SPLIT through `datasets.load_dataset`, which reads its
    local cache when the Hub cannot be reached (or HF_DATASETS_OFFLINE=1)."""
    parts = spec[3:].split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise ProblemSetError(
            f"bad problem set {spec!r}",
            hint="use hf:NAME:SPLIT or hf:NAME:CONFIG:SPLIT, e.g. hf:openai/gsm8k:main:test",
        )
    name, config, split = parts[0], (parts[1] if len(parts) == 3 else None), parts[-1]
    datasets = _module("datasets", f"{spec}")
    try:
        data = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # the library raises many kinds; all mean "cannot load"
        raise ProblemSetError(
            f"{spec}: cannot load: {type(exc).__name__}: {_first_line(exc)}",
            hint="offline, the dataset must be in the datasets cache (HF_DATASETS_OFFLINE=1 "
            "skips the network)",
        ) from None
    where = f"{name}" + (f" ({config})" if config else "") + f" split {split}"
    return f"Hugging Face dataset {where}, datasets {datasets.__version__}", _rows(
        spec, data.to_list()
    )


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__
