"""A job's own namespaces: fresh mount, PID and IPC namespaces with a private /tmp and /dev/shm."""

from __future__ import annotations

import os
from collections.abc import Sequence

from troop.verifiers.sandbox.linux import (
    CAP_SYS_ADMIN,
    CLONE_NEWIPC,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    MS_BIND,
    MS_NODEV,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
    PR_SET_DUMPABLE,
    check,
    has_capability,
    libc,
    prctl,
)


def job_namespace_flags() -> int:
    """The unshare(2) flags that give a job namespaces of its own."""
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC
    if not has_capability(CAP_SYS_ADMIN):
        flags |= CLONE_NEWUSER  # a nested user namespace grants the mounts
    return flags


def probe_namespaces(flags: int, tmp_binds: Sequence[str]) -> tuple[bool, str]:
    """Try the per-job namespace set-up once in a throwaway child; (works, reason if not)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(read_fd)
            enter_job_namespaces(flags, tmp_binds)
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
    check(libc().unshare(flags), "unshare")
    if flags & CLONE_NEWUSER:
        # A non-dumpable process's /proc/self belongs to root, out of reach of the new
        # namespace: be dumpable just long enough to write our own id maps.
        prctl(PR_SET_DUMPABLE, 1)
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
        prctl(PR_SET_DUMPABLE, 0)
    mount = libc().mount
    check(mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    options = b"mode=1777,size=256m,nr_inodes=16384"
    # Held open across the new /tmp, then bound back through /proc/self/fd; a bind of a
    # read-only mount stays read-only.
    held = [(os.open(path, os.O_PATH | os.O_DIRECTORY), path) for path in tmp_binds]
    check(mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, options), "mount /tmp")
    for fd, path in held:
        os.makedirs(path, exist_ok=True)
        source = f"/proc/self/fd/{fd}".encode()
        check(mount(source, path.encode(), None, MS_BIND | MS_REC, None), f"bind {path}")
        os.close(fd)
    if os.path.isdir("/dev/shm"):
        check(
            mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV, options),
            "mount /dev/shm",
        )
