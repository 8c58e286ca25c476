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
from troop.engine.storage.session import Session, tests_digest
from troop.verifiers.base import Check, Status, Verdict, Verifier

#: How often a sample whose verification hit an infrastructure failure is tried again.
INFRA_RETRIES = 2


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

    def submit(self, problem: dict[str, Any], sample_index: int, text: str) -> Future[Verdict]:
        future = self._pool.submit(self._verify, problem, sample_index, text)
        if self.on_submit is not None:
            self.on_submit(1)
        with self._lock:
            self._futures.append(future)
        return future

    def _verify(self, problem: dict[str, Any], sample_index: int, text: str) -> Verdict:
        check = Check(text=text, problem=problem)
        for _attempt in range(INFRA_RETRIES + 1):
            verdict = self.verifier.verify(check, self.sandbox)
            if verdict.status is not Status.INFRA_ERROR:
                break
        self.session.add_verdict(problem["id"], sample_index, tests_digest(problem), verdict)
        with self._lock:
            self.statuses[str(verdict.status)] += 1
        self.observer.on_event(SampleVerified(problem["id"], sample_index, verdict))
        return verdict

    def wait(self) -> None:
        """Block until every submitted sample is judged; re-raises a verifier's bug."""
        with self._lock:
            futures = list(self._futures)
        for f in futures:
            f.result()

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def pending(
    session: Session, verifier: Verifier, *, force: bool = False
) -> list[tuple[dict[str, Any], int, str]]:
    """Samples with no verdict of this verifier version against their problem's current tests."""
    problems = {p.problem_id: p.data for p in session.problems()}
    have = set() if force else session.verdict_keys(verifier.name, verifier.version)
    out = []
    for record in session.samples():
        data = problems[record.problem_id]
        if (record.problem_id, record.sample_index, tests_digest(data)) not in have:
            out.append((data, record.sample_index, record.text))
    return out


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
        for problem, index, text in todo:
            verification.submit(problem, index, text)
        verification.wait()
    finally:
        verification.close()
    return VerifySummary(
        len(todo), total - len(todo), dict(verification.statuses), time.perf_counter() - t0
    )
