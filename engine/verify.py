"""Judging stored samples: a thread per sandbox worker, verdicts stored as they arrive."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from troop.engine.events import RunObserver, SampleVerified
from troop.engine.storage.rows import StoredProblem
from troop.engine.storage.session import Session, tests_digest
from troop.verifiers.base import Check, Status, Verdict, Verifier

#: How often a sample whose verification hit an infrastructure failure is tried again.
INFRA_RETRIES = 2


@dataclass(frozen=True)
class SampleToJudge:
    """A stored sample lacking a current verdict, with the problem it answers."""

    problem: StoredProblem  # its problem as stored (the verifier is handed `problem.data`)
    sample_index: int  # 0-based index within its problem
    text: str  # the completion, exactly as stored


@dataclass(frozen=True)
class VerifySummary:
    """What a verification pass did."""

    verified: int  # samples judged in this pass
    skipped: int  # samples that already had a current verdict
    statuses: dict[str, int]  # this pass's verdicts by status
    wall_s: float  # seconds the pass took


class Verification:
    """Runs a verifier over samples concurrently, as many at once as the sandbox has workers,
    stores each verdict and reports it. Submitting never blocks the sampling thread."""

    def __init__(
        self,
        session: Session,
        verifier: Verifier,
        sandbox: Any,
        observer: RunObserver,
        *,
        workers: int | None = None,
        on_submit: Callable[[int], None] | None = None,
    ) -> None:
        self.session = session
        self.on_submit = on_submit  # told of each submission (progress totals)
        self.verifier = verifier
        self.sandbox = sandbox
        self.observer = observer
        n = workers or getattr(sandbox, "workers", None) or 1
        self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="troop-verify")
        self._futures: list[Future[Verdict]] = []
        self._lock = threading.Lock()
        self.statuses: Counter[str] = Counter()

    def submit(self, problem: StoredProblem, sample_index: int, text: str) -> Future[Verdict]:
        future = self._pool.submit(self._verify, problem, sample_index, text)
        if self.on_submit is not None:
            self.on_submit(1)
        with self._lock:
            self._futures.append(future)
        return future

    def _verify(self, problem: StoredProblem, sample_index: int, text: str) -> Verdict:
        # Verifiers are plugins below the engine: they get the stored mapping, their API.
        check = Check(text=text, problem=problem.data)
        for _attempt in range(INFRA_RETRIES + 1):
            verdict = self.verifier.verify(check, self.sandbox)
            if verdict.status is not Status.INFRA_ERROR:
                break
        pid = problem.problem_id
        self.session.add_verdict(pid, sample_index, tests_digest(problem.data), verdict)
        with self._lock:
            self.statuses[str(verdict.status)] += 1
        self.observer.on_event(SampleVerified(pid, sample_index, verdict))
        return verdict

    def wait(self) -> None:
        """Block until every submitted sample is judged; re-raises a verifier's bug."""
        with self._lock:
            futures = list(self._futures)
        for f in futures:
            f.result()

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def pending(session: Session, verifier: Verifier, *, force: bool = False) -> list[SampleToJudge]:
    """Samples with no verdict of this verifier version against their problem's current tests."""
    problems = {p.problem_id: p for p in session.problems()}
    digests = {pid: tests_digest(p.data) for pid, p in problems.items()}
    have = set() if force else session.verdict_keys(verifier.name, verifier.version)
    return [
        SampleToJudge(problems[record.problem_id], record.sample_index, record.text)
        for record in session.samples()
        if (record.problem_id, record.sample_index, digests[record.problem_id]) not in have
    ]


def verify_session(
    session: Session,
    verifier: Verifier,
    sandbox: Any,
    observer: RunObserver,
    *,
    force: bool = False,
    workers: int | None = None,
) -> VerifySummary:
    """Judge every sample lacking a current verdict (all of them with `force`)."""
    t0 = time.perf_counter()
    todo = pending(session, verifier, force=force)
    total = session.sample_count()
    # The session's verifier is the one coverage counts. A second verifier (e.g. the cheap
    # python-examples, to measure its false positives) adds verdicts without replacing it.
    current = session.meta("verifier")
    if current is None or current["name"] == verifier.name:
        session.set_meta("verifier", {"name": verifier.name, "version": verifier.version})
    verification = Verification(session, verifier, sandbox, observer, workers=workers)
    try:
        for sample in todo:
            verification.submit(sample.problem, sample.sample_index, sample.text)
        verification.wait()
    finally:
        verification.close()
    return VerifySummary(
        len(todo), total - len(todo), dict(verification.statuses), time.perf_counter() - t0
    )
