"""Running untrusted code: a warm pool of worker processes that fork one isolated child per job."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from troop.errors import TroopError
from troop.verifiers import _worker

#: Seconds a worker may take to start (interpreter, preloads, namespace probe).
START_TIMEOUT_S = 60.0
#: Seconds past a job's wall limit the worker may take to clean up before it counts as hung.
CLEANUP_GRACE_S = 30.0
#: How often a job is retried when its worker died before taking it (not the job's fault).
INFRA_RETRIES = 2
#: When troop runs as root, each worker's jobs run as a uid of their own, JOB_UID_BASE plus
#: troop's pid * 256 plus a per-process worker count: RLIMIT_NPROC then applies (root ignores
#: it), a sample cannot signal troop, and concurrent troops never share a job uid.
JOB_UID_BASE = 0x5EB0_0000
#: A word in every worker's command line, so a person (or a test) can find them in `ps`.
WORKER_MARKER = "troop-sandbox-worker"

_BOOT = "import sys; sys.path[:] = {path!r}; from troop.verifiers._worker import main; main()"
_TIERS = ("auto", "bwrap", "rlimits")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one job."""

    wall_s: float = 10.0  # wall-clock limit per job, seconds
    cpu_s: float = 10.0  # CPU-time limit (RLIMIT_CPU, whole seconds, rounded up), seconds
    memory_bytes: int = 1 << 30  # address-space limit (RLIMIT_AS), bytes
    file_bytes: int = 16 << 20  # largest file the job may write (RLIMIT_FSIZE), bytes
    open_files: int = 64  # open file descriptors (RLIMIT_NOFILE)
    processes: int = 64  # processes and threads (RLIMIT_NPROC); per uid, and the job's uid
    # (or user namespace) is its own under bwrap or when troop runs as root
    output_bytes: int = 64 << 10  # cap on captured stdout+stderr, bytes


@dataclass(frozen=True)
class Job:
    """One piece of work for the sandbox."""

    entry: str  # "module:function", trusted code importable in the worker; called in a fresh
    # forked child as function(payload) and must return a JSON-serialisable value
    payload: dict[str, Any]  # JSON-serialisable argument
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class JobResult:
    """How a job ended, with everything it printed."""

    outcome: str  # "returned" | "error" (the entry raised; `error` holds the traceback) |
    # "timeout" | "resource" (memory/file/process limits) | "crash" (the child died without
    # returning: signal, os._exit, killed) | "infra_error" (the sandbox itself failed)
    value: Any  # the entry's return value when outcome == "returned", else None
    error: str  # traceback or reason, "" if none
    output: str  # captured stdout+stderr of the child and all it started, capped while reading
    # (decoded as UTF-8 with replacement)
    truncated: bool  # whether the output hit the cap
    duration_s: float  # seconds from the fork to the end of the clean-up
    tier: str  # "bwrap" or "rlimits"


class _StartError(Exception):
    """A worker process that could not be started; the message says why."""


class _WorkerRefused(_StartError):
    """A worker that started but could not set itself up (a preload failed): no tier helps."""


class _WorkerDied(Exception):
    """The worker's reply channel closed."""


