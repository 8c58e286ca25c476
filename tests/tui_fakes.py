"""Stand-ins for the TUI tests: a session file written without a model, and a run that samples
nothing (the test drives the observer itself, so snapshots see exactly the same events)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from troop.engine.control import RunControl
from troop.engine.events import (
    RunStarted,
    SampleFinished,
    SampleRecord,
    SampleStarted,
    SampleVerified,
    TokensDecoded,
)
from troop.engine.formats.loading import load_problem_set
from troop.engine.session_setup import problem_record
from troop.engine.storage.config import (
    ModelIdentity,
    ProblemSetConfig,
    PromptFormatSetting,
    SamplingConfig,
    SessionConfig,
)
from troop.engine.storage.session import Session, StoredProblem, tests_digest
from troop.verifiers.base import Status, Verdict

#: A fixed moment for every stored timestamp, so analyses (and pictures) never change.
EPOCH = 1_750_000_000.0
MODEL = ModelIdentity(
    name="smollm2-135m",
    path="/models/SmolLM2-135M-Instruct.Q4_1.gguf",
    file_bytes=98362432,
    sha256="b179c952" * 8,
    architecture="llama",
    general_name="SmolLM2 135M",
    file_type="3",
    description="llama 256M Q4_1",
    n_params=134515008,
    n_layer=30,
    n_embd=576,
    n_ctx_train=8192,
    n_vocab=49152,
    size_bytes=96576768,
    kv_bytes_per_token=23040,
)


def passes(problem: int, index: int) -> bool:
    """Which samples pass: problem 0 often, 1 sometimes, 2 once, 3 never."""
    return {0: index % 2 == 0, 1: index % 4 == 1, 2: index == 6}.get(problem, False)


def make_session(path: Path, *, problems: int = 4, budget: int = 8) -> Path:
    """A finished session of `problems` arithmetic problems with `budget` judged samples each."""
    pset = load_problem_set(f"arithmetic:{problems}")
    config = SessionConfig(
        backend=None,
        model=MODEL,
        prompt_format=PromptFormatSetting("chat", "", "auto"),
        problem_set=ProblemSetConfig(
            "arithmetic", "arithmetic", f"generated: {problems} problems, seed 0"
        ),
        sampling=SamplingConfig((0.8,), 40, 0.95, 0.0, 64),
        seed=0,
    )
    with Session.create(
        path, {"config": config.to_json(), "budget": budget, "troop_version": "0.1.0"}
    ) as session:
        rows = [
            StoredProblem(p.id, i, p.format, p.prompt, 40 + i, (), problem_record(p))
            for i, p in enumerate(pset.problems)
        ]
        session.add_problems(rows)
        run_id = session.begin_run({"parallel": 4, "policy": {"name": "fixed"}})
        session.set_meta("verifier", {"name": "math-answer", "version": "1"})
        for i, row in enumerate(rows):
            session.add_prompt_eval(run_id, row.problem_id, row.prompt_tokens, 0.05)
            answer = row.data["answer"]
            for j in range(budget):
                ok = passes(i, j)
                text = f"The answer is {answer if ok else int(answer) + j + 1}."
                session.add_sample(
                    SampleRecord(
                        problem_id=row.problem_id,
                        sample_index=j,
                        seed=1000 * i + j,
                        temperature=0.8,
                        top_k=40,
                        top_p=0.95,
                        min_p=0.0,
                        max_tokens=64,
                        text=text,
                        tokens=tuple(range(10 + j)),
                        prompt_tokens=row.prompt_tokens,
                        finish_reason="eos",
                        stop=None,
                        wall_s=0.5,
                        logprob=-3.0 - j,
                        run_id=run_id,
                    )
                )
                verdict = Verdict(
                    Status.PASS if ok else Status.FAIL,
                    "math-answer",
                    "1",
                    0.01,
                    "",
                    detail="" if ok else "wrong answer",
                    tier="bwrap",
                )
                session.add_verdict(row.problem_id, j, tests_digest(row.data), verdict)
        session.finish_run(run_id, "completed")
    with sqlite3.connect(path) as conn:  # pin every clock the analysis reads
        conn.execute("UPDATE runs SET started_at = ?, finished_at = ?", (EPOCH, EPOCH + 64))
        conn.execute("UPDATE samples SET created_at = ?", (EPOCH + 32,))
        conn.execute("UPDATE verdicts SET created_at = ?", (EPOCH + 33,))
        conn.execute("UPDATE meta SET value = ? WHERE key = 'created_at'", (str(EPOCH),))
    return path


class FakeRun:
    """SessionRunner's interface over an existing session: prepare() loads nothing, run_once() waits
    until stopped. Steering calls are recorded so tests can assert on them."""

    def __init__(
        self,
        launch: Any,
        observer: Any,
        *,
        path: Path,
        problems: int = 4,
        budget: int = 8,
        notify: Any = None,
    ) -> None:
        self.launch = launch
        self.observer = observer
        self.session_path = path
        self.prep: Any = None
        self.tier = "bwrap"
        self.verifier_name = "math-answer"
        self.control = RunControl(budget)
        self._problems = problems
        self._budget = budget
        self.temperatures: tuple[float, ...] | None = None
        self.raised: list[int] = []
        self.added: list[tuple[int, tuple[str, ...]]] = []
        self.running = threading.Event()  # set while run_once is waiting
        self.closed = False

    def prepare(self) -> Any:
        self.prep = SimpleNamespace(
            created=False, budget=self._budget, prompts=[None] * self._problems
        )
        return self.prep

    def run_once(self) -> Any:
        if self.control.cancelled:
            self.control = RunControl(self.prep.budget)
        self.running.set()
        try:
            while not self.control.cancelled:
                self.control.wait_while_paused()
                threading.Event().wait(0.02)
        finally:
            self.running.clear()
        stored = self._problems * self._budget
        return SimpleNamespace(
            status="cancelled",
            samples=0,
            wall_s=0.0,
            stored=stored,
            target=self.prep.budget * self._problems,
        )

    def raise_budget(self, samples: int) -> int:
        self.raised.append(samples)
        self.prep.budget = max(self.prep.budget, samples)
        self.control.raise_budget(self.prep.budget)
        return int(self.prep.budget)

    def set_temperatures(self, temperatures: tuple[float, ...]) -> None:
        self.temperatures = temperatures
        self.control.set_temperatures(temperatures)

    def add_problems(self, *, more: int = 0, ids: tuple[str, ...] = ()) -> list[str]:
        self.added.append((more, ids))
        return []

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop(self) -> None:
        self.control.cancel()

    def close(self) -> None:
        self.closed = True


def script(observer: Any, clock: Any, *, slots: int = 4) -> None:
    """A fixed stretch of a run, fed straight to the observer: ten seconds of sampling on
    `slots` slots, some samples finished and judged, the last verdicts just arrived."""
    clock.now = 100.0
    observer.on_event(RunStarted(1, 32, 0, 8, 4))
    observer.snapshot()  # the rates' starting point, at t=100
    texts = [
        "The answer is 14.",
        "7 + 7 = 14, so the answer is 14.",
        "Let me compute 9 * 62 step by step:\n9 * 60 = 540\n9 * 2 = 18\n540 + 18 = 558",
        "The answer is 61.",
    ]
    for slot in range(slots):
        pid = f"arith/00{slot}"
        observer.on_event(SampleStarted(slot, pid, slot, 0.8, 7 + slot))
        for n, word in enumerate(texts[slot].split(" "), start=1):
            observer.on_event(TokensDecoded(slot, pid, slot, ("" if n == 1 else " ") + word, n))
    clock.now = 110.0
    for slot in (0, 3):  # two samples finish; their verdicts arrive now (panes flash)
        pid = f"arith/00{slot}"
        record = SampleRecord(
            pid,
            slot,
            7 + slot,
            0.8,
            40,
            0.95,
            0.0,
            64,
            texts[slot],
            tuple(range(5)),
            40,
            "eos",
            None,
            0.5,
            -2.0,
            1,
        )
        observer.on_event(SampleFinished(slot, record))
        status = Status.PASS if slot == 0 else Status.FAIL
        observer.on_event(
            SampleVerified(pid, slot, Verdict(status, "math-answer", "1", 0.01, "", tier="bwrap"))
        )


class Clock:
    """A clock the test sets by hand."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
