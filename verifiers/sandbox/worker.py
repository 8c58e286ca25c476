"""The worker process: set up from troop's configuration, it runs jobs until troop hangs up."""

# troop starts it as `python -c "...; from troop.verifiers.sandbox.worker import main; main()"`
# (see process.py), under bwrap when that tier is in use. Process tree of one job, all forked
# (no new interpreter):
#   worker W (subreaper, non-dumpable)
#     └ intermediate C (own session; enters the job's namespaces; relays J's exit status)
#         └ job J (own session; PID 1 of the job's PID namespace under bwrap; limits, clean env)
# J's getppid() is never W, so killing "the parent" cannot take the worker down; everything J
# leaves behind is re-parented to W (or killed with J's PID namespace) and killed after the job.
# Only the worker's side of the package is imported here: the pool (threads, subprocess) is not.

from __future__ import annotations

import importlib
import os
import signal
from typing import Any

from troop.verifiers.sandbox.job import run_job
from troop.verifiers.sandbox.linux import PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE, prctl
from troop.verifiers.sandbox.namespaces import job_namespace_flags, probe_namespaces
from troop.verifiers.sandbox.reaper import remove_tree, sweep
from troop.verifiers.sandbox.state import Worker
from troop.verifiers.sandbox.wire import recv, send


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
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        # Jobs run as our uid: without this they could read our memory and pipes via /proc.
        prctl(PR_SET_DUMPABLE, 0)
        for name in config.get("preload", ()):
            module, _, warm_up = name.partition(":")
            loaded = importlib.import_module(module)
            if warm_up:
                # What the warm-up fills (parser tables, caches) every forked job inherits.
                getattr(loaded, warm_up)()
        if config.get("namespaces"):
            worker.ns_flags = job_namespace_flags()
            worker.namespaces, ready["ns_error"] = probe_namespaces(
                worker.ns_flags, worker.config.get("tmp_binds", ())
            )
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


if __name__ == "__main__":
    main()
