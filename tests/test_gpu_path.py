"""The GPU path's parts that run on a CPU: synthetic models, backend sampling, GPU memory sizing."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import llama_cpp as lc
import pytest

from tests.conftest import troop
from troop.engine.backends import backend_sampling, llamacpp
from troop.engine.events import Recorder
from troop.engine.model_facts import GpuBudget, choose_sampler_device, plan_context
from troop.engine.models import resolve_model
from troop.engine.run import execute, prepare
from troop.engine.settings import RunSettings
from troop.engine.storage.session import Session
from troop.engine.work import SamplingParams
from troop.errors import TroopError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import synthetic_gguf  # noqa: E402

pytestmark = pytest.mark.model

# One thread: on a loaded machine two OpenMP threads spin against each other.
SMALL = dict(problems="arithmetic", limit=2, samples=4, parallel=4, max_tokens=16, threads=1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.gguf"
    synthetic_gguf.write("tiny", path)
    return path


def run(path: Path, **overrides: object) -> dict[tuple[str, int], tuple[tuple[int, ...], float]]:
    """Sample a session; returns each sample's (tokens, logprob)."""
    settings = RunSettings(session=path, **{**SMALL, **overrides})  # type: ignore[arg-type]
    prep = prepare(settings)
    try:
        summary = execute(prep, Recorder())
    finally:
        prep.close()
    assert summary.status == "completed"
    with Session.open(path) as s:
        return {(r.problem_id, r.sample_index): (r.tokens, r.logprob) for r in s.samples()}


def run_settings(path: Path) -> dict[str, object]:
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT settings FROM runs ORDER BY run_id DESC").fetchone()
    settings: dict[str, object] = json.loads(row[0])
    return settings


def test_synthetic_model_has_the_named_shape_and_the_default_tokenizer(tmp_path: Path) -> None:
    path = tmp_path / "smol.gguf"
    synthetic_gguf.write("smollm2-135m", path, wtype="q8_0")
    real = llamacpp.Model(resolve_model(None).path)
    fake = llamacpp.Model(path)
    try:
        assert fake.shape().n_params == real.shape().n_params
        assert (fake.shape().n_layer, fake.shape().n_embd) == (30, 576)
        assert "Q8_0" in fake.shape().description
        text = "def add(a, b):\n    return a + b"
        assert fake.tokenize(text) == real.tokenize(text)
        assert fake.chat_template() == real.chat_template()
    finally:
        fake.close()
        real.close()


def test_a_padded_vocabulary_keeps_tokenizing_like_the_default_model(tmp_path: Path) -> None:
    tok = resolve_model(None).path
    fields = synthetic_gguf._padded(synthetic_gguf.tokenizer_fields(tok), 50000)
    assert len(fields["tokenizer.ggml.tokens"][0]) == 50000
    assert fields["tokenizer.ggml.token_type"][0][-1] == 5  # unused: never matched in text


def test_troop_samples_a_synthetic_model_end_to_end(tiny: Path, tmp_path: Path) -> None:
    session = tmp_path / "s.sqlite"
    proc = troop(
        "run",
        "--headless",
        "--model",
        str(tiny),
        "--problems",
        "arithmetic",
        "--limit",
        "2",
        "--samples",
        "3",
        "--max-tokens",
        "12",
        "--parallel",
        "3",
        "--threads",
        "1",
        "--session",
        str(session),
    )
    assert proc.returncode == 0, proc.stderr
    with Session.open(session) as s:
        records = list(s.samples())
        verdicts = s.conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
    assert len(records) == 6
    assert all(0 < len(r.tokens) <= 12 and r.logprob < 0 for r in records)
    assert verdicts == 6


def test_backend_sampling_runs_on_the_cpu_and_draws_the_host_tokens(tmp_path: Path) -> None:
    host = run(tmp_path / "host.sqlite", sampler_device="host")
    backend = run(tmp_path / "backend.sqlite", sampler_device="backend")
    assert run_settings(tmp_path / "backend.sqlite")["sampler_device"] == "backend"
    assert run_settings(tmp_path / "host.sqlite")["sampler_device"] == "host"
    # The same chain with the same per-sample seed picks the same tokens on either side.
    assert {k: v[0] for k, v in backend.items()} == {k: v[0] for k, v in host.items()}
    for tokens, logprob in backend.values():
        # log p under the truncated, tempered distribution the token was drawn from.
        assert len(tokens) > 0 and -50 * len(tokens) < logprob < 0


def test_backend_seeds_reproduce_and_other_seeds_differ(tmp_path: Path) -> None:
    a = run(tmp_path / "a.sqlite", sampler_device="backend", seed=5)
    b = run(tmp_path / "b.sqlite", sampler_device="backend", seed=5)
    c = run(tmp_path / "c.sqlite", sampler_device="backend", seed=6)
    assert a == b
    assert {k: v[0] for k, v in a.items()} != {k: v[0] for k, v in c.items()}


