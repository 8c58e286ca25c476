"""One writer per session: an advisory lock beside the session file, released by the OS when the
process holding it dies."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from troop.errors import SessionError


@dataclass(frozen=True)
class Holder:
    """The process sampling a session."""

    pid: int  # its process id
    host: str  # the machine it runs on
    since: float  # unix time it took the lock, seconds
    command: str  # what it runs, e.g. "troop run --headless"

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} on {self.host} since {when} ({self.command})"


class SessionBusy(SessionError):
    """Another process is sampling this session."""

    def __init__(self, path: Path, holder: Holder | None) -> None:
        who = holder.describe() if holder is not None else "another process"
        super().__init__(
            f"{path} is being sampled by {who}",
            hint=f"watch it live with `troop open {path}`, or wait for it to end",
        )
        self.holder = holder


def lock_path(session_path: Path) -> Path:
    return session_path.with_name(session_path.name + ".lock")


def _read_holder(fd: int) -> Holder | None:
    with contextlib.suppress(OSError, ValueError, TypeError):
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096).decode("utf-8"))
        return Holder(
            int(data["pid"]), str(data["host"]), float(data["since"]), str(data["command"])
        )
    return None


class SessionLock:
    """The lock a sampling process holds on its session (flock on SESSION.lock)."""

    def __init__(self, session_path: Path) -> None:
        self.path = lock_path(session_path)
        self.session_path = session_path
        self._fd: int | None = None

    def acquire(self) -> SessionLock:
        """Take the lock or raise SessionBusy naming the holder; at once, never waits."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise SessionBusy(self.session_path, holder) from None
        command = " ".join(["troop", *sys.argv[1:3]]) if sys.argv else "troop"
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.time(),
            "command": command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> SessionLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(session_path: Path) -> Holder | None:
    """Who samples this session now; None when nobody does."""
    path = lock_path(session_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd) or Holder(0, "?", 0.0, "troop")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
