"""The OpenAI-compatible server backend: a fault-injecting local server, then the real
llama-cpp-python server on loopback running the default model end to end."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import troop
from tests.fault_server import MODEL, FaultServer, answer_text, tokens_of
from troop.engine.control import RunControl
from troop.engine.errors import EngineError, SessionError, TroopError
from troop.engine.events import (
    Event,
    PromptEvaluated,
    Recorder,
    RunFinished,
    SampleFinished,
    SampleStarted,
    TokensDecoded,
)
from troop.engine.openai_backend import UNKNOWN_TOKEN
from troop.engine.openai_client import (
    AttemptFailed,
    ServerOptions,
    normalize_base_url,
    sse_data,
)
from troop.engine.run import RunSettings, RunSummary, execute, prepare
from troop.engine.scheduler import sample_seed
from troop.engine.session import Session


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault tests wait milliseconds between attempts, and a second for a silent server."""
    monkeypatch.setenv("TROOP_SERVER_BACKOFF", "0.01")
    monkeypatch.setenv("TROOP_SERVER_RETRIES", "3")
    monkeypatch.setenv("TROOP_SERVER_TIMEOUT", "1")


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def settings(path: Path, url: str, **overrides: Any) -> RunSettings:
    base: dict[str, Any] = dict(
        session=path,
        backend="openai",
        base_url=url,
        model=MODEL,
        problems="arithmetic",
        limit=3,
        samples=4,
        parallel=4,
        max_tokens=32,
    )
    return RunSettings(**{**base, **overrides})


def run(s: RunSettings, observer: Any = None, control: RunControl | None = None) -> RunSummary:
    prep = prepare(s)
    try:
        return execute(prep, observer or Recorder(), control)
    finally:
        prep.close()


def rows(path: Path) -> list[tuple[Any, ...]]:
    with Session.open(path) as s:
        return [
            (
                r.problem_id,
                r.sample_index,
                r.seed,
                r.text,
                r.tokens,
                r.finish_reason,
                r.prompt_tokens,
                r.logprob,
            )
            for r in s.samples()
        ]


def prompt_of(path: Path, problem_id: str) -> str:
    with Session.open(path) as s:
        return next(p.prompt for p in s.problems() if p.problem_id == problem_id)


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("troop: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


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
    from troop.engine.openai_backend import ServerPrompt, ServerSampler
    from troop.engine.openai_client import ServerTarget
    from troop.engine.sample_loop import BatchStats
    from troop.engine.scheduler import PromptSpec, SamplingParams, Scheduler

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


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "faults",
    [
        ["429", "500", "503"],
        ["slow"],
        ["drop", "drop"],
        ["malformed", "garbage", "error-event"],
        ["no-finish"],
    ],
)
def test_transient_faults_are_retried_and_nothing_is_lost(
    tmp_path: Path, fault: FaultServer, faults: list[str]
) -> None:
    fault.behaviour.faults.extend(faults)
    path = tmp_path / "f.sqlite"
    rec = Recorder()
    summary = run(settings(path, fault.url, parallel=2), rec)
    assert summary.status == "completed" and summary.stored == summary.target == 12
    assert not fault.behaviour.faults  # every fault was served
    assert len(fault.stream_bodies()) == 12 + len(faults)
    # A retried sample is stored whole: the partial text of a dropped attempt is forgotten.
    for pid, _idx, seed, text, *_ in rows(path):
        assert text == answer_text(prompt_of(path, pid), seed)
    assert len(rec.of(SampleFinished)) == 12