class _WorkerProcess:
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
        _worker.write_all(self._in, _worker._HEADER.pack(len(data)) + data)

    def recv(self, timeout: float) -> Any:
        """The next message; _WorkerDied at end of file, TimeoutError past `timeout` seconds."""
        deadline = time.monotonic() + timeout
        header = self._read(_worker._HEADER.size, deadline)
        (size,) = _worker._HEADER.unpack(header)
        return json.loads(self._read(size, deadline))

    def _read(self, size: int, deadline: float) -> bytes:
        parts: list[bytes] = []
        while size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._out], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(self._out, min(size, 1 << 20))
            if not chunk:
                raise _WorkerDied
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
            _worker.remove_tree(self.scratch)
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
        if tier not in _TIERS:
            raise TroopError(f"unknown sandbox tier {tier!r}", hint="use auto, bwrap or rlimits")
        self._root = os.geteuid() == 0
        # Modules each worker imports before its first fork; "module:function" also calls
        # the function once (a warm-up whose caches every job then inherits).
        self._preload = tuple(preload)
        self._closed = False
        self._lock = threading.Lock()
        self._pool: list[_WorkerProcess | None] = [None] * self.workers
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
            reason = _bwrap_problem(self._root)
            if not reason:
                try:
                    self._pool[0] = self._spawn(0)
                except _WorkerRefused as exc:
                    self.close()
                    raise TroopError(f"sandbox worker failed to start: {exc}") from None
                except _StartError as exc:
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
        except _StartError as exc:
            self.close()
            raise TroopError(f"sandbox worker failed to start: {exc}") from None
        self._idle = list(range(self.workers))
        first = self._pool[0]
        assert first is not None
        #: One sentence for people: what the tier isolates, and why bwrap is not used if not.
        self.tier_note = self._describe(first, reason if tier == "auto" else "chosen")

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
                except _StartError as exc:
                    problem = f"could not restart a sandbox worker: {exc}"
                    continue
            with worker.lock:  # close() must not touch its pipes meanwhile
                result = self._exchange(worker, request, job.limits.wall_s)
            if isinstance(result, JobResult):
                return result
            problem = result  # not the job's fault: try again
        return self._failed("infra_error", problem.strip())

    def _exchange(self, worker: _WorkerProcess, request: bytes, wall_s: float) -> JobResult | str:
        """Run one request on `worker`: the result, or why to try again elsewhere."""
        try:
            worker.send(request)
            # The worker forked the job: from here on the job answers for the worker's fate.
            # A job whose entry cannot be imported is answered at once, without a fork.
            reply = worker.recv(START_TIMEOUT_S)
        except (OSError, ValueError, TimeoutError, _WorkerDied):
            worker.kill(self._job_uid(worker.slot))
            return f"the sandbox worker failed before the job started {worker.stderr_tail()}"
        try:
            if "outcome" not in reply:
                reply = worker.recv(wall_s + CLEANUP_GRACE_S)
        except (_WorkerDied, OSError):
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

    def _replace(self, slot: int) -> _WorkerProcess:
        old = self._pool[slot]
        if old is not None:
            old.kill(self._job_uid(slot))
        if self._closed:
            raise _StartError("the sandbox is closed")
        worker = self._spawn(slot)
        if self._closed:  # closed while it started: close() did not see it
            worker.kill(self._job_uid(slot))
            raise _StartError("the sandbox is closed")
        self._pool[slot] = worker
        return worker

    def _spawn(self, slot: int) -> _WorkerProcess:
        """Start one worker and wait until it is ready."""
        if not threading.current_thread().name.startswith("troop-sandbox-spawn"):
            try:
                future = self._spawner.submit(self._spawn, slot)
            except RuntimeError:  # the spawner was shut down: the sandbox is closed
                raise _StartError("the sandbox is closed") from None
            return future.result()
        paths = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
        command = [sys.executable, "-c", _BOOT.format(path=paths), WORKER_MARKER]
        if self.tier == "bwrap":
            command = _bwrap_command(self._root, paths) + command
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LD_LIBRARY_PATH")}
        env["LANG"] = "C.UTF-8"
        log = tempfile.TemporaryFile(prefix="troop-sandbox-")  # noqa: SIM115 - lives with the worker
        scratch = None
        if self.tier == "rlimits":  # under bwrap jobs' folders live in the worker's own /tmp
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
            raise _StartError(f"{command[0]}: {exc.strerror}") from None
        worker = _WorkerProcess(proc, log, slot, scratch)
        config = {
            "preload": list(self._preload),
            "namespaces": self.tier == "bwrap",
            "job_uid": self._job_uid(slot),
            "scratch": scratch,
            # Bound read-only into the worker's private /tmp, and again into each job's.
            "tmp_binds": _needed_under("/tmp", paths) if self.tier == "bwrap" else [],
        }
        try:
            worker.send(json.dumps(config).encode())
            ready = worker.recv(START_TIMEOUT_S)
        except (OSError, TimeoutError, _WorkerDied, ValueError):
            worker.kill(None)
            raise _StartError(worker.stderr_tail() or "the worker exited at start") from None
        if not ready.get("ready"):
            worker.kill(None)
            raise _WorkerRefused(str(ready.get("error", "unknown error")))
        worker.ns, worker.ns_error = bool(ready.get("ns")), str(ready.get("ns_error", ""))
        return worker

    def _describe(self, worker: _WorkerProcess, reason: str) -> str:
        # Plain text: no square brackets, which a console might take for markup.
        return self._sentence(worker, reason).replace("[", "(").replace("]", ")")

    def _sentence(self, worker: _WorkerProcess, reason: str) -> str:
        as_uid = "; samples run as a uid of their own, not root" if self._root else ""
        if self.tier == "rlimits":
            why = " (as asked):" if reason == "chosen" else f": bwrap not usable ({reason});"
            return (
                f"rlimits only{why} samples run with resource limits but can reach the "
                f"network and the file system{as_uid}"
            )
        base = "bwrap: no network, read-only root, private /tmp and home"
        if worker.ns:
            return f"{base}, own PID namespace per sample{as_uid}"
        return (
            f"{base}; per-sample namespaces unavailable ({worker.ns_error}), so each worker's "
            f"/tmp is wiped between samples{as_uid}"
        )


