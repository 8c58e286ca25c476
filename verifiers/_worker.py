"""The sandbox worker: a warm process that forks one isolated, limited child per job."""

# Process tree of one job, all forked (no new interpreter):
#   worker W (subreaper, non-dumpable)
#     └ intermediate C (own session; enters the job's namespaces; relays J's exit status)
#         └ job J (own session; PID 1 of the job's PID namespace under bwrap; limits, clean env)
# J's getppid() is never W, so killing "the parent" cannot take the worker down; everything J
# leaves behind is re-parented to W (or killed with J's PID namespace) and killed after the job.

from __future__ import annotations

import contextlib
import ctypes
import errno
import importlib
import io
import json
import os
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

_HEADER = struct.Struct(">I")  # length prefix of every message: 4 bytes, big-endian, bytes
_MAX_MESSAGE = 256 << 20  # largest message a reader accepts, bytes
_MAX_RESULT = 32 << 20  # largest return value a job may send to the worker, bytes
_READ_CHUNK = 1 << 16  # bytes per read from the output pipe

_CLONE_NEWNS = 0x00020000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 8, 4096, 0x4000, 1 << 18
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_KEEPCAPS = 8
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE = 47, 2
_CAP_DAC_READ_SEARCH = 2
_CAP_SYS_ADMIN = 21
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

#: Environment of every job: nothing is inherited from the worker or from troop.
JOB_PATH = "/usr/local/bin:/usr/bin:/bin"
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
_OUTCOMES = ("error", "resource", "crash", "infra_error")

_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """The C library, loaded once per worker (forked children share it)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
    """Call prctl(2), raising OSError on failure."""
    ul = ctypes.c_ulong
    if libc().prctl(option, ul(arg), ul(arg3), ul(0), ul(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def set_capabilities(caps: tuple[int, ...] = ()) -> None:
    """Keep exactly `caps` (capability numbers below 32) in the effective, permitted and
    inheritable sets; an empty tuple drops every capability."""
    mask = 0
    for cap in caps:
        mask |= 1 << cap
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = data[0].inheritable = mask
    _check(libc().capset(ctypes.byref(header), data), "capset")


def has_capability(cap: int) -> bool:
    """Whether `cap` is in this process's effective set (within its user namespace)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> cap & 1)
    return False


# --- framing ----------------------------------------------------------------------------------


def write_all(fd: int, data: bytes) -> None:
    """Write every byte, retrying short writes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def send(fd: int, obj: Any) -> None:
    """Send one length-prefixed JSON message."""
    data = json.dumps(obj).encode()
    write_all(fd, _HEADER.pack(len(data)) + data)


def read_exact(fd: int, size: int) -> bytes | None:
    """Exactly `size` bytes, or None at end of file."""
    parts: list[bytes] = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def recv(fd: int) -> Any:
    """Receive one length-prefixed JSON message; None at end of file."""
    header = read_exact(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > _MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes exceeds the limit")
    data = read_exact(fd, size)
    if data is None:
        return None
    return json.loads(data)


def decode_message(buffer: bytes) -> Any:
    """The one complete message in `buffer`; ValueError when it is incomplete or malformed."""
    if len(buffer) < _HEADER.size:
        raise ValueError("no message")
    (size,) = _HEADER.unpack(buffer[: _HEADER.size])
    if len(buffer) != _HEADER.size + size:
        raise ValueError("truncated message")
    return json.loads(buffer[_HEADER.size :])


# --- the worker loop --------------------------------------------------------------------------


class Worker:
    """One worker process's state: its configuration and the pipes to troop."""

    def __init__(self, config: dict[str, Any], reply_fd: int, request_fd: int) -> None:
        self.config = config
        self.reply_fd = reply_fd  # where results go to troop
        self.request_fd = request_fd  # where jobs come from; EOF means troop is gone
        self.job_uid: int | None = config.get("job_uid")  # uid jobs run as when troop is root
        self.namespaces = False  # whether each job gets its own PID/mount/IPC namespace
        self.ns_flags = 0  # unshare(2) flags for a job's namespaces
        self.entries: dict[str, Callable[[Any], Any]] = {}
        self.pid = os.getpid()

    def resolve(self, entry: str) -> Callable[[Any], Any]:
        """The trusted function named "module:function", imported in the worker once."""
        fn = self.entries.get(entry)
        if fn is None:
            module_name, _, attr = entry.partition(":")
            if not module_name or not attr:
                raise ValueError(f"entry {entry!r} is not of the form 'module:function'")
            fn = getattr(importlib.import_module(module_name), attr)
            self.entries[entry] = fn
        return fn


