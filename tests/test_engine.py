"""The real default model through llama.cpp: batching, seeds, budgets, stops, live control."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from troop.engine.control import RunControl
from troop.engine.events import (
    Event,
    PromptEvaluated,
    Recorder,
    RunFinished,
    SampleFinished,
    SampleStarted,
    TokensDecoded,
)
from troop.engine.run import execute, prepare
from troop.engine.settings import RunSettings
from troop.engine.storage.session import Session
from troop.engine.work import sample_seed
from troop.errors import SessionError

pytestmark = pytest.mark.model

SMALL = dict(problems="arithmetic", limit=3, samples=4, parallel=4, max_tokens=24)


def run(
    path: Path,
    observer: object | None = None,
    control: RunControl | None = None,
    **overrides: object,
):
    settings = RunSettings(session=path, **{**SMALL, **overrides})  # type: ignore[arg-type]
    prep = prepare(settings)
    try:
        return execute(prep, observer or Recorder(), control)  # type: ignore[arg-type]
    finally:
        prep.close()


def texts(path: Path) -> dict[tuple[str, int], str]:
    with Session.open(path) as s:
        return {(r.problem_id, r.sample_index): r.text for r in s.samples()}


def test_batched_samples_are_well_formed(tmp_path: Path) -> None:
    rec = Recorder()
    summary = run(tmp_path / "s.sqlite", rec, temperatures=(0.0, 0.8))
    assert summary.status == "completed"
    assert summary.samples == summary.stored == summary.target == 12
    with Session.open(tmp_path / "s.sqlite") as s:
        records = list(s.samples())
        assert s.quick_check() == "ok"
        evals = s.conn.execute("SELECT problem_id, n_tokens FROM prompt_evals").fetchall()
        seed = s.meta("config")["seed"]
    assert sorted((r.problem_id, r.sample_index) for r in records) == [
        (f"arith/{p:03d}", i) for p in range(3) for i in range(4)
    ]
    for r in records:
        assert r.finish_reason in {"eos", "length"}
        assert 0 < r.completion_tokens <= 24
        assert r.finish_reason != "length" or r.completion_tokens == 24
        assert r.seed == sample_seed(seed, r.problem_id, r.sample_index)
        assert r.temperature == (0.0, 0.8)[r.sample_index % 2]
        assert r.logprob <= 0.0
        assert r.prompt_tokens > 10
    # Each problem's prompt is evaluated once and shared by its four samples.
    assert [e[0] for e in evals] == ["arith/000", "arith/001", "arith/002"]
    assert sum(e[1] for e in evals) == summary.prompt_tokens
    # Greedy samples of one problem are identical; the stream of events tells the same story.
    by_problem: dict[str, set[str]] = {}
    for r in records:
        if r.temperature == 0.0:
            by_problem.setdefault(r.problem_id, set()).add(r.text)
    assert all(len(v) == 1 for v in by_problem.values())
    started = rec.of(SampleStarted)
    finished = rec.of(SampleFinished)
    assert len(started) == len(finished) == 12
    assert len(rec.of(PromptEvaluated)) == 3
    assert isinstance(rec.events[-1], RunFinished) and rec.events[-1].samples == 12
    # The streamed deltas add up to the stored text.
    streamed: dict[tuple[str, int], str] = {}
    for e in rec.of(TokensDecoded):
        assert isinstance(e, TokensDecoded)
        key = (e.problem_id, e.sample_index)
        streamed[key] = streamed.get(key, "") + e.delta
    for r in records:
        assert streamed.get((r.problem_id, r.sample_index), "").startswith(r.text.rstrip("\ufffd"))


def test_same_seed_same_samples_other_seed_other_samples(tmp_path: Path) -> None:
    run(tmp_path / "a.sqlite", seed=7)
    run(tmp_path / "b.sqlite", seed=7)
    run(tmp_path / "c.sqlite", seed=8)
    a, b, c = (texts(tmp_path / f"{x}.sqlite") for x in "abc")
    assert a == b
    assert a != c


def test_chat_template_from_the_gguf_is_used_and_stored(tmp_path: Path) -> None:
    run(tmp_path / "s.sqlite", samples=1, limit=1)
    with Session.open(tmp_path / "s.sqlite") as s:
        fmt = s.meta("config")["prompt_format"]
        prompt = s.problems()[0].prompt
    assert fmt["kind"] == "chat" and "<|im_start|>" in fmt["template"]
    assert prompt.startswith("<|im_start|>system") and prompt.endswith("<|im_start|>assistant\n")


def test_raw_prompts_stop_at_stop_strings(tmp_path: Path) -> None:
    run(
        tmp_path / "s.sqlite",
        problems="humaneval",
        limit=2,
        samples=3,
        max_tokens=96,
        prompt_format="raw",
        temperatures=(0.8,),
    )
    with Session.open(tmp_path / "s.sqlite") as s:
        records = list(s.samples())
        prompt = s.problems()[0].prompt
    assert prompt.startswith("\n\ndef ") or prompt.startswith("from typing")
    reasons = Counter(r.finish_reason for r in records)
    assert set(reasons) <= {"eos", "stop", "length"}
    for r in records:
        if r.finish_reason == "stop":
            assert r.stop is not None and r.stop not in r.text
        for stop in ("\ndef ", "\nclass ", "\nif __name__"):
            assert stop not in r.text


def test_cancel_keeps_finished_samples_and_resume_completes_exactly(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    control = RunControl(4)

    class CancelAfterFive(Recorder):
        def on_event(self, event: Event) -> None:
            super().on_event(event)
            if isinstance(event, SampleFinished) and len(self.of(SampleFinished)) == 5:
                control.cancel()

    first = run(path, CancelAfterFive(), control)
    assert first.status == "cancelled"
    kept = texts(path)
    assert len(kept) == first.stored == 5
    second = run(path)
    assert second.status == "completed"
    assert second.samples == 12 - 5 and second.stored == 12
    after = texts(path)
    assert {k: after[k] for k in kept} == kept  # nothing redrawn
    with Session.open(path) as s:
        runs = s.conn.execute("SELECT status FROM runs ORDER BY run_id").fetchall()
    assert [r[0] for r in runs] == ["cancelled", "completed"]


def test_raising_the_budget_tops_up_without_redrawing(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    run(path, samples=2)
    before = texts(path)
    summary = run(path, samples=5)
    assert summary.samples == 9 and summary.stored == 15
    after = texts(path)
    assert {k: after[k] for k in before} == before


def test_live_budget_raise_and_pause(tmp_path: Path) -> None:
    control = RunControl(2)
    resumed = threading.Event()

    class Steer(Recorder):
        def on_event(self, event: Event) -> None:
            super().on_event(event)
            n = len(self.of(SampleFinished))
            if isinstance(event, SampleFinished) and n == 1:
                control.raise_budget(3)
                control.pause()
                # Resume from another thread, as a UI would.
                threading.Timer(0.3, lambda: (control.resume(), resumed.set())).start()

    summary = run(tmp_path / "s.sqlite", Steer(), control, samples=2)
    assert resumed.is_set()
    assert summary.status == "completed"
    assert summary.stored == 9  # 3 problems x the raised budget of 3
    with Session.open(tmp_path / "s.sqlite") as s:
        assert s.meta("budget") == 2  # the live raise is for this run; --samples persists it


def test_resume_with_other_sampling_settings_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    run(path, samples=1, limit=1)
    with pytest.raises(SessionError, match="temperatures"):
        prepare(RunSettings(session=path, temperatures=(0.5,)))
    with pytest.raises(SessionError, match="max_tokens"):
        prepare(RunSettings(session=path, max_tokens=99))


def test_resume_with_another_model_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    run(path, samples=1, limit=1)
    with Session.open(path) as s:
        original = Path(s.meta("config")["model"]["path"])
    other = tmp_path / "other.gguf"
    other.write_bytes(original.read_bytes() + b"\0")
    with pytest.raises(SessionError, match="another model"):
        prepare(RunSettings(session=path, model=str(other)))


def test_resume_can_add_problems(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    run(path, samples=2, limit=1)
    summary = run(path, samples=2, limit=2)
    assert summary.samples == 2 and summary.stored == 4
    with pytest.raises(SessionError, match="problem set"):
        prepare(RunSettings(session=path, problems="humaneval"))


def test_base_model_gets_raw_prompts(tmp_path: Path) -> None:
    run(tmp_path / "g.sqlite", model="gemma3-270m", samples=2, limit=2, max_tokens=16)
    with Session.open(tmp_path / "g.sqlite") as s:
        cfg = s.meta("config")
        prompt = s.problems()[0].prompt
        records = list(s.samples())
    assert cfg["model"]["name"] == "gemma3-270m" and cfg["model"]["architecture"] == "gemma3"
    assert cfg["prompt_format"]["kind"] == "raw"
    assert prompt.startswith("Question: ") and prompt.endswith("\nAnswer:")
    assert len(records) == 4
    assert all("\nQuestion:" not in r.text for r in records)


def test_too_much_kv_cache_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    from troop.errors import TroopError

    path = tmp_path / "s.sqlite"
    with pytest.raises(TroopError, match="GiB of KV cache"):
        prepare(RunSettings(session=path, parallel=255, max_tokens=8000, limit=1))
    assert not path.exists()


def test_stored_logprob_matches_rescoring_the_sample(tmp_path: Path) -> None:
    import ctypes

    import numpy as np

    from troop.engine.backends import llamacpp
    from troop.engine.model_facts import plan_context

    path = tmp_path / "s.sqlite"
    run(path, samples=4, limit=1, max_tokens=6, temperatures=(1.0,))
    with Session.open(path) as s:
        records = list(s.samples())
        prompt = s.problems()[0].prompt
        model_path = Path(s.meta("config")["model"]["path"])
        (settings,) = s.conn.execute("SELECT settings FROM runs").fetchone()
    # Rescored here, in this process, with the CPU extra buffers the worker used (off where
    # they fault: see engine/backends/supervisor.py).
    extra = json.loads(settings)["cpu_extra_buffers"] == "on"
    model = llamacpp.Model(model_path, gpu_layers=0, extra_buffers=extra)
    prompt_tokens = model.tokenize(prompt)
    plan = plan_context(
        parallel=1,
        max_prompt_tokens=len(prompt_tokens),
        max_tokens=16,
        kv_unified=True,
        n_threads=2,
        n_ctx_train=8192,
    )
    checked = 0
    for r in records:
        ctx = llamacpp.Context(model, plan)
        seq = prompt_tokens + list(r.tokens)
        ctx.clear_batch()
        for pos, tok in enumerate(seq):
            ctx.add(tok, pos, 0, pos >= len(prompt_tokens) - 1)
        ctx.decode()
        ptr = ctypes.cast(ctx.all_logits(), ctypes.POINTER(ctypes.c_float))
        rows = np.ctypeslib.as_array(ptr, shape=(len(r.tokens) + 1, model.n_vocab))
        rows = rows.astype(np.float64)
        lse = rows.max(axis=1) + np.log(np.exp(rows - rows.max(axis=1)[:, None]).sum(axis=1))
        expected = sum(rows[i, t] - lse[i] for i, t in enumerate(r.tokens))
        ctx.close()
        tolerance = 0.05 * max(1, len(r.tokens))  # batched vs single-sequence float noise
        if r.finish_reason == "eos":
            # The end-of-generation token (not stored) was scored too: one more negative term.
            assert r.logprob < expected + tolerance
        else:
            assert r.logprob == pytest.approx(expected, abs=tolerance), (r.logprob, expected)
            checked += 1
    model.close()
    assert checked > 0
