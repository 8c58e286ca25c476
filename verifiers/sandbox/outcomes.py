"""How a job ended: what the worker saw of it (output, status lines, result) made an outcome."""

from __future__ import annotations

import errno
import os
import signal
import time
from typing import Any

from troop.verifiers.sandbox.wire import MAX_RESULT, decode_message

#: Errors that mean a resource limit was hit rather than a bug in the job.
RESOURCE_ERRNOS = frozenset(
    {
        errno.EFBIG,
        errno.EMFILE,
        errno.ENFILE,
        errno.EAGAIN,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.ENOMEM,
    }
)

#: Outcomes a job's process may report itself (besides returning a value).
OUTCOMES = ("error", "resource", "crash", "infra_error")


def cpu_seconds(cpu_s: float) -> int:
    """RLIMIT_CPU counts whole seconds: the soft limit used for a Limits.cpu_s."""
    return max(1, int(-(-cpu_s // 1)))


def classify_exception(exc: BaseException) -> str:
    """The outcome an exception escaping a job stands for."""
    if isinstance(exc, MemoryError):
        return "resource"
    if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
        return "resource"
    if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
        return "resource"
    if isinstance(exc, SystemExit):
        return "crash"
    return "error"


class Capture:
    """Stdout+stderr of a job, kept up to a cap; the rest is read and discarded."""

    def __init__(self, cap: int) -> None:
        self.cap = cap  # bytes kept
        self.data = bytearray()
        self.truncated = False  # whether bytes were discarded

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(room, 0)]
        self.data += chunk


class Progress:
    """What the worker has heard from the intermediate about a running job."""

    def __init__(self) -> None:
        self.job_pid: int | None = None  # J's pid, as the worker sees it
        self.status: int | None = None  # J's wait status once it ended; -1: unknowable
        self.cpu: float | None = None  # CPU seconds J used, when reported
        self.failure = ""  # why the intermediate could not start J, if it could not
        self._pending = b""  # an incomplete line

    def feed(self, chunk: bytes) -> None:
        """Take status lines: "pid N", "exit STATUS CPU" or "fail REASON"."""
        self._pending += chunk
        while b"\n" in self._pending:
            line, _, self._pending = self._pending.partition(b"\n")
            word, _, rest = line.decode(errors="replace").partition(" ")
            try:
                if word == "pid":
                    self.job_pid = int(rest)
                elif word == "exit":
                    status, cpu = rest.split()
                    self.status, self.cpu = int(status), float(cpu)
                elif word == "fail":
                    self.failure = rest or "unknown error"
            except ValueError:
                self.failure = f"garbled status line {line!r}"

    @property
    def over(self) -> bool:
        return self.status is not None or bool(self.failure)


def reply(
    outcome: str, value: Any, error: str, output: bytes, truncated: bool, start: float
) -> dict[str, Any]:
    """The worker's answer to troop for one job (its duration measured from `start`)."""
    return {
        "outcome": outcome,
        "value": value,
        "error": error,
        "output": output.decode("utf-8", errors="replace"),
        "truncated": truncated,
        "duration_s": time.monotonic() - start,
    }


def classify(
    limits: dict[str, Any],
    timed_out: bool,
    progress: Progress,
    result: bytes,
    overflow: bool,
    capture: Capture,
    start: float,
) -> dict[str, Any]:
    """Turn what the worker observed into an outcome and its reason."""
    output, truncated = bytes(capture.data), capture.truncated

    def answer(outcome: str, value: Any = None, error: str = "") -> dict[str, Any]:
        return reply(outcome, value, error, output, truncated, start)

    if progress.failure:
        return answer("infra_error", error=f"could not start the job: {progress.failure}")
    if timed_out:
        return answer("timeout", error=f"wall-clock limit of {limits['wall_s']:g} s exceeded")
    if overflow:
        return answer("error", error=f"the return value exceeds {MAX_RESULT >> 20} MiB")
    try:
        message = decode_message(result)
    except ValueError:
        message = None
    if isinstance(message, dict) and "value" in message:
        return answer("returned", message["value"])
    if isinstance(message, dict) and message.get("kind") in OUTCOMES:
        return answer(message["kind"], error=str(message.get("error", "")))
    cpu_limit = cpu_seconds(float(limits["cpu_s"]))
    status, cpu = progress.status, progress.cpu
    if status is None or status < 0:
        return answer("crash", error="the job's process vanished without an exit status")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and (cpu or 0) >= cpu_limit - 0.05):
            return answer("timeout", error=f"CPU-time limit of {cpu_limit} s exceeded")
        if sig == signal.SIGXFSZ:
            return answer("resource", error="file-size limit exceeded (SIGXFSZ)")
        return answer("crash", error=f"killed by signal {_signal_name(sig)}")
    code = os.waitstatus_to_exitcode(status)
    return answer("crash", error=f"exited with status {code} without returning a result")


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)
