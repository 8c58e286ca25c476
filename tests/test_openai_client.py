"""The OpenAI-compatible client's pieces, and sessions drawn from a well-behaved server:
the requests it is sent, and the samples and events that come back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fault_server import MODEL, FaultServer, answer_text, tokens_of
from tests.openai_helpers import (
    fault_fixture,  # noqa: F401 - a fixture pytest finds by its name
    prompt_of,
    quick_retries_fixture,  # noqa: F401 - an autouse fixture
    rows,
    run,
    settings,
)
from troop.engine.backends.openai_backend import UNKNOWN_TOKEN
from troop.engine.backends.openai_client import (
    AttemptFailed,
    ServerOptions,
    normalize_base_url,
    sse_data,
)
from troop.engine.control import RunControl
from troop.engine.events import (
    PromptEvaluated,
    Recorder,
    RunFinished,
    SampleFinished,
    SampleStarted,
    TokensDecoded,
)
from troop.engine.storage.session import Session
from troop.engine.work import sample_seed
from troop.errors import TroopError

# -- pieces ---------------------------------------------------------------------------------


def test_base_urls_are_normalized_and_bad_ones_refused() -> None:
    assert normalize_base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080/v1"
    assert normalize_base_url("http://127.0.0.1:8080/v1/") == "http://127.0.0.1:8080/v1"
    assert normalize_base_url("https://x.example/openai/v1") == "https://x.example/openai/v1"
    for bad in ("127.0.0.1:8080", "ftp://host/v1", "http://", "http://h:port/v1", "http://h/?a=1"):
        with pytest.raises(TroopError):
            normalize_base_url(bad)


def test_client_tuning_comes_from_the_environment() -> None:
    o = ServerOptions.from_env(
        {"TROOP_SERVER_TIMEOUT": "5", "TROOP_SERVER_RETRIES": "2", "TROOP_SERVER_BACKOFF": "0.5"}
    )
    assert (o.read_timeout, o.connect_timeout, o.retries, o.backoff) == (5, 5, 2, 0.5)
    assert ServerOptions.from_env({}) == ServerOptions()
    assert o.delay(0, retry_after=3.0) == 3.0 and 0.25 <= o.delay(0, None) <= 0.5
    assert o.delay(10, None) <= o.backoff_max
    for bad in ("soon", "-1", "nan"):
        with pytest.raises(TroopError, match="TROOP_SERVER_RETRIES"):
            ServerOptions.from_env({"TROOP_SERVER_RETRIES": bad})


def test_sse_parsing_joins_data_lines_and_skips_comments() -> None:
    async def lines(items: list[str]) -> AsyncIterator[str]:
        for item in items:
            yield item

    async def collect(items: list[str]) -> list[str]:
        return [d async for d in sse_data(lines(items))]

    got = asyncio.run(
        collect(
            [
                ": ping",
                "",
                "event: message",
                'data: {"a":',
                "data: 1}",
                "",
                "id: 7",
                "data:[DONE]",
                "",
            ]
        )
    )
    assert got == ['{"a":\n1}', "[DONE]"]
    with pytest.raises(AttemptFailed, match="malformed"):
        asyncio.run(collect(["nonsense line", ""]))


# -- a well-behaved server ------------------------------------------------------------------


def test_samples_events_and_records_from_a_server(tmp_path: Path, fault: FaultServer) -> None:
    rec = Recorder()
    path = tmp_path / "s.sqlite"
    summary = run(settings(path, fault.url, temperatures=(0.2, 0.9)), rec)
    assert summary.status == "completed"
    assert summary.samples == summary.stored == summary.target == 12
    stored = rows(path)
    with Session.open(path) as s:
        config = s.meta("config")
        run_settings = json.loads(s.conn.execute("SELECT settings FROM runs").fetchone()[0])
        problems = {p.problem_id: p for p in s.problems()}
        evals = s.conn.execute("SELECT problem_id, n_tokens FROM prompt_evals").fetchall()
    # The session says where its samples came from; never a key.
    assert config["backend"] == {
        "name": "openai",
        "base_url": fault.url,
        "model": MODEL,
        "api": "chat",
    }
    assert config["model"]["name"] == MODEL and config["model"]["sha256"] is None
    assert run_settings["backend"] == "openai" and run_settings["parallel"] == 4
    streamed = fault.stream_bodies()
    assert len(streamed) == 12
    for pid, idx, seed, text, tokens, reason, prompt_tokens, logprob in stored:
        assert seed == sample_seed(config["seed"], pid, idx)
        body = next(b for b in streamed if b["seed"] == seed)
        assert body["temperature"] == (0.2, 0.9)[idx % 2]
        assert body["top_k"] == 40 and body["max_tokens"] == 32 and body["logprobs"] is True
        assert text == answer_text(prompt_of(path, pid), seed)
        # The fault server names token ids in its logprobs: stored as given.
        assert tokens == tuple(range(1000, 1000 + len(tokens))) and len(tokens) > 3
        assert reason == "eos"  # chat with no stop strings: the server's "stop" is EOS
        assert prompt_tokens == problems[pid].prompt_tokens > 5
        assert logprob == pytest.approx(-0.5 * len(tokens))
    assert [e[0] for e in evals] == ["arith/000", "arith/001", "arith/002"]
    # The same events as the local engine, in a sensible order.
    started, finished = rec.of(SampleStarted), rec.of(SampleFinished)
    assert len(started) == len(finished) == 12
    assert {e.slot for e in started} <= set(range(4))
    assert len(rec.of(PromptEvaluated)) == 3
    decoded = rec.of(TokensDecoded)
    by_sample: dict[tuple[str, int], str] = {}
    for e in decoded:
        by_sample[(e.problem_id, e.sample_index)] = (
            by_sample.get((e.problem_id, e.sample_index), "") + e.delta
        )
    assert by_sample == {(r[0], r[1]): r[3] for r in stored}
    last = rec.events[-1]
    assert isinstance(last, RunFinished) and last.status == "completed" and last.samples == 12


def test_raw_prompts_go_to_the_completions_api_with_their_stops(
    tmp_path: Path, fault: FaultServer
) -> None:
    path = tmp_path / "raw.sqlite"
    summary = run(settings(path, fault.url, prompt_format="raw", limit=1, samples=2))
    assert summary.status == "completed"
    body = fault.stream_bodies()[0]
    assert body["prompt"] == "Question: " + prompt_of(path, "arith/000")[len("Question: ") :]
    assert body["stop"] == ["\nQuestion:", "\n\n\n"] and body["logprobs"] == 0
    for pid, _idx, seed, text, tokens, reason, _pt, logprob in rows(path):
        assert text == answer_text(prompt_of(path, pid), seed)
        # The server stopped with stop strings in play: it does not say whether on one of
        # them or on its end token, so no stop string is claimed.
        assert reason == "stop"
        assert tokens == (UNKNOWN_TOKEN,) * len(tokens) and len(tokens) > 3  # no ids given
        assert logprob == pytest.approx(-0.5 * len(tokens))


def test_a_server_that_does_not_stream_is_read_whole(tmp_path: Path, fault: FaultServer) -> None:
    fault.behaviour.stream = False
    path = tmp_path / "j.sqlite"
    summary = run(settings(path, fault.url, max_tokens=3))
    assert summary.status == "completed" and summary.stored == 12
    for pid, _idx, seed, text, tokens, reason, _pt, _lp in rows(path):
        assert text == "".join(tokens_of(answer_text(prompt_of(path, pid), seed))[:3])
        assert reason == "length" and len(tokens) == 3  # from the reply's usage


def test_client_cuts_at_a_stop_string_the_server_ignores(fault: FaultServer) -> None:
    from troop.engine.backends.openai_backend import ServerPrompt, ServerSampler
    from troop.engine.backends.openai_client import ServerTarget
    from troop.engine.backends.sample_loop import BatchStats
    from troop.engine.scheduler import Scheduler
    from troop.engine.work import PromptSpec, SamplingParams

    fault.behaviour.honour_stop = False
    prompt = "What is 2 + 3?"
    params = SamplingParams(max_tokens=32)
    spec = PromptSpec("p", (UNKNOWN_TOKEN,), ("answer is",))
    control = RunControl(2)
    stored: list[Any] = []
    sampler = ServerSampler(
        ServerTarget(fault.url, MODEL, "completions"),
        params,
        {"p": ServerPrompt(prompt, 5)},
        parallel=2,
    )
    stats = sampler.run(
        Scheduler([spec], set(), control, params, 0),
        lambda r: stored.append(r) or r,
        Recorder(),
        control,
        BatchStats(),
    )
    assert stats.samples == 2
    for r in stored:
        assert r.finish_reason == "stop" and r.stop == "answer is"
        assert r.text == answer_text(prompt, r.seed).split("answer is")[0]