def test_persistent_failure_fails_the_run_keeps_samples_and_resume_completes(
    tmp_path: Path, fault: FaultServer
) -> None:
    path = tmp_path / "p.sqlite"
    fault.behaviour.always, fault.behaviour.ok_first = "500", 3
    with pytest.raises(EngineError) as info:
        run(settings(path, fault.url, parallel=1))
    message = str(info.value)
    assert "1 sample(s) could not be drawn" in message and "after 4 attempts" in message
    assert "HTTP 500: injected 500" in message and "3 drawn and stored" in message
    assert len(rows(path)) == 3  # the samples drawn before the outage are kept
    with Session.open(path) as s:
        status, error = s.conn.execute("SELECT status, error FROM runs").fetchone()
    assert status == "failed" and "could not be drawn" in error
    # The server recovers; resuming draws exactly the missing samples, with their own seeds.
    fault.behaviour.always = None
    before = len(fault.stream_bodies())
    summary = run(
        settings(
            path,
            fault.url,
            parallel=4,
            base_url=None,
            model=None,
            backend=None,
            problems=None,
            limit=None,
            samples=None,
            max_tokens=None,
        )
    )
    assert summary.status == "completed" and summary.samples == 9 and summary.stored == 12
    assert len(fault.stream_bodies()) - before == 9
    keys = [(r[0], r[1]) for r in rows(path)]
    assert len(keys) == len(set(keys)) == 12


def test_a_refused_request_is_not_retried(tmp_path: Path, fault: FaultServer) -> None:
    fault.behaviour.faults.append("400")
    with pytest.raises(EngineError, match=r"not retried: HTTP 400: injected 400"):
        run(settings(tmp_path / "r.sqlite", fault.url, parallel=1))
    assert len(fault.stream_bodies()) == 1


def test_cancel_mid_run_then_resume(tmp_path: Path, fault: FaultServer) -> None:
    fault.behaviour.token_delay_s = 0.02
    control = RunControl(4)

    class CancelAfterThree:
        def __init__(self) -> None:
            self.n = 0

        def on_event(self, event: Event) -> None:
            if isinstance(event, SampleFinished):
                self.n += 1
                if self.n == 3:
                    control.cancel()

    path = tmp_path / "c.sqlite"
    summary = run(settings(path, fault.url, parallel=2), CancelAfterThree(), control)
    assert summary.status == "cancelled" and 3 <= summary.stored < 12
    fault.behaviour.token_delay_s = 0.0
    summary = run(settings(path, fault.url))
    assert summary.status == "completed" and summary.stored == 12


@pytest.mark.parametrize("honour", [True, False])
def test_n_per_request(tmp_path: Path, fault: FaultServer, honour: bool) -> None:
    fault.behaviour.honour_n = honour
    path = tmp_path / "n.sqlite"
    summary = run(settings(path, fault.url, n_per_request=4, parallel=4))
    assert summary.status == "completed" and summary.stored == 12
    bodies = fault.stream_bodies()
    if honour:
        assert len(bodies) == 3 and all(b["n"] == 4 for b in bodies)
        # The samples of one request share its seed (its first sample's).
        for pid in ("arith/000", "arith/001", "arith/002"):
            assert len({r[2] for r in rows(path) if r[0] == pid}) == 1
    else:
        # The server ignored `n`: the first request's other samples went back as singles.
        assert len(bodies) == 1 + 3 + 4 + 4
        with Session.open(path) as s:
            seed = s.meta("config")["seed"]
        assert all(r[2] == sample_seed(seed, r[0], r[1]) for r in rows(path))


# -- the command line -----------------------------------------------------------------------


