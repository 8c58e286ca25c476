"""The session's configuration, verdicts and browsing index read as typed records: the stored
JSON written back key for key, whatever troop wrote the file."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from troop.engine.events import SampleRecord
from troop.engine.storage.config import ModelIdentity, SessionConfig
from troop.engine.storage.rows import ProblemRecord, StoredProblem
from troop.engine.storage.session import Session
from troop.engine.storage.session import tests_digest as digest_of
from troop.verifiers.base import Status, Verdict

GOLDEN = Path(__file__).parent / "data" / "golden"


def _stored_config(path: Path) -> str:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        text: str = conn.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0]
    return text


@pytest.mark.parametrize("name", ["arith.sqlite", "he.sqlite"])
def test_the_golden_sessions_configuration_is_written_back_byte_for_byte(name: str) -> None:
    text = _stored_config(GOLDEN / name)
    config = SessionConfig.from_json(json.loads(text))
    assert json.dumps(config.to_json()) == text
    assert config.backend is None and config.backend_name == "llamacpp"
    assert config.model.name == "smollm2-135m" and config.model.n_layer == 30
    assert config.seed == 0 and config.sampling.top_k == 40
    assert config.prompt_format.kind == "chat" and config.prompt_format.requested == "auto"


# Shapes older troops and hand-made files hold: no kv_bytes_per_token (the first version), a
# served model, a bare name, a problem set read through --fields, keys no troop writes, values
# of a type the reader does not expect, parts missing or null.
OLD_AND_ODD: list[Any] = [
    {
        "model": {"name": "m", "path": "/m.gguf", "sha256": "ab", "n_params": 1, "n_layer": 2},
        "prompt_format": {"kind": "raw", "template": None, "requested": "raw"},
        "problem_set": {"name": "x.jsonl", "format": "gsm8k", "source": "x.jsonl"},
        "sampling": {"temperatures": [0.6, 1], "top_k": 0, "top_p": 1, "min_p": 0.0},
        "seed": 7,
    },
    {
        "backend": {"name": "openai", "base_url": "http://h/v1", "model": "m", "api": "chat"},
        "model": {
            "name": "m",
            "path": None,
            "sha256": None,
            "server": "http://h/v1",
            "owned_by": None,
        },
        "prompt_format": {"kind": "chat", "template": None, "requested": "auto"},
        "problem_set": {"name": "p", "format": "math", "source": "s", "fields": {"q": "problem"}},
        "sampling": {"max_tokens": 8, "temperatures": [0.8], "top_k": 40},
        "seed": 0,
    },
    {"seed": "seven", "model": {"name": "served-model", "n_layer": "30"}, "future": [1, {"a": 2}]},
    {"backend": None, "model": {}, "sampling": {"temperatures": ["hot"]}},
    {},
]


@pytest.mark.parametrize("stored", OLD_AND_ODD)
def test_older_and_hand_made_configurations_are_written_back_exactly(stored: Any) -> None:
    config = SessionConfig.from_json(json.loads(json.dumps(stored)))
    assert json.dumps(config.to_json()) == json.dumps(stored)


def test_reading_is_tolerant_and_typed() -> None:
    served = SessionConfig.from_json(OLD_AND_ODD[1])
    assert served.backend_name == "openai" and served.sampled_by.api == "chat"
    assert served.problem_set.field_map() == {"q": "problem"}
    odd = SessionConfig.from_json(OLD_AND_ODD[2])
    assert odd.seed is None and odd.model.n_layer is None  # the wrong type reads None
    assert odd.sampling.temperatures is None and odd.prompt_format.kind is None
    assert odd.sampled_by.to_json() == {"name": "llamacpp"}  # as the analysis shows it
    assert SessionConfig.from_json(None).to_json() == {}  # a file without a configuration


def test_new_records_are_written_in_the_order_troop_writes() -> None:
    served = ModelIdentity(name="m", server="http://h/v1", owned_by="org")
    assert list(served.to_json()) == ["name", "path", "sha256", "server", "owned_by"]
    gguf = ModelIdentity(name="m", path="/m.gguf", sha256="ab", n_layer=2)
    assert list(gguf.to_json())[:4] == ["name", "path", "file_bytes", "sha256"]
    assert list(gguf.to_json())[-1] == "kv_bytes_per_token"


def test_a_problem_record_reads_what_the_engine_uses_and_keeps_the_rest() -> None:
    data = {"id": "p1", "format": "gsm8k", "answer": "42", "test_list": ["a", 3], "pattern": "x"}
    problem = StoredProblem("p1", 0, "gsm8k", "Q", 3, (), data)
    assert problem.record == ProblemRecord(
        id="p1",
        format="gsm8k",
        prompt=None,
        answer="42",
        entry_point=None,
        test=None,
        test_list=("a",),
        reference=None,
        source=None,
    )
    assert problem.data["pattern"] == "x"  # verifiers still get every stored key


def _sample(problem_id: str, index: int, temperature: float) -> SampleRecord:
    return SampleRecord(
        problem_id, index, index, temperature, 40, 0.95, 0.0, 8, "42", (1,), 3, "eos", None, 0.1,
        -1.0, 1,
    )  # fmt: skip


def test_verdict_rows_and_the_sample_index_are_typed(tmp_path: Path) -> None:
    data = {"id": "p1", "answer": "42"}
    with Session.create(tmp_path / "s.troop", {"config": {}, "budget": 2}) as s:
        s.add_problems([StoredProblem("p1", 0, "gsm8k", "Q", 3, (), data)])
        s.begin_run({})
        s.add_sample(_sample("p1", 0, 0.6))
        s.add_sample(_sample("p1", 1, 1.0))
        verdict = Verdict(Status.PASS, "exact", "1", 0.5, "out", True, "ok", "bwrap", {"key": "42"})
        s.add_verdict("p1", 0, digest_of(data), verdict)
        s.add_verdict("p1", 1, "an older digest", verdict)  # judged against other tests
        rows = s.current_verdicts("exact", "1")
        assert list(rows) == [("p1", 0)]
        row = rows[("p1", 0)]
        assert (row.status, row.truncated, row.tier, row.extra) == (
            "pass",
            True,
            "bwrap",
            {"key": "42"},
        )
        assert s.current_statuses("exact", "1") == {("p1", 0): "pass"}
        assert s.current_verdicts("exact", "1", "p1", 1) == {}
        listed = s.sample_list()
        assert [(e.key, e.temperature) for e in listed] == [(("p1", 0), 0.6), (("p1", 1), 1.0)]