def test_backend_sampling_honours_temperatures_and_cuts(tmp_path: Path) -> None:
    # Mixed temperatures swap each slot's chain between greedy and a seeded draw.
    mixed = run(tmp_path / "m.sqlite", sampler_device="backend", temperatures=(0.0, 0.8))
    greedy = run(tmp_path / "g.sqlite", sampler_device="host", temperatures=(0.0,))
    for (pid, i), (tokens, logprob) in mixed.items():
        if i % 2 == 0:
            assert tokens == greedy[(pid, i)][0]
            assert logprob == 0.0  # a greedy pick has probability one
    # top-k 1 leaves one candidate: the greedy tokens, each drawn with probability one.
    top1 = run(tmp_path / "k.sqlite", sampler_device="backend", top_k=1)
    for key, (tokens, logprob) in top1.items():
        assert tokens == greedy[key][0]
        assert logprob == pytest.approx(0.0, abs=1e-5)


def test_backend_sampling_without_top_k_or_with_one_past_the_vocabulary(tmp_path: Path) -> None:
    # Without top-k the candidates are the whole vocabulary, sorted by top-p; a top-k past the
    # vocabulary would abort llama.cpp's graph if it were passed on unclamped.
    for top_k in (0, 10**6):
        host = run(tmp_path / f"h{top_k}.sqlite", sampler_device="host", top_k=top_k, samples=2)
        backend = run(
            tmp_path / f"b{top_k}.sqlite", sampler_device="backend", top_k=top_k, samples=2
        )
        assert {k: v[0] for k, v in backend.items()} == {k: v[0] for k, v in host.items()}
        assert all(-50 * len(t) < lp < 0 for t, lp in backend.values())


def test_a_sampler_the_backend_cannot_run_is_found() -> None:
    # Decoded in this process: without extra buffers, which fault where AMX does
    # (engine/backends/supervisor.py); backend sampling is what this test is about.
    model = llamacpp.Model(resolve_model(None).path, extra_buffers=False)
    plan = plan_context(
        parallel=2,
        max_prompt_tokens=8,
        max_tokens=8,
        kv_unified=False,
        n_threads=2,
        n_ctx_train=8192,
    )
    ctx = llamacpp.Context(model, plan)
    try:
        chains = backend_sampling.BackendChains(ctx, SamplingParams(), 2)
        assert chains.unsupported() == []
        # Locally typical sampling has no backend implementation in llama.cpp.
        typical = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        lc.llama_sampler_chain_add(typical, lc.llama_sampler_init_typical(0.9, 1))
        lc.llama_sampler_chain_add(typical, lc.llama_sampler_init_dist(1))
        old = ctx.sampler_chains[1]
        lc.llama_set_sampler(ctx.ptr, 1, typical)
        ctx.sampler_chains[1] = typical
        lc.llama_sampler_free(old)
        chains._chains[1] = backend_sampling.AttachedChain(typical)
        # Only a prefix of a chain runs on the backend: the draw after it runs on the host too.
        assert chains.unsupported() == ["typical", "dist"]
        backend_sampling.detach(ctx)
        assert ctx.sampler_chains == {}
    finally:
        ctx.close()
        model.close()


def test_auto_samples_on_the_backend_only_with_gpu_offload() -> None:
    assert choose_sampler_device("auto", offloaded=False).where == "host"
    assert choose_sampler_device("auto", offloaded=True).where == "backend"
    assert choose_sampler_device("backend", offloaded=False).where == "backend"
    with pytest.raises(TroopError, match="--sampler-device"):
        choose_sampler_device("gpu", offloaded=True)


def test_a_cpu_build_sees_no_gpu_memory() -> None:
    assert llamacpp.gpu_memory_free() is None


@pytest.fixture
def plan_args() -> Iterator[dict[str, object]]:
    yield dict(
        max_prompt_tokens=200,
        max_tokens=512,
        kv_unified=False,
        n_threads=2,
        n_ctx_train=8192,
        kv_bytes_per_token=30 * 2 * 3 * 128 * 2,
    )


def test_parallel_beyond_free_gpu_memory_is_refused_in_one_line(
    plan_args: dict[str, object],
) -> None:
    small = GpuBudget(free_bytes=2 << 30, layer_fraction=1.0, n_vocab=49152)
    with pytest.raises(TroopError) as err:
        plan_context(parallel=255, gpu=small, **plan_args)  # type: ignore[arg-type]
    assert "--parallel 255" in str(err.value) and "2.0 GiB is free" in str(err.value)
    assert "\n" not in str(err.value) and "--parallel" in (err.value.hint or "")
    # 255 slots x 768 cells x 46 KiB is 8.4 GiB of KV cache: 16 GiB free is enough ...
    big = GpuBudget(free_bytes=16 << 30, layer_fraction=1.0, n_vocab=49152)
    plan_context(parallel=255, gpu=big, **plan_args)  # type: ignore[arg-type]
    # ... and with half the layers on the GPU, half the cache is there.
    half = GpuBudget(free_bytes=6 << 30, layer_fraction=0.5, n_vocab=49152)
    plan_context(parallel=255, gpu=half, **plan_args)  # type: ignore[arg-type]
    with pytest.raises(TroopError):
        plan_context(parallel=255, gpu=GpuBudget(6 << 30, 1.0, 49152), **plan_args)  # type: ignore[arg-type]