def main() -> None:
    """Run the worker loop: read jobs from stdin, reply on stdout, until stdin closes."""
    request_fd, reply_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)  # a stray print must never corrupt the reply channel
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    config = recv(request_fd)
    if config is None:
        return
    worker = Worker(config, reply_fd, request_fd)
    ready: dict[str, Any] = {"ready": True, "pid": worker.pid, "ns": False, "ns_error": ""}
    try:
        # Orphans of a job (a setsid double-fork daemon) re-parent to us, so we can kill them.
        prctl(_PR_SET_CHILD_SUBREAPER, 1)
        # Jobs run as our uid: without this they could read our memory and pipes via /proc.
        prctl(_PR_SET_DUMPABLE, 0)
        for name in config.get("preload", ()):
            module, _, warm_up = name.partition(":")
            loaded = importlib.import_module(module)
            if warm_up:
                # What the warm-up fills (parser tables, caches) every forked job inherits.
                getattr(loaded, warm_up)()
        if config.get("namespaces"):
            worker.ns_flags = _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWIPC
            if not has_capability(_CAP_SYS_ADMIN):
                worker.ns_flags |= _CLONE_NEWUSER  # a nested user namespace grants the mounts
            worker.namespaces, ready["ns_error"] = _probe_namespaces(worker)
            ready["ns"] = worker.namespaces
    except BaseException as exc:
        ready = {"ready": False, "error": f"{type(exc).__name__}: {exc}"}
    send(reply_fd, ready)
    if not ready["ready"]:
        return
    try:
        while True:
            message = recv(request_fd)
            if message is None:
                break
            reply = run_job(worker, message)
            if reply is None:  # troop went away mid-job
                break
            send(reply_fd, reply)
    except (OSError, _Stopped):
        pass  # troop went away, or is closing the sandbox during a job
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sweep(worker)
        if config.get("scratch"):  # troop may have died without cleaning up
            remove_tree(config["scratch"])


class _Stopped(BaseException):
    """SIGTERM from troop: abandon the job, kill everything, exit."""


def _stop(_signum: int, _frame: Any) -> None:
    raise _Stopped


def _probe_namespaces(worker: Worker) -> tuple[bool, str]:
    """Try the per-job namespace set-up once in a throwaway child; (works, reason if not)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(read_fd)
            enter_job_namespaces(worker.ns_flags, worker.config.get("tmp_binds", ()))
            child = os.fork()
            if child == 0:
                os._exit(0)
            _, status = os.waitpid(child, 0)
            code = 0 if status == 0 else 1
            if code:
                os.write(write_fd, b"the first process in the new PID namespace failed")
        except BaseException as exc:
            os.write(write_fd, describe_error(exc).encode(errors="replace")[:500])
            code = 1
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        reason = reader.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    return status == 0, reason


def describe_error(exc: BaseException) -> str:
    """An exception as a short plain phrase: "open /proc/self/setgroups: Permission denied"."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        return f"{where}: {exc.strerror}" if where else exc.strerror
    return f"{type(exc).__name__}: {exc}"


