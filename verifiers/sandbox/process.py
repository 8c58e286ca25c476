"""troop's handle on one worker process: started (inside bwrap or not), spoken to, killed."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from troop.verifiers.sandbox.reaper import remove_tree
from troop.verifiers.sandbox.tiers import bwrap_command, needed_under
from troop.verifiers.sandbox.wire import HEADER, frame, write_all

#: Seconds a worker may take to start (interpreter, preloads, namespace probe).
START_TIMEOUT_S = 60.0
#: A word in every worker's command line, so a person (or a test) can find them in `ps`.
WORKER_MARKER = "troop-sandbox-worker"

# The worker gets troop's sys.path (made absolute: it starts in /) and imports only the
# worker's side of the sandbox package, not the pool.
_BOOT = (
    "import sys; sys.path[:] = {path!r}; from troop.verifiers.sandbox.worker import main; main()"
)


class StartError(Exception):
    """A worker process that could not be started; the message says why."""


class WorkerRefused(StartError):
    """A worker that started but could not set itself up (a preload failed): no tier helps."""


class WorkerDied(Exception):
    """The worker's reply channel closed."""


class WorkerProcess:
    """troop's handle on one worker: the process and its pipes."""

    def __init__(
        self, proc: subprocess.Popen[bytes], log: IO[bytes], slot: int, scratch: str | None
    ) -> None:
        self.proc = proc
        self.log = log  # the worker's stderr, for error messages
        self.slot = slot  # index in the pool
        self.scratch = scratch  # folder of its jobs' folders (rlimits tier), removed with it
        self.lock = threading.Lock()  # held while a job runs on it: close() leaves it alone
        self.ns = False  # whether its jobs get their own namespaces
        self.ns_error = ""  # why not, when they do not
        assert proc.stdin is not None and proc.stdout is not None
        self._out = proc.stdout.fileno()
        self._in = proc.stdin.fileno()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, data: bytes) -> None:
        """Send one JSON message, already encoded."""
        write_all(self._in, frame(data))

    def recv(self, timeout: float) -> Any:
        """The next message; WorkerDied at end of file, TimeoutError past `timeout` seconds."""
        deadline = time.monotonic() + timeout
        header = self._read(HEADER.size, deadline)
        (size,) = HEADER.unpack(header)
        return json.loads(self._read(size, deadline))

    def _read(self, size: int, deadline: float) -> bytes:
        parts: list[bytes] = []
        while size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._out], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(self._out, min(size, 1 << 20))
            if not chunk:
                raise WorkerDied
            parts.append(chunk)
            size -= len(chunk)
        return b"".join(parts)

    def stderr_tail(self, limit: int = 600) -> str:
        try:
            self.log.seek(0, os.SEEK_END)
            end = self.log.tell()
            self.log.seek(max(0, end - limit))
            text = self.log.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""
        return " ".join(text.split())

    def kill(self, job_uid: int | None) -> None:
        """Kill the worker's whole session (under bwrap that ends its PID namespace) and, when
        troop is root, every process of its job uid; reap it."""
        if self.proc.returncode is None:  # once reaped, its pid may be someone else's
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if job_uid is not None:
            _kill_uid(job_uid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.scratch is not None:  # what a job left if it took its worker down with it
            remove_tree(self.scratch)
        for stream in (self.proc.stdin, self.proc.stdout, self.log):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


def _kill_uid(uid: int) -> None:
    """SIGKILL every process owned by `uid` (a job uid: only jobs use it). Each is pinned by a
    pidfd and checked again before the signal, so a recycled pid is never hit."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            pidfd = os.pidfd_open(int(name))
        except OSError:
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid == uid:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(pidfd)


def start_worker(
    slot: int, tier: str, *, root: bool, preload: Sequence[str], job_uid: int | None
) -> WorkerProcess:
    """Start the worker for pool slot `slot` in `tier` ("bwrap" or "rlimits") and wait until
    it is ready. Call it from a thread that outlives the worker: bwrap's --die-with-parent
    follows the thread that started it."""
    paths = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
    command = [sys.executable, "-c", _BOOT.format(path=paths), WORKER_MARKER]
    if tier == "bwrap":
        command = bwrap_command(root, paths) + command
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LD_LIBRARY_PATH")}
    env["LANG"] = "C.UTF-8"
    log = tempfile.TemporaryFile(prefix="troop-sandbox-")  # noqa: SIM115 - lives with the worker
    scratch = None
    if tier == "rlimits":  # under bwrap jobs' folders live in the worker's own /tmp
        scratch = tempfile.mkdtemp(prefix="troop-sandbox-")
        os.chmod(scratch, 0o711)  # a job running as another uid must reach its own folder
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            start_new_session=True,
            cwd="/",
        )
    except OSError as exc:
        log.close()
        if scratch is not None:
            os.rmdir(scratch)
        raise StartError(f"{command[0]}: {exc.strerror}") from None
    worker = WorkerProcess(proc, log, slot, scratch)
    config = {
        "preload": list(preload),
        "namespaces": tier == "bwrap",
        "job_uid": job_uid,
        "scratch": scratch,
        # Bound read-only into the worker's private /tmp, and again into each job's.
        "tmp_binds": needed_under("/tmp", paths) if tier == "bwrap" else [],
    }
    try:
        worker.send(json.dumps(config).encode())
        ready = worker.recv(START_TIMEOUT_S)
    except (OSError, TimeoutError, WorkerDied, ValueError):
        worker.kill(None)
        raise StartError(worker.stderr_tail() or "the worker exited at start") from None
    if not ready.get("ready"):
        worker.kill(None)
        raise WorkerRefused(str(ready.get("error", "unknown error")))
    worker.ns, worker.ns_error = bool(ready.get("ns")), str(ready.get("ns_error", ""))
    return worker