def test_unreachable_server_is_one_line_and_leaves_no_session(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    path = tmp_path / "u.sqlite"
    proc = troop(
        "run",
        "--headless",
        "--backend",
        "openai",
        "--base-url",
        f"http://127.0.0.1:{port}",
        "--session",
        str(path),
        "--verifier",
        "none",
    )
    one_line_error(proc, f"http://127.0.0.1:{port}/v1", "cannot connect")
    assert proc.returncode == 1 and not path.exists()


def test_bad_flags_and_unknown_model_are_one_line(tmp_path: Path, fault: FaultServer) -> None:
    path = tmp_path / "m.sqlite"
    common = ("run", "--headless", "--session", str(path), "--verifier", "none")
    one_line_error(
        troop(*common, "--backend", "openai", "--base-url", fault.url, "--model", "nope"),
        "does not serve model 'nope'",
        MODEL,
    )
    one_line_error(
        troop(*common, "--backend", "openai", "--base-url", "localhost:8080"),
        "--base-url must be an http(s) URL",
    )
    one_line_error(troop(*common, "--backend", "openai"), "needs --base-url")
    one_line_error(troop(*common, "--base-url", fault.url), "go with --backend openai")
    one_line_error(
        troop(
            *common,
            "--backend",
            "openai",
            "--base-url",
            fault.url,
            "--model",
            MODEL,
            "--api-key-env",
            "TROOP_NO_SUCH_VAR",
        ),
        "TROOP_NO_SUCH_VAR",
    )
    assert not path.exists()


def test_api_key_is_sent_from_its_variable_and_never_stored(
    tmp_path: Path, fault: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-test-4f8a1c0e9b7d"
    fault.behaviour.api_key = key
    path = tmp_path / "k.sqlite"
    with pytest.raises(EngineError, match="HTTP 401") as info:
        run(settings(path, fault.url, limit=1, samples=2))
    assert "--api-key-env" in str(info.value) and not path.exists()
    monkeypatch.setenv("TROOP_TEST_KEY", key)
    summary = run(settings(path, fault.url, limit=1, samples=2, api_key_env="TROOP_TEST_KEY"))
    assert summary.status == "completed" and summary.stored == 2
    with Session.open(path) as s:
        assert s.quick_check() == "ok"
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("k.sqlite*"))
    assert key.encode() not in stored and b"TROOP_TEST_KEY" in stored


def test_resume_refuses_another_backend_or_model(tmp_path: Path, fault: FaultServer) -> None:
    path = tmp_path / "b.sqlite"
    run(settings(path, fault.url, limit=1, samples=1))
    with pytest.raises(SessionError, match="sampled with the openai backend"):
        prepare(RunSettings(session=path, backend="llamacpp"))
    with pytest.raises(SessionError, match="another model"):
        prepare(RunSettings(session=path, model="other-model"))
    local = tmp_path / "local.sqlite"
    Session.create(local, {"config": {"model": {"name": "x"}}, "budget": 1}).close()
    with pytest.raises(SessionError, match="sampled with the llamacpp backend"):
        prepare(RunSettings(session=local, backend="openai", base_url=fault.url))


def test_cli_run_fails_clearly_then_resumes_and_verifies(
    tmp_path: Path, fault: FaultServer
) -> None:
    path = tmp_path / "cli.sqlite"
    fault.behaviour.always, fault.behaviour.ok_first = "503", 2
    args = (
        "run",
        "--headless",
        "--backend",
        "openai",
        "--base-url",
        fault.url,
        "--model",
        MODEL,
        "--problems",
        "arithmetic:3",
        "--samples",
        "3",
        "--parallel",
        "1",
        "--max-tokens",
        "32",
        "--session",
        str(path),
    )
    proc = troop(*args)
    assert proc.returncode == 1, proc.stderr
    assert "troop: error: 1 sample(s) could not be drawn" in proc.stderr
    assert "HTTP 503" in proc.stderr and "Traceback" not in proc.stderr
    con = sqlite3.connect(path)
    assert con.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 2
    # Nothing that failed became a verdict: only the two stored samples were judged.
    assert con.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] == 2
    con.close()
    fault.behaviour.always = None
    proc = troop("run", "--headless", "--session", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "run completed" in proc.stdout
    shown = json.loads(troop("show", str(path)).stdout)
    assert shown["samples_stored"] == shown["samples_target"] == 9
    assert shown["config"]["backend"]["name"] == "openai"
    con = sqlite3.connect(path)
    statuses = dict(con.execute("SELECT status, COUNT(*) FROM verdicts GROUP BY status"))
    con.close()
    assert sum(statuses.values()) == 9 and statuses.get("pass", 0) >= 5


# -- the real llama-cpp-python server on loopback -------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: llama-cpp-python's server, its models loaded without CPU extra buffer types: on hosts whose
#: AMX kernels fault (see engine/supervisor.py) it would die at its first decode otherwise, and
#: this test is about troop's client, not the server's kernels.
_SERVER_WITHOUT_EXTRA_BUFFERS = """
import runpy
import llama_cpp, llama_cpp.llama_cpp as low
_default = low.llama_model_default_params
def _params():
    params = _default()
    params.use_extra_bufts = False
    return params
low.llama_model_default_params = llama_cpp.llama_model_default_params = _params
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server with the default model on 127.0.0.1.

    --interrupt_requests False: by default it cuts a stream short whenever another request
    waits, which would turn every parallel request into a retry.
    """
    pytest.importorskip("llama_cpp.server.app", reason="needs llama-cpp-python[server]")
    from troop.engine.models import resolve_model

    port = _free_port()
    # Its log goes to a file: llama.cpp's loading chatter would fill a pipe and stall it.
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SERVER_WITHOUT_EXTRA_BUFFERS,
            "--model",
            str(resolve_model(None).path),
            "--model_alias",
            "smollm2-135m",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--interrupt_requests",
            "False",
            "--n_threads",
            str(max(1, (os.cpu_count() or 2) // 2)),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"llama_cpp.server did not start:\n{tail}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.model
def test_real_server_session_end_to_end_resumes_and_verifies(
    tmp_path: Path, llama_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TROOP_SERVER_TIMEOUT", "120")
    path = tmp_path / "real.sqlite"
    base = (
        "run",
        "--headless",
        "--backend",
        "openai",
        "--base-url",
        llama_server,
        "--problems",
        "arithmetic:3",
        "--max-tokens",
        "24",
        "--parallel",
        "3",
        "--session",
        str(path),
    )
    proc = troop(*base, "--samples", "2")
    assert proc.returncode == 0, proc.stderr
    assert "run completed" in proc.stdout and "6 / 6" in proc.stdout
    # Topping up the same session from the server: only the new samples are drawn.
    proc = troop("run", "--headless", "--session", str(path), "--samples", "3")
    assert proc.returncode == 0, proc.stderr
    assert "samples this run" in proc.stdout and "9 / 9" in proc.stdout
    with Session.open(path) as s:
        config = s.meta("config")
        records = list(s.samples())
        problems = s.problems()
        judged = s.conn.execute(
            "SELECT COUNT(*) FROM verdicts WHERE verifier = 'math-answer'"
        ).fetchone()[0]
    assert config["model"]["name"] == "smollm2-135m"  # the only served model, chosen for us
    assert len(records) == 9 and judged == 9
    assert all(p.prompt_tokens > 20 for p in problems)  # counted by the server
    for r in records:
        assert r.seed == sample_seed(0, r.problem_id, r.sample_index)
        assert r.finish_reason in ("eos", "length") and 0 < r.completion_tokens <= 24
        assert r.logprob < 0  # the server's per-token logprobs, summed
        assert r.prompt_tokens == next(
            p.prompt_tokens for p in problems if p.problem_id == r.problem_id
        )
    # Re-verification reads the stored samples; nothing is regenerated.
    proc = troop("verify", str(path), "--force")
    assert proc.returncode == 0, proc.stderr
    assert "9 of 9 samples to judge" in proc.stderr
    # Seeds pass through: the same session drawn again gives the same texts. Not every one:
    # this server reuses its KV cache across requests, so evaluation shapes (and the last
    # float bits) differ with request order, which can flip a near-tie; with seeds ignored,
    # hardly any of these temperature-0.8 samples would agree.
    again = tmp_path / "again.sqlite"
    proc = troop(
        "run",
        "--headless",
        "--backend",
        "openai",
        "--base-url",
        llama_server,
        "--problems",
        "arithmetic:3",
        "--max-tokens",
        "24",
        "--parallel",
        "2",
        "--samples",
        "3",
        "--session",
        str(again),
        "--verifier",
        "none",
    )
    assert proc.returncode == 0, proc.stderr
    with Session.open(again) as s:
        texts = {(r.problem_id, r.sample_index): r.text for r in s.samples()}
    first = {(r.problem_id, r.sample_index): r.text for r in records}
    assert texts.keys() == first.keys()
    same = sum(texts[k] == first[k] for k in first)
    assert same >= 7, (same, texts, first)