def enter_job_namespaces(flags: int, tmp_binds: Sequence[str] = ()) -> None:
    """Enter fresh mount, PID and IPC namespaces (and a user namespace when we lack
    CAP_SYS_ADMIN) and give them a private /tmp and /dev/shm, with the (read-only) folders
    `tmp_binds` of the old /tmp bound back in. The next fork is PID 1."""
    uid, gid = os.getuid(), os.getgid()
    _check(libc().unshare(flags), "unshare")
    if flags & _CLONE_NEWUSER:
        # A non-dumpable process's /proc/self belongs to root, out of reach of the new
        # namespace: be dumpable just long enough to write our own id maps.
        prctl(_PR_SET_DUMPABLE, 1)
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
        prctl(_PR_SET_DUMPABLE, 0)
    mount = libc().mount
    _check(mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")
    options = b"mode=1777,size=256m,nr_inodes=16384"
    # Held open across the new /tmp, then bound back through /proc/self/fd; a bind of a
    # read-only mount stays read-only.
    held = [(os.open(path, os.O_PATH | os.O_DIRECTORY), path) for path in tmp_binds]
    _check(mount(b"tmpfs", b"/tmp", b"tmpfs", _MS_NOSUID | _MS_NODEV, options), "mount /tmp")
    for fd, path in held:
        os.makedirs(path, exist_ok=True)
        source = f"/proc/self/fd/{fd}".encode()
        _check(mount(source, path.encode(), None, _MS_BIND | _MS_REC, None), f"bind {path}")
        os.close(fd)
    if os.path.isdir("/dev/shm"):
        _check(
            mount(b"tmpfs", b"/dev/shm", b"tmpfs", _MS_NOSUID | _MS_NODEV, options),
            "mount /dev/shm",
        )


# --- one job ----------------------------------------------------------------------------------


class _Capture:
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


class _Progress:
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


def run_job(worker: Worker, message: dict[str, Any]) -> dict[str, Any] | None:
    """Run one job to completion and clean up after it; None when troop went away."""
    start = time.monotonic()
    limits = message["limits"]
    try:
        fn = worker.resolve(message["entry"])
    except BaseException:
        return _reply("error", None, traceback.format_exc(), b"", False, start)
    ns = worker.namespaces
    job_dir = "/tmp/job" if ns else tempfile.mkdtemp(prefix="job-", dir=worker.config["scratch"])
    if not ns and worker.job_uid is not None:
        os.chown(job_dir, worker.job_uid, worker.job_uid)
    out_r, out_w = os.pipe()
    res_r, res_w = os.pipe()
    st_r, st_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the intermediate process
        _intermediate(
            worker,
            fn,
            message["payload"],
            limits,
            job_dir,
            out_w,
            res_w,
            st_w,
            (out_r, res_r, st_r),
        )
    for fd in (out_w, res_w, st_w):
        os.close(fd)
    capture = _Capture(int(limits["output_bytes"]))
    result = bytearray()
    result_overflow = False
    progress = _Progress()
    pidfd: int | None = None
    timed_out = gone = False
    try:
        send(worker.reply_fd, {"started": True})
    except OSError:
        gone = True
    open_fds = {out_r, res_r, st_r, worker.request_fd}
    deadline = start + float(limits["wall_s"])
    while not progress.over and not gone:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        ready, _, _ = select.select(list(open_fds), [], [], remaining)
        for fd in ready:
            if fd == worker.request_fd:
                gone = True  # troop closed our stdin or wrote out of turn: stop now
            elif fd == out_r:
                chunk = os.read(out_r, _READ_CHUNK)
                if chunk:
                    capture.add(chunk)
                else:
                    open_fds.discard(out_r)
            elif fd == res_r:
                chunk = os.read(res_r, _READ_CHUNK)
                if not chunk:
                    open_fds.discard(res_r)
                elif len(result) + len(chunk) > _MAX_RESULT:
                    result_overflow = True
                else:
                    result += chunk
            elif fd == st_r:
                chunk = os.read(st_r, 4096)
                progress.feed(chunk)
                if not chunk:
                    open_fds.discard(st_r)
                    if not progress.over:
                        # The intermediate died before relaying J's status (J killed it):
                        # J is our child now, so wait for it ourselves.
                        progress.status, pidfd = _adopt(progress.job_pid, open_fds)
            elif fd == pidfd and progress.job_pid is not None:
                _, progress.status, usage = os.wait4(progress.job_pid, 0)
                progress.cpu = usage.ru_utime + usage.ru_stime
    # The intermediate exits right after reporting J's status: give it a moment.
    reaped = progress.over and not timed_out and _await_exit(pid, 0.05)
    _kill_job(worker, None if progress.status is not None else progress.job_pid, pid, reaped)
    sweep(worker)
    if pidfd is not None:
        os.close(pidfd)
    _drain(out_r, capture.add)
    _drain(res_r, result.extend)
    for fd in (out_r, res_r, st_r):
        os.close(fd)
    _remove_job_dir(worker, job_dir)
    if gone:
        return None
    return _classify(limits, timed_out, progress, bytes(result), result_overflow, capture, start)


def _adopt(job_pid: int | None, open_fds: set[int]) -> tuple[int | None, int | None]:
    """After the intermediate died: J's status if it is already known, else a pidfd to wait on.
    A J that is not our child any more was reaped by the intermediate: status unknown (-1)."""
    if job_pid is None:
        return -1, None
    try:
        reaped, status = os.waitpid(job_pid, os.WNOHANG)
    except ChildProcessError:
        return -1, None
    if reaped:
        return status, None
    pidfd = os.pidfd_open(job_pid)
    open_fds.add(pidfd)
    return None, pidfd


def _await_exit(pid: int, timeout: float) -> bool:
    """Reap child `pid` if it exits within `timeout` seconds (it may have been stopped);
    whether it was reaped."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if select.select([pidfd], [], [], timeout)[0]:
            with contextlib.suppress(ChildProcessError):
                return os.waitpid(pid, os.WNOHANG)[0] == pid
        return False
    finally:
        os.close(pidfd)


def _kill_job(worker: Worker, job_pid: int | None, intermediate: int, reaped: bool) -> None:
    """Kill J and the intermediate; the sweep takes whatever else is left. A pid is only
    signalled while it provably still names our process: a reaped pid may already belong to
    someone else (the worker may be root)."""
    if job_pid is not None:
        ident = _proc_stat(job_pid)
        if ident is not None and ident[0] in (intermediate, worker.pid):
            _kill_exact(job_pid, ident, group=True)  # J leads its own process group
    if not reaped:  # our unreaped child: its pid cannot have been reused
        with contextlib.suppress(ProcessLookupError):
            os.kill(intermediate, signal.SIGKILL)


def sweep(worker: Worker) -> None:
    """Kill and reap every descendant of the worker. As a subreaper the worker inherits every
    orphan of a job, so once it has no children at all, nothing the job started survives."""
    while True:
        try:
            reaped, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no children left
        if reaped:
            continue
        victims = _descendants(worker.pid)
        signalled = [_kill_exact(pid, ident) for pid, ident in victims]
        if any(signalled):
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
        else:
            time.sleep(0.001)  # a child is exiting but not yet reapable


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a process: together they tell a process from a later one
    that reuses its pid. None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may contain anything, even ") ".
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[1]), int(fields[19])


def _kill_exact(pid: int, ident: tuple[int, int], group: bool = False) -> bool:
    """SIGKILL `pid` (and first its process group, which its pid names while it lives) if it
    is still the process seen as `ident`: pinned by a pidfd, checked, then signalled through
    the pidfd, so a recycled pid is never hit. Whether it was sent."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if _proc_stat(pid) == ident:
            if group:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            return True
    except OSError:
        pass
    finally:
        os.close(pidfd)
    return False


def _descendants(root: int) -> list[tuple[int, tuple[int, int]]]:
    """Every live descendant of `root` with its identity, read from /proc."""
    children: dict[int, list[tuple[int, tuple[int, int]]]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            ident = _proc_stat(int(name))
            if ident is not None:
                children.setdefault(ident[0], []).append((int(name), ident))
    found: list[tuple[int, tuple[int, int]]] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child[0])
    return found


def _drain(fd: int, sink: Callable[[bytes], Any]) -> None:
    """Read what is left in a pipe whose writers are gone, without ever blocking."""
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return  # a writer survived (it cannot, after the sweep): do not wait for it
        if not chunk:
            return
        sink(chunk)


def _remove_job_dir(worker: Worker, job_dir: str) -> None:
    """Delete the job's files. With per-job namespaces the job's /tmp vanished with it."""
    if worker.namespaces:
        return
    remove_tree(job_dir)
    if worker.config.get("namespaces"):
        # bwrap without per-job namespaces: the worker's /tmp and /dev/shm are private to it,
        # so everything in them is some job's leftover.
        bound = {os.path.relpath(p, "/tmp").split(os.sep)[0] for p in worker.config["tmp_binds"]}
        for shared in ("/tmp", "/dev/shm"):
            for name in os.listdir(shared) if os.path.isdir(shared) else ():
                if not (shared == "/tmp" and name in bound):  # troop's own code, read-only
                    remove_tree(os.path.join(shared, name))
    elif worker.job_uid is not None:
        # rlimits as root: the job uid is the worker's own, so what it owns in the shared
        # temporary folders is the job's leftover.
        for shared in ("/tmp", "/var/tmp", "/dev/shm"):
            for name in os.listdir(shared) if os.path.isdir(shared) else ():
                path = os.path.join(shared, name)
                with contextlib.suppress(OSError):
                    if os.lstat(path).st_uid == worker.job_uid:
                        remove_tree(path)


def remove_tree(path: str) -> None:
    """Delete a file or a whole tree, even one whose permissions a job took away."""
    if os.path.isdir(path) and not os.path.islink(path):
        # A job may have taken the permissions away inside its tree: give them back.
        def retry(_function: Any, failed: str, _exc: Any) -> None:
            parent = os.path.dirname(failed)
            with contextlib.suppress(OSError):
                if parent.startswith(path):
                    os.chmod(parent, 0o700)
                if os.path.isdir(failed) and not os.path.islink(failed):
                    os.chmod(failed, 0o700)
                    shutil.rmtree(failed, ignore_errors=True)
                else:
                    os.unlink(failed)

        shutil.rmtree(path, onerror=retry)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _reply(
    outcome: str, value: Any, error: str, output: bytes, truncated: bool, start: float
) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "value": value,
        "error": error,
        "output": output.decode("utf-8", errors="replace"),
        "truncated": truncated,
        "duration_s": time.monotonic() - start,
    }


