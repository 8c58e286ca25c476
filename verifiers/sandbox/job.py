"""One job as the worker runs it: forked, watched to its deadline, cleaned up after, judged."""

from __future__ import annotations

import os
import select
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

from troop.verifiers.sandbox.child import intermediate
from troop.verifiers.sandbox.outcomes import Capture, Progress, classify, reply
from troop.verifiers.sandbox.reaper import await_exit, kill_job, remove_job_dir, sweep
from troop.verifiers.sandbox.state import Worker
from troop.verifiers.sandbox.wire import MAX_RESULT, send

_READ_CHUNK = 1 << 16  # bytes per read from the output pipe


def run_job(worker: Worker, message: dict[str, Any]) -> dict[str, Any] | None:
    """Run one job to completion and clean up after it; None when troop went away."""
    start = time.monotonic()
    limits = message["limits"]
    try:
        fn = worker.resolve(message["entry"])
    except BaseException:
        return reply("error", None, traceback.format_exc(), b"", False, start)
    ns = worker.namespaces
    job_dir = "/tmp/job" if ns else tempfile.mkdtemp(prefix="job-", dir=worker.config["scratch"])
    if not ns and worker.job_uid is not None:
        os.chown(job_dir, worker.job_uid, worker.job_uid)
    out_r, out_w = os.pipe()
    res_r, res_w = os.pipe()
    st_r, st_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the intermediate process
        intermediate(
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
    capture = Capture(int(limits["output_bytes"]))
    result = bytearray()
    result_overflow = False
    progress = Progress()
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
                elif len(result) + len(chunk) > MAX_RESULT:
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
    reaped = progress.over and not timed_out and await_exit(pid, 0.05)
    kill_job(worker, None if progress.status is not None else progress.job_pid, pid, reaped)
    sweep(worker)
    if pidfd is not None:
        os.close(pidfd)
    _drain(out_r, capture.add)
    _drain(res_r, result.extend)
    for fd in (out_r, res_r, st_r):
        os.close(fd)
    remove_job_dir(worker, job_dir)
    if gone:
        return None
    return classify(limits, timed_out, progress, bytes(result), result_overflow, capture, start)


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
