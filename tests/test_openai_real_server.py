"""The real llama-cpp-python server on loopback, running the default model end to end:
a session drawn, topped up, re-verified and drawn again with the same seeds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import troop
from tests.openai_helpers import quick_retries_fixture  # noqa: F401 - an autouse fixture
from troop.engine.storage.session import Session
from troop.engine.work import sample_seed

# -- the real llama-cpp-python server on loopback -------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: llama-cpp-python's server, its models loaded without CPU extra buffer types: on hosts whose
#: AMX kernels fault (see engine/backends/supervisor.py) it would die at its first decode
#: otherwise, and this test is about troop's client, not the server's kernels.
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