def _classify(
    limits: dict[str, Any],
    timed_out: bool,
    progress: _Progress,
    result: bytes,
    overflow: bool,
    capture: _Capture,
    start: float,
) -> dict[str, Any]:
    """Turn what the worker observed into an outcome and its reason."""
    output, truncated = bytes(capture.data), capture.truncated

    def reply(outcome: str, value: Any = None, error: str = "") -> dict[str, Any]:
        return _reply(outcome, value, error, output, truncated, start)

    if progress.failure:
        return reply("infra_error", error=f"could not start the job: {progress.failure}")
    if timed_out:
        return reply("timeout", error=f"wall-clock limit of {limits['wall_s']:g} s exceeded")
    if overflow:
        return reply("error", error=f"the return value exceeds {_MAX_RESULT >> 20} MiB")
    try:
        message = decode_message(result)
    except ValueError:
        message = None
    if isinstance(message, dict) and "value" in message:
        return reply("returned", message["value"])
    if isinstance(message, dict) and message.get("kind") in _OUTCOMES:
        return reply(message["kind"], error=str(message.get("error", "")))
    cpu_limit = cpu_seconds(float(limits["cpu_s"]))
    status, cpu = progress.status, progress.cpu
    if status is None or status < 0:
        return reply("crash", error="the job's process vanished without an exit status")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and (cpu or 0) >= cpu_limit - 0.05):
            return reply("timeout", error=f"CPU-time limit of {cpu_limit} s exceeded")
        if sig == signal.SIGXFSZ:
            return reply("resource", error="file-size limit exceeded (SIGXFSZ)")
        return reply("crash", error=f"killed by signal {_signal_name(sig)}")
    code = os.waitstatus_to_exitcode(status)
    return reply("crash", error=f"exited with status {code} without returning a result")


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def cpu_seconds(cpu_s: float) -> int:
    """RLIMIT_CPU counts whole seconds: the soft limit used for a Limits.cpu_s."""
    return max(1, int(-(-cpu_s // 1)))


# --- inside the intermediate and the job ------------------------------------------------------


def _intermediate(  # pragma: no cover - runs in the forked intermediate
    worker: Worker,
    fn: Callable[[Any], Any],
    payload: Any,
    limits: dict[str, Any],
    job_dir: str,
    out_w: int,
    res_w: int,
    st_w: int,
    parent_ends: tuple[int, ...],
) -> None:
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setsid()
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != worker.pid:
            os._exit(1)
        for fd in (*parent_ends, worker.request_fd, worker.reply_fd):
            os.close(fd)
        if worker.namespaces:
            enter_job_namespaces(worker.ns_flags, worker.config.get("tmp_binds", ()))
        go_r, go_w = os.pipe()
        job = os.fork()
        if job == 0:
            os.close(go_w)
            os.close(st_w)
            _job(worker, fn, payload, limits, job_dir, out_w, res_w, go_r)
        os.close(go_r)
        os.close(out_w)
        os.close(res_w)
        # J waits for this byte, so the worker learns J's pid before J runs anything.
        write_all(st_w, f"pid {job}\n".encode())
        os.write(go_w, b"g")
        os.close(go_w)
        _, status, usage = os.wait4(job, 0)
        write_all(st_w, f"exit {status} {usage.ru_utime + usage.ru_stime:.3f}\n".encode())
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            write_all(st_w, f"fail {' '.join(repr(exc).split())[:300]}\n".encode())
        code = 70
    os._exit(code)


def _job(  # pragma: no cover - runs in the forked job process
    worker: Worker,
    fn: Callable[[Any], Any],
    payload: Any,
    limits: dict[str, Any],
    job_dir: str,
    out_w: int,
    res_w: int,
    go_r: int,
) -> None:
    result_fd = res_w  # fd 3 once the descriptors are set up
    try:
        if os.read(go_r, 1) != b"g":
            os._exit(1)
        os.close(go_r)
        os.setsid()
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        ns = worker.namespaces
        if ns:
            # Our own /proc shows only this job's processes; where the kernel refuses a new
            # proc mount (user namespaces under bwrap), the worker's /proc stays.
            libc().mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None)
            os.mkdir(job_dir, 0o700)
            if worker.job_uid is not None:
                os.chown(job_dir, worker.job_uid, worker.job_uid)
        _setup_fds(out_w, res_w)
        result_fd = 3
        _set_limits(limits, worker.job_uid)
        _clean_environment(job_dir)
        _drop_privileges(worker.job_uid, ns)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
    except BaseException as exc:
        # The sandbox failed, not the job: say so on the result channel.
        data = json.dumps({"kind": "infra_error", "error": f"job set-up failed: {exc!r}"})
        with contextlib.suppress(OSError):
            write_all(result_fd, _HEADER.pack(len(data)) + data.encode())
        os._exit(71)
    run_entry(fn, payload, 3)


def _setup_fds(out_w: int, res_w: int) -> None:
    """stdin from /dev/null, stdout and stderr to the capture pipe, the result channel on 3,
    nothing else open."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    os.dup2(res_w, 3)
    os.closerange(4, 1 << 16)
    sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stdout = _text_stream(1)
    sys.stderr = _text_stream(2)


def _text_stream(fd: int) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=True,
    )


def _set_limits(limits: dict[str, Any], job_uid: int | None) -> None:
    cpu = cpu_seconds(float(limits["cpu_s"]))
    nproc = int(limits["processes"])
    if job_uid is None and os.getuid() != 0 and not has_own_user_namespace():
        # RLIMIT_NPROC counts every process of the uid; without a user namespace of our own
        # that includes the user's desktop, so the job may start `processes` more than exist.
        nproc += _count_user_processes(os.getuid())
    settings = [
        # The hard CPU limit is one second later: SIGXCPU first, SIGKILL if it is ignored
        # (a PID namespace's init ignores SIGXCPU).
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, int(limits["memory_bytes"]), int(limits["memory_bytes"])),
        (resource.RLIMIT_FSIZE, int(limits["file_bytes"]), int(limits["file_bytes"])),
        (resource.RLIMIT_NOFILE, int(limits["open_files"]), int(limits["open_files"])),
        (resource.RLIMIT_NPROC, nproc, nproc),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    for which, soft, hard in settings:
        resource.setrlimit(which, (soft, hard))


def has_own_user_namespace() -> bool:
    """Whether this process runs in a user namespace other than the initial one."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def _count_user_processes(uid: int) -> int:
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def _clean_environment(job_dir: str) -> None:
    os.environ.clear()  # also unsets them in the C environment
    os.environ.update(
        {
            "PATH": JOB_PATH,
            "LANG": "C.UTF-8",
            "HOME": job_dir,
            "TMPDIR": job_dir,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    tempfile.tempdir = job_dir
    os.chdir(job_dir)


def _drop_privileges(job_uid: int | None, ns: bool) -> None:
    """When troop runs as root, jobs run as a uid of their own (so RLIMIT_NPROC applies and
    they cannot kill or read troop), keeping only CAP_DAC_READ_SEARCH so that a Python under
    /root still imports. Otherwise drop whatever capabilities a user namespace granted."""
    if job_uid is not None:
        prctl(_PR_SET_KEEPCAPS, 1)
        os.setgroups([])
        os.setresgid(job_uid, job_uid, job_uid)
        os.setresuid(job_uid, job_uid, job_uid)
        set_capabilities((_CAP_DAC_READ_SEARCH,))
        prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, _CAP_DAC_READ_SEARCH)
        prctl(_PR_SET_KEEPCAPS, 0)
    elif ns:
        set_capabilities(())
    prctl(_PR_SET_NO_NEW_PRIVS, 1)


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


def run_entry(fn: Callable[[Any], Any], payload: Any, result_fd: int) -> None:
    """Call the entry, send its result on `result_fd` and exit; never returns. A process the
    entry forked that falls back into this function exits silently."""
    me = os.getpid()
    try:
        value = fn(payload)
        if os.getpid() != me:
            os._exit(0)
        data = json.dumps({"value": value}).encode()
    except BaseException as exc:
        if os.getpid() != me:
            os._exit(1)
        kind = classify_exception(exc)
        try:
            if isinstance(exc, SystemExit):
                error = f"exited with status {exc.code!r} (SystemExit) without returning"
            else:
                error = "".join(traceback.format_exception(exc))
        except BaseException:
            error = type(exc).__name__
        data = json.dumps({"kind": kind, "error": error}).encode()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    try:
        write_all(result_fd, _HEADER.pack(len(data)) + data)
    except BaseException:
        os._exit(72)
    os._exit(0)


if __name__ == "__main__":
    main()
