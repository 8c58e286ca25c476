"""The sandbox's pool: warm workers, each lent to one job at a time and replaced when it dies."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

from troop.errors import TroopError
from troop.verifiers.sandbox.jobs import Job, JobResult
from troop.verifiers.sandbox.process import (
    START_TIMEOUT_S,
    StartError,
    WorkerDied,
    WorkerProcess,
    WorkerRefused,
    start_worker,
)
from troop.verifiers.sandbox.tiers import TIERS, bwrap_problem, describe

#: Seconds past a job's wall limit the worker may take to clean up before it counts as hung.
CLEANUP_GRACE_S = 30.0
#: How often a job is retried when its worker died before taking it (not the job's fault).
INFRA_RETRIES = 2
#: When troop runs as root, each worker's jobs run as a uid of their own, JOB_UID_BASE plus
#: troop's pid * 256 plus a per-process worker count: RLIMIT_NPROC then applies (root ignores
#: it), a sample cannot signal troop, and concurrent troops never share a job uid.
JOB_UID_BASE = 0x5EB0_0000


class Sandbox:
    """A pool of warm worker processes that run jobs isolated from troop and from each other.

    Workers start here, before a caller loads a model, and each forks one limited child per
    job. Use it as a context manager, or call close(): no process outlives it.
    """

    def __init__(
        self, workers: int | None = None, *, tier: str = "auto", preload: Sequence[str] = ()
    ) -> None:
        #: Worker processes, so jobs run at once. Default: two (one on a single core): the
        #: cores the sampler leaves free on a small machine.
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        if self.workers < 1:
            raise TroopError(f"sandbox workers must be at least 1, got {self.workers}")
        if tier not in TIERS:
            raise TroopError(f"unknown sandbox tier {tier!r}", hint="use auto, bwrap or rlimits")
        self._root = os.geteuid() == 0
        # Modules each worker imports before its first fork; "module:function" also calls
        # the function once (a warm-up whose caches every job then inherits).
        self._preload = tuple(preload)
        self._closed = False
        self._lock = threading.Lock()
        self._pool: list[WorkerProcess | None] = [None] * self.workers
        self._idle: list[int] = []  # free slots
        self._free = threading.Condition(self._lock)
        # Workers are started from one long-lived thread: bwrap's --die-with-parent follows
        # the thread that started it, and a caller's short-lived thread would kill its worker.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="troop-sandbox-spawn")
        self._uids = [_new_job_uid() if self._root else None for _ in range(self.workers)]
        self._finalizer = weakref.finalize(self, _shutdown, self._pool, self._spawner, self._uids)
        reason = ""
        #: The isolation in use: "bwrap" or "rlimits".
        self.tier = "bwrap" if tier != "rlimits" else "rlimits"
        if self.tier == "bwrap":
            reason = bwrap_problem(self._root)
            if not reason:
                try:
                    self._pool[0] = self._spawn(0)
                except WorkerRefused as exc:
                    self.close()
                    raise TroopError(f"sandbox worker failed to start: {exc}") from None
                except StartError as exc:
                    reason = str(exc)
            if reason and tier == "bwrap":
                self.close()
                raise TroopError(
                    f"bwrap sandbox not usable: {reason}",
                    hint="install bubblewrap, or use --sandbox rlimits",
                )
            if reason:
                self.tier = "rlimits"
        try:
            for slot in range(self.workers):
                if self._pool[slot] is None:
                    self._pool[slot] = self._spawn(slot)
        except StartError as exc:
            self.close()
            raise TroopError(f"sandbox worker failed to start: {exc}") from None
        self._idle = list(range(self.workers))
        first = self._pool[0]
        assert first is not None
        #: One sentence for people: what the tier isolates, and why bwrap is not used if not.
        self.tier_note = describe(
            self.tier,
            reason if tier == "auto" else "chosen",
            root=self._root,
            ns=first.ns,
            ns_error=first.ns_error,
        )

    # --- public -------------------------------------------------------------------------------

    def run(self, job: Job) -> JobResult:
        """Run one job on a free worker (blocking until one is free) and return how it ended.
        Thread-safe. A job whose worker was dead before taking it is retried on a new worker."""
        slot = self._acquire()
        if slot is None:
            return self._failed("infra_error", "the sandbox is closed")
        try:
            return self._run_on(slot, job)
        finally:
            with self._free:
                self._idle.append(slot)
                self._free.notify()

    def close(self) -> None:
        """Stop every worker and everything their jobs started. Safe to call twice."""
        with self._free:
            self._closed = True
            self._free.notify_all()
        self._finalizer()

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes as troop sees them (the outer bwrap process
        under bwrap), for diagnostics and tests."""
        return [w.proc.pid for w in self._pool if w is not None and w.alive()]

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------

    def _acquire(self) -> int | None:
        with self._free:
            while not self._idle and not self._closed:
                self._free.wait()
            if self._closed:
                return None
            return self._idle.pop()

    def _run_on(self, slot: int, job: Job) -> JobResult:
        # Encoded here, so that a payload that is not JSON fails in the caller, not the worker.
        request = json.dumps(
            {"entry": job.entry, "payload": job.payload, "limits": asdict(job.limits)}
        ).encode()
        problem = ""
        for _attempt in range(INFRA_RETRIES + 1):
            if self._closed:
                return self._failed("infra_error", "the sandbox is closed")
            worker = self._pool[slot]
            if worker is None or not worker.alive():
                try:
                    worker = self._replace(slot)
                except StartError as exc:
                    problem = f"could not restart a sandbox worker: {exc}"
                    continue
            with worker.lock:  # close() must not touch its pipes meanwhile
                result = self._exchange(worker, request, job.limits.wall_s)
            if isinstance(result, JobResult):
                return result
            problem = result  # not the job's fault: try again
        return self._failed("infra_error", problem.strip())

    def _exchange(self, worker: WorkerProcess, request: bytes, wall_s: float) -> JobResult | str:
        """Run one request on `worker`: the result, or why to try again elsewhere."""
        try:
            worker.send(request)
            # The worker forked the job: from here on the job answers for the worker's fate.
            # A job whose entry cannot be imported is answered at once, without a fork.
            reply = worker.recv(START_TIMEOUT_S)
        except (OSError, ValueError, TimeoutError, WorkerDied):
            worker.kill(self._job_uid(worker.slot))
            return f"the sandbox worker failed before the job started {worker.stderr_tail()}"
        try:
            if "outcome" not in reply:
                reply = worker.recv(wall_s + CLEANUP_GRACE_S)
        except (WorkerDied, OSError):
            worker.kill(self._job_uid(worker.slot))
            if self._closed:
                return self._failed("infra_error", "the sandbox was closed during the job")
            return self._failed("crash", "the job killed its sandbox worker")
        except (TimeoutError, ValueError) as exc:
            worker.kill(self._job_uid(worker.slot))
            why = "stopped answering" if isinstance(exc, TimeoutError) else "sent garbage"
            return self._failed("infra_error", f"the sandbox worker {why}")
        result = JobResult(
            outcome=reply["outcome"],
            value=reply["value"],
            error=reply["error"],
            output=reply["output"],
            truncated=reply["truncated"],
            duration_s=reply["duration_s"],
            tier=self.tier,
        )
        # A job whose set-up failed in the sandbox is tried again; any other outcome stands.
        return result.error if result.outcome == "infra_error" else result

    def _failed(self, outcome: str, error: str) -> JobResult:
        return JobResult(outcome, None, error, "", False, 0.0, self.tier)

    def _job_uid(self, slot: int) -> int | None:
        return self._uids[slot]

    def _replace(self, slot: int) -> WorkerProcess:
        old = self._pool[slot]
        if old is not None:
            old.kill(self._job_uid(slot))
        if self._closed:
            raise StartError("the sandbox is closed")
        worker = self._spawn(slot)
        if self._closed:  # closed while it started: close() did not see it
            worker.kill(self._job_uid(slot))
            raise StartError("the sandbox is closed")
        self._pool[slot] = worker
        return worker

    def _spawn(self, slot: int) -> WorkerProcess:
        """Start one worker, on the spawner thread, and wait until it is ready."""
        if not threading.current_thread().name.startswith("troop-sandbox-spawn"):
            try:
                future = self._spawner.submit(self._spawn, slot)
            except RuntimeError:  # the spawner was shut down: the sandbox is closed
                raise StartError("the sandbox is closed") from None
            return future.result()
        return start_worker(
            slot, self.tier, root=self._root, preload=self._preload, job_uid=self._job_uid(slot)
        )


def _shutdown(
    pool: list[WorkerProcess | None], spawner: ThreadPoolExecutor, uids: list[int | None]
) -> None:
    """Close every worker: an idle one gets EOF and exits, a busy one gets SIGTERM, abandons
    its job and exits (the thread waiting on it then sees EOF and cleans up); both sweep
    their job's processes first. Whatever is left after two seconds is killed."""
    idle: list[tuple[int, WorkerProcess]] = []
    for slot, worker in enumerate(pool):
        if worker is None:
            continue
        if worker.lock.acquire(blocking=False):
            idle.append((slot, worker))
            if worker.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    worker.proc.stdin.close()
        elif worker.proc.returncode is None:
            with contextlib.suppress(OSError):
                worker.proc.send_signal(signal.SIGTERM)
        pool[slot] = None
    deadline = time.monotonic() + 2.0
    for slot, worker in idle:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        worker.kill(uids[slot])
        worker.lock.release()
    spawner.shutdown(wait=False)


_uid_lock = threading.Lock()
_uid_count = 0  # worker slots handed out in this process, for job uids


def _new_job_uid() -> int:
    global _uid_count
    with _uid_lock:
        _uid_count += 1
        return JOB_UID_BASE + (os.getpid() << 8) + _uid_count % 256
