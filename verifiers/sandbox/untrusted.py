"""For entries that run untrusted code: a forked process of its own, out of the job's reach."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

from troop.verifiers.sandbox.linux import PR_SET_PDEATHSIG, prctl


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
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
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