def _shutdown(
    pool: list[_WorkerProcess | None], spawner: ThreadPoolExecutor, uids: list[int | None]
) -> None:
    """Close every worker: an idle one gets EOF and exits, a busy one gets SIGTERM, abandons
    its job and exits (the thread waiting on it then sees EOF and cleans up); both sweep
    their job's processes first. Whatever is left after two seconds is killed."""
    idle: list[tuple[int, _WorkerProcess]] = []
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


_bwrap_probe: dict[bool, str] = {}  # per root-ness: "" when bwrap works, else why not


def _bwrap_problem(root: bool) -> str:
    """Why bwrap cannot be used here, or "" when it can: probed once by running it."""
    if root in _bwrap_probe:
        return _bwrap_probe[root]
    true = shutil.which("true") or "/bin/true"
    if shutil.which("bwrap") is None:
        reason = "bwrap is not installed"
    else:
        try:
            done = subprocess.run(
                _bwrap_command(root, []) + [true],
                capture_output=True,
                timeout=30,
                stdin=subprocess.DEVNULL,
            )
            err = " ".join(done.stderr.decode(errors="replace").split())
            reason = "" if done.returncode == 0 else (err or f"exit status {done.returncode}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = str(exc)
    _bwrap_probe[root] = reason
    return reason


def _bwrap_command(root: bool, paths: Sequence[str]) -> list[str]:
    """The bwrap command line a worker runs under (without the program)."""
    if root:
        # No user namespace: it would map only uid 0, and jobs must run as a uid of their own
        # (RLIMIT_NPROC ignores root). The worker keeps root's powers; its jobs drop them.
        args = [
            "bwrap",
            "--unshare-net",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--cap-add",
            "ALL",
        ]
    else:
        args = ["bwrap", "--unshare-all"]
    args += [
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
    ]
    for path in _needed_under("/tmp", paths):  # troop itself may live under /tmp (a CI clone)
        args += ["--ro-bind", path, path]
    for home in _homes():
        # An empty, read-only home; what Python needs from under it is bound back read-only.
        args += ["--tmpfs", home]
        for path in _needed_under(home, paths):
            args += ["--ro-bind", path, path]
        args += ["--remount-ro", home]
    return args + ["--chdir", "/", "--"]


def _homes() -> list[str]:
    found = {os.path.realpath(os.path.expanduser("~"))}
    with contextlib.suppress(KeyError):
        found.add(os.path.realpath(pwd.getpwuid(os.getuid()).pw_dir))
    # A home that is an ancestor of another would hide it: keep the outermost only.
    homes = sorted(h for h in found if h != "/" and os.path.isdir(h))
    return [h for h in homes if not any(h != o and h.startswith(o + "/") for o in homes)]


def _needed_under(home: str, paths: Sequence[str]) -> list[str]:
    """Directories under `home` the worker's Python needs: its prefixes, sys.path, troop."""
    wanted = {
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        os.path.dirname(sys.executable),
        *paths,
    }
    wanted.update(os.path.dirname(os.path.dirname(m.__file__ or "")) for m in _troop_modules())
    resolved: set[str] = set()
    for path in wanted:
        for candidate in (os.path.abspath(path), os.path.realpath(path)):
            if candidate.startswith(home + "/") and os.path.exists(candidate):
                resolved.add(candidate if os.path.isdir(candidate) else os.path.dirname(candidate))
    ordered = sorted(resolved, key=len)
    return [
        p
        for i, p in enumerate(ordered)
        if not any(p.startswith(q + "/") or p == q for q in ordered[:i])
    ]


def _troop_modules() -> list[Any]:
    return [
        m
        for name, m in list(sys.modules.items())
        if name in ("troop", "troop.verifiers", "troop.engine") and m is not None
    ]


# --- helpers for entries that run untrusted code ----------------------------------------------

#: The outcome ("resource", "crash" or "error") an exception escaping a job stands for.
classify_exception = _worker.classify_exception
#: The whole seconds RLIMIT_CPU enforces for a Limits.cpu_s.
cpu_seconds = _worker.cpu_seconds


@dataclass
class UntrustedProcess:
    """A process forked by `spawn_untrusted`, seen from the job that forked it."""

    pid: int  # its process id
    channel: socket.socket  # the job's end of the socket pair shared with it

    reaped: bool = False  # once reaped, its pid may name another process: never signal it

    def kill(self) -> None:
        """SIGKILL its whole session (it started one), then it; nothing once it is reaped."""
        if self.reaped:
            return
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> tuple[int, float] | None:
        """Reap it: its wait status and the CPU seconds it used; None if it is still running
        after `timeout` seconds (None: wait as long as it takes)."""
        if timeout is not None:
            pidfd = os.pidfd_open(self.pid)
            try:
                if not select.select([pidfd], [], [], timeout)[0]:
                    return None
            finally:
                os.close(pidfd)
        _, status, usage = os.wait4(self.pid, 0)
        self.reaped = True
        return status, usage.ru_utime + usage.ru_stime


def spawn_untrusted(target: Callable[[socket.socket], None]) -> UntrustedProcess:
    """Fork `target(channel)` into a process of its own, for code the job does not trust.

    Call it from inside a job (an entry running in the sandbox). The new process starts its own
    session, dies with the job, inherits the job's limits, namespaces, uid and output, and holds
    only stdin/stdout/stderr and its end of a socket pair (fd 3): not the job's result channel.
    The job stays out of its reach: the job is non-dumpable (so /proc/<job>/mem and fd are
    closed to it) and, under bwrap, PID 1 of the namespace, which its signals cannot kill.
    It exits when `target` returns or raises; the job must `wait()` for it.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # or the child would print our buffered text a second time
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the untrusted child
        code = 0
        try:
            ours.close()
            os.setsid()
            _worker.prctl(_worker._PR_SET_PDEATHSIG, signal.SIGKILL)
            fd = theirs.detach()
            if fd != 3:
                os.dup2(fd, 3)
                os.close(fd)
            os.closerange(4, 1 << 16)
            target(socket.socket(fileno=3))
        except BaseException:
            code = 1
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)
    theirs.close()
    return UntrustedProcess(pid, ours)
