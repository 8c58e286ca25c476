"""Problem sets from tables: real Parquet and CSV files, a real saved dataset, hf:NAME:SPLIT
from a local dataset offline, --fields, bad input as one line, and sampling from them."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import troop
from tests.test_cli import one_line_error
from tests.test_problems import GSM8K, HUMANEVAL, MATH, MBPP, write_jsonl
from troop.engine.formats.loading import load_problem_set
from troop.engine.formats.tables import parse_fields
from troop.errors import ProblemSetError

GSM8K_ROWS = [
    GSM8K,
    {
        "question": "Ann has 12 pens and gives away 5. How many are left?",
        "answer": "12 - 5 = 7\n#### 7",
    },
    {"question": "What is 2 + 2?", "answer": "#### 4"},
]


def write_parquet(path: Path, rows: list[dict[str, object]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_parquet_reads_as_the_same_jsonl_would(tmp_path: Path) -> None:
    for rows in (GSM8K_ROWS, [MATH], [HUMANEVAL], [MBPP]):
        table = load_problem_set(str(write_parquet(tmp_path / "p.parquet", rows)))
        lines = load_problem_set(str(write_jsonl(tmp_path / "p.jsonl", rows)))
        assert table.format == lines.format
        assert table.digest == lines.digest  # the same problems, whatever the container
        assert table.problems[0].source == f"{tmp_path / 'p.parquet'} row 0"
    assert load_problem_set(str(tmp_path / "p.parquet")).problems[0].test_list == tuple(
        MBPP["test_list"]
    )  # a Parquet list column stays a list


def test_csv_reads_answer_problems(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "gsm8k.csv", GSM8K_ROWS)
    pset = load_problem_set(str(path), limit=2)
    assert pset.format == "gsm8k" and [p.answer for p in pset.problems] == ["7", "7"]
    assert (
        pset.digest
        == load_problem_set(str(write_jsonl(tmp_path / "g.jsonl", GSM8K_ROWS)), limit=2).digest
    )


def test_saved_dataset_folders_and_their_splits(tmp_path: Path) -> None:
    datasets.Dataset.from_list(GSM8K_ROWS).save_to_disk(str(tmp_path / "gsm8k"))
    pset = load_problem_set(str(tmp_path / "gsm8k"))
    assert pset.format == "gsm8k" and len(pset.problems) == 3
    assert "saved dataset" in pset.source
    splits = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(GSM8K_ROWS[:2]),
            "test": datasets.Dataset.from_list(GSM8K_ROWS[2:]),
        }
    )
    splits.save_to_disk(str(tmp_path / "both"))
    with pytest.raises(ProblemSetError, match="splits train, test: name one"):
        load_problem_set(str(tmp_path / "both"))
    assert len(load_problem_set(str(tmp_path / "both" / "test")).problems) == 1


def test_hub_names_load_through_datasets_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # hf:NAME:SPLIT is datasets.load_dataset(NAME, split=SPLIT); a local dataset folder
    # stands for a Hub name here, with the network off and the cache in the test's folder.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    data = tmp_path / "hub" / "data"
    data.mkdir(parents=True)
    write_parquet(data / "test-00000-of-00001.parquet", GSM8K_ROWS)
    pset = load_problem_set(f"hf:{tmp_path / 'hub'}:test")
    assert pset.format == "gsm8k" and len(pset.problems) == 3
    assert pset.problems[1].source == f"hf:{tmp_path / 'hub'}:test row 1"
    with pytest.raises(ProblemSetError, match="cannot load"):
        load_problem_set(f"hf:{tmp_path / 'hub'}:no_such_split")
    with pytest.raises(ProblemSetError, match="hf:NAME:SPLIT"):
        load_problem_set("hf:just-a-name")


def test_fields_map_columns_named_otherwise(tmp_path: Path) -> None:
    # Columns problem and solution read as MATH; mapped, they are GSM8K's question and answer.
    rows = [{"problem": r["question"], "solution": r["answer"]} for r in GSM8K_ROWS]
    path = write_parquet(tmp_path / "renamed.parquet", rows)
    with pytest.raises(ProblemSetError, match="row 0: MATH solution has no"):
        load_problem_set(str(path))
    fields = parse_fields("question=problem,answer=solution")
    pset = load_problem_set(str(path), fields=fields)
    assert pset.format == "gsm8k" and [p.answer for p in pset.problems] == ["7", "7", "4"]
    assert pset.fields == (("question", "problem"), ("answer", "solution"))
    with pytest.raises(ProblemSetError, match="row 0: --fields names column 'query'"):
        load_problem_set(str(path), fields={"question": "query"})
    with pytest.raises(ProblemSetError, match="bad --fields"):
        parse_fields("question")


@pytest.mark.parametrize(
    ("rows", "suffix", "fragment"),
    [
        ([GSM8K, {**GSM8K, "answer": None}], "parquet", "row 1: field 'answer' must be a string"),
        ([GSM8K, {**GSM8K, "answer": "7"}], "parquet", "row 1: GSM8K answer has no '####"),
        ([MBPP, {**MBPP, "task_id": None}], "parquet", "row 1: field 'task_id' must not be null"),
        ([{**MBPP, "test_list": "assert f()"}], "csv", "row 0: field 'test_list' must be a"),
        (
            [{**GSM8K, "id": "a"}, {**GSM8K, "id": "b"}, {**GSM8K, "id": "a"}],
            "csv",
            "row 2: duplicate id 'a' (first on row 0)",
        ),
        ([{"input": "x", "label": "y"}], "parquet", "row 0: unrecognised fields"),
    ],
)
def test_bad_rows_name_file_row_and_field(
    tmp_path: Path, rows: list[dict[str, object]], suffix: str, fragment: str
) -> None:
    path = tmp_path / f"bad.{suffix}"
    if suffix == "csv":
        write_csv(path, [{k: str(v) for k, v in r.items()} for r in rows])
    else:
        write_parquet(path, rows)
    with pytest.raises(ProblemSetError) as info:
        load_problem_set(str(path))
    message = str(info.value)
    assert message.startswith(f"{path} row ") and fragment in message, message


def test_unreadable_tables_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "empty.csv").write_text("question,answer\n")
    (tmp_path / "folder").mkdir()
    for spec, fragment in (
        ("junk.parquet", "not a readable Parquet file"),
        ("empty.csv", "no problems"),
        ("folder", "not a dataset folder"),
        ("missing.parquet", "no such file"),
    ):
        with pytest.raises(ProblemSetError, match=fragment):
            load_problem_set(str(tmp_path / spec))


def test_a_bad_table_stops_the_run_before_a_session_exists(
    tmp_path: Path, sessions_home: Path
) -> None:
    path = write_parquet(tmp_path / "bad.parquet", [GSM8K, {**GSM8K, "answer": None}])
    one_line_error(troop("run", "--headless", "--problems", str(path)), f"{path} row 1", "'answer'")
    one_line_error(troop("run", "--headless", "--problems", str(path), "--fields", "x"), "--fields")
    assert not sessions_home.exists() or not any(sessions_home.iterdir())


# --- sampling from them, end to end -----------------------------------------------------------


def _run_and_count(problems: str, tmp_path: Path, name: str, *extra: str) -> dict[str, Any]:
    path = tmp_path / f"{name}.sqlite"
    env_note = os.environ.get("TROOP_CPU_EXTRA_BUFFERS")  # set by whoever runs the model
    out = troop(
        "run",
        "--headless",
        "--problems",
        problems,
        "--samples",
        "2",
        "--parallel",
        "2",
        "--max-tokens",
        "24",
        "--session",
        str(path),
        *extra,
    )
    assert out.returncode == 0, (env_note, out.stderr)
    shown = json.loads(troop("show", str(path)).stdout)
    with sqlite3.connect(path) as conn:
        verdicts = conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
    return {"shown": shown, "verdicts": verdicts}


@pytest.mark.model
def test_sampling_from_parquet_and_a_saved_dataset(tmp_path: Path) -> None:
    parquet = write_parquet(tmp_path / "gsm8k.parquet", GSM8K_ROWS[:2])
    done = _run_and_count(str(parquet), tmp_path, "parquet")
    assert done["shown"]["samples_stored"] == 4 and done["verdicts"] == 4
    assert done["shown"]["config"]["problem_set"]["format"] == "gsm8k"

    rows = [{"problem": r["question"], "solution": r["answer"]} for r in GSM8K_ROWS[:2]]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    done = _run_and_count(
        str(tmp_path / "saved"), tmp_path, "saved", "--fields", "question=problem,answer=solution"
    )
    problem_set = done["shown"]["config"]["problem_set"]
    assert problem_set["fields"] == {"question": "problem", "answer": "solution"}
    assert done["shown"]["samples_stored"] == 4 and done["verdicts"] == 4
    # Resuming with a larger budget reads the folder again through the stored mapping.
    again = _run_and_count(str(tmp_path / "saved"), tmp_path, "saved", "--samples", "3")
    assert again["shown"]["samples_stored"] == 6
    one_line_error(
        troop(
            "run",
            "--headless",
            "--session",
            str(tmp_path / "saved.sqlite"),
            "--fields",
            "question=problem",
        ),
        "--fields question=problem,answer=solution, not question=problem",
    )
