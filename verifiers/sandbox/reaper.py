"""Cleaning up after a job: every process it left killed, never a recycled pid, its files gone."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import time
from typing import Any

from troop.verifiers.sandbox.state import Worker


def await_exit(pid: int, timeout: float) -> bool:
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


def kill_job(worker: Worker, job_pid: int | None, intermediate: int, reaped: bool) -> None:
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


def remove_job_dir(worker: Worker, job_dir: str) -> None:
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
