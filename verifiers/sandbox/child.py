"""Inside a job's forked processes: the intermediate enters the job's namespaces; the job takes
its limits, a clean environment and no privileges, then calls the entry."""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from typing import Any

from troop.verifiers.sandbox.linux import (
    CAP_DAC_READ_SEARCH,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_RAISE,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    has_own_user_namespace,
    libc,
    prctl,
    set_capabilities,
)
from troop.verifiers.sandbox.namespaces import enter_job_namespaces
from troop.verifiers.sandbox.outcomes import classify_exception, cpu_seconds
from troop.verifiers.sandbox.state import Worker
from troop.verifiers.sandbox.wire import frame, write_all

#: Environment of every job: nothing is inherited from the worker or from troop.
JOB_PATH = "/usr/local/bin:/usr/bin:/bin"


def intermediate(  # pragma: no cover - runs in the forked intermediate
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
    """Be the intermediate C: enter the job's namespaces, fork the job J, report J's pid and
    then its wait status on `st_w`, and exit; never returns."""
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setsid()
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
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
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        ns = worker.namespaces
        if ns:
            # Our own /proc shows only this job's processes; where the kernel refuses a new
            # proc mount (user namespaces under bwrap), the worker's /proc stays.
            libc().mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
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
            write_all(result_fd, frame(data.encode()))
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
        prctl(PR_SET_KEEPCAPS, 1)
        os.setgroups([])
        os.setresgid(job_uid, job_uid, job_uid)
        os.setresuid(job_uid, job_uid, job_uid)
        set_capabilities((CAP_DAC_READ_SEARCH,))
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH)
        prctl(PR_SET_KEEPCAPS, 0)
    elif ns:
        set_capabilities(())
    prctl(PR_SET_NO_NEW_PRIVS, 1)


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
        write_all(result_fd, frame(data))
    except BaseException:
        os._exit(72)
    os._exit(0)
