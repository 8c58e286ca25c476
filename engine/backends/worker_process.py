"""The llama.cpp worker's process as the front end holds it: started, called over its pipe,
and watched for its death."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from troop import errors
from troop.errors import EngineError, TroopError

#: Seconds a new worker may take to start Python and llama.cpp before it is given up on.
START_TIMEOUT_S = 120.0
#: Lines of the worker's log quoted when it dies.
LOG_LINES = 3
#: Scheduling priority of the worker (nice value). The front end's UI thread and the
#: verification sandbox must get a core the moment they need one; the worker takes the rest.
#: TROOP_WORKER_NICE overrides it.
WORKER_NICE = 5
#: The worker's OpenMP threads wait for each other passively (futex) rather than spinning.
#: llama.cpp's CPU backend meets at a barrier after every graph node; spinning there, one
#: thread that shares its core with any other busy process (a compile, a browser, a `nice 19`
#: loop) stalls all the others: headless runs on 2 cores beside a nice 19 busy loop measured
#: 2.3-2.9 tok/s spinning against 48-51 tok/s passive (README, "The TUI"). A user's own
#: OMP_WAIT_POLICY wins.
OMP_WAIT = "passive"


def worker_nice() -> int:
    """The worker's nice value: TROOP_WORKER_NICE, else WORKER_NICE."""
    raw = os.environ.get("TROOP_WORKER_NICE", "").strip()
    try:
        return int(raw) if raw else WORKER_NICE
    except ValueError:
        return WORKER_NICE


class WorkerDied(EngineError):
    """The llama.cpp worker process ended while it was needed."""

    def __init__(
        self,
        message: str,
        *,
        signal_name: str | None,
        returncode: int | None,
        log_tail: list[str],
        lost: int = 0,
    ) -> None:
        super().__init__(message)
        self.signal_name = signal_name  # e.g. "SIGILL"; None for an exit without a signal
        self.returncode = returncode  # the process's status as subprocess reports it
        self.log_tail = log_tail  # llama.cpp's last error lines from the worker's log
        self.lost = lost  # samples being decoded when it died (not stored; drawn again later)


@dataclass(frozen=True)
class Death:
    """How a worker ended."""

    returncode: int | None  # negative: killed by that signal
    log_tail: list[str]  # its last error lines

    @property
    def signal_name(self) -> str | None:
        if self.returncode is not None and self.returncode < 0:
            with contextlib.suppress(ValueError):
                return signal.Signals(-self.returncode).name
            return f"signal {-self.returncode}"
        return None

    def describe(self) -> str:
        if self.signal_name is not None:
            how = f"was killed by {self.signal_name}"
        elif self.returncode is None:
            how = "closed its pipe"
        else:
            how = f"exited with status {self.returncode}"
        said = "; ".join(self.log_tail) or "nothing in its log"
        return f"the llama.cpp worker {how} (llama.cpp said: {said})"


class WorkerProcess:
    """One running worker: its process, the pipe, a reader thread and pending calls."""

    def __init__(self, log_path: Path) -> None:
        nice = worker_nice()
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_start = log_path.stat().st_size if log_path.exists() else 0
        ours, theirs = socket.socketpair()
        env = {"OMP_WAIT_POLICY": OMP_WAIT, **os.environ, "TROOP_LLAMA_LOG": "1"}
        with open(log_path, "ab") as log:
            log.write(f"--- worker started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "troop.engine.backends.worker",
                    str(theirs.fileno()),
                    str(nice),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Its own session: a Ctrl-C at the terminal is the front end's to handle.
                start_new_session=True,
            )
        theirs.close()
        self.conn = Connection(ours.detach())
        self.pid = self.proc.pid
        self._send_lock = threading.Lock()
        self._calls: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._next_id = 0
        self._lock = threading.Lock()
        self.handler: Callable[[tuple[Any, ...]], None] | None = None  # sampling messages
        self.hello = threading.Event()
        self.system_info = ""
        self.dead = threading.Event()
        self.death: Death | None = None
        self._reader = threading.Thread(target=self._read, name="troop-worker-pipe", daemon=True)
        self._reader.start()
        if not self.hello.wait(START_TIMEOUT_S) or self.death is not None:
            self.kill()
            raise self.died_error("could not start")

    # -- the pipe ----------------------------------------------------------------------------

    def send(self, message: tuple[Any, ...]) -> None:
        if self.dead.is_set():
            raise self.died_error()
        try:
            with self._send_lock:
                self.conn.send(message)
        except OSError:
            self._wait_dead()
            raise self.died_error() from None

    def call(self, name: str, *args: Any) -> Any:
        """Run `name` in the worker and return its result (its TroopError is raised here)."""
        done = threading.Event()
        box: list[Any] = []
        with self._lock:
            rid = self._next_id = self._next_id + 1
            self._calls[rid] = (done, box)
        self.send(("call", rid, name, args))
        while not done.wait(0.2):
            if self.dead.is_set():
                raise self.died_error()
        ok, value = box
        if ok:
            return value
        kind, message, hint = value
        cls = getattr(errors, kind, EngineError)
        raise cls(message, hint)

    def _read(self) -> None:
        try:
            while True:
                message = self.conn.recv()
                kind = message[0]
                if kind == "reply":
                    with self._lock:
                        done, box = self._calls.pop(message[1])
                    box.extend(message[2:])
                    done.set()
                elif kind == "hello":
                    self.system_info = message[2]
                    self.hello.set()
                elif self.handler is not None:
                    self.handler(message)
        except (EOFError, OSError):
            pass
        self._wait_dead()
        self.hello.set()
        if self.handler is not None:
            self.handler(("died",))

    def _wait_dead(self) -> None:
        if self.death is None:
            try:
                code: int | None = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = None
            self.death = Death(code, self.log_tail())
        self.dead.set()

    def died_error(self, doing: str = "", lost: int = 0) -> WorkerDied:
        if not self.dead.is_set():
            self._wait_dead()
        death = self.death or Death(None, [])
        text = death.describe() + (f" ({doing})" if doing else "")
        if lost:
            text += f"; {lost} sample{'s' if lost != 1 else ''} in flight lost"
        text += f"; log: {self.log_path}"
        return WorkerDied(
            text,
            signal_name=death.signal_name,
            returncode=death.returncode,
            log_tail=death.log_tail,
            lost=lost,
        )

    def log_tail(self) -> list[str]:
        """llama.cpp's last error lines in this worker's part of the log."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_start)
                lines = fh.read()[-65536:].decode("utf-8", "replace").splitlines()
        except OSError:
            return []
        words = ("error", "failed", "assert", "abort", "fatal", "illegal", "out of memory")
        hits = [ln.strip() for ln in lines if any(w in ln.lower() for w in words)]
        return hits[-LOG_LINES:]

    # -- ending --------------------------------------------------------------------------

    def close(self) -> None:
        """Ask the worker to leave; kill it if it does not."""
        if not self.dead.is_set():
            with contextlib.suppress(TroopError):
                self.send(("quit",))
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            self.conn.close()
