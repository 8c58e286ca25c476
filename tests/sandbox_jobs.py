"""Hostile jobs for the sandbox tests, run inside the sandbox as `tests.sandbox_jobs:<name>`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_STATE: dict[str, str] = {}  # a module global a job may try to leave behind for the next one


def _survivors(marker: str) -> list[int]:
    """Processes whose command line carries the marker a job planted."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


def _spawn_marked(marker: str, new_session: bool = True) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", marker],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=new_session,
    )


def _wait_marked(marker: str, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _survivors(marker):
            return True
        time.sleep(0.02)
    return False


def job_echo(payload: dict[str, Any]) -> Any:
    print(payload.get("text", "hello"))
    return {"pid": os.getpid(), "cwd": os.getcwd(), "uid": os.getuid()}


def job_fork_bomb(payload: dict[str, Any]) -> Any:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    os.execv(sys.executable, [sys.executable, "-c", code, payload["marker"]])


def job_count_forks(payload: dict[str, Any]) -> Any:
    children = 0
    try:
        for _ in range(1000):
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            children += 1
    except OSError as exc:
        return {"children": children, "error": exc.errno}
    return {"children": children, "error": None}


def job_daemon(payload: dict[str, Any]) -> Any:
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            code = "import time\nwhile True: time.sleep(1)"
            os.execv(sys.executable, [sys.executable, "-c", code, payload["marker"]])
        os._exit(0)
    return _wait_marked(payload["marker"])


def job_kill_parent(payload: dict[str, Any]) -> Any:
    _spawn_marked(payload["marker"])
    _wait_marked(payload["marker"])
    try:
        if payload["how"] == "parent":
            os.kill(os.getppid(), signal.SIGKILL)
        else:
            os.killpg(0, signal.SIGKILL)
    except PermissionError:
        return "not permitted"  # rlimits as root: the job's uid cannot signal the worker's
    time.sleep(0.3)
    return "still here"


def job_memory(payload: dict[str, Any]) -> Any:
    if payload["how"] == "block":
        return len(bytearray(4 << 30))
    hog = []
    while True:
        hog.append(b"x" * (16 << 20))


def job_huge_file(payload: dict[str, Any]) -> Any:
    with open("big", "wb") as f:
        for _ in range(64):
            f.write(b"\0" * (1 << 20))
    return "wrote it all"


def job_many_files(payload: dict[str, Any]) -> Any:
    made = 0
    try:
        for i in range(20000):
            Path(f"f{i}").write_bytes(b"x")
            made += 1
    except OSError as exc:
        return {"made": made, "errno": exc.errno, "cwd": os.getcwd()}
    return {"made": made, "errno": None, "cwd": os.getcwd()}


def job_open_files(payload: dict[str, Any]) -> Any:
    return [open(os.devnull) for _ in range(10000)]  # noqa: SIM115


def job_flood(payload: dict[str, Any]) -> Any:
    fd = 1 if payload["stream"] == "stdout" else 2
    chunk = b"x" * 65536
    for _ in range(payload["chunks"]):
        os.write(fd, chunk)
    return "flooded"


def job_close_stdout_and_spin(payload: dict[str, Any]) -> Any:
    os.close(1)
    os.close(2)
    while True:
        pass


def job_read_stdin(payload: dict[str, Any]) -> Any:
    return [sys.stdin.read(), os.read(0, 100).decode()]


def job_ignore_sigterm(payload: dict[str, Any]) -> Any:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _spawn_marked(payload["marker"], new_session=False)
    while True:
        time.sleep(1)


def job_connect(payload: dict[str, Any]) -> Any:
    try:
        with socket.create_connection(("127.0.0.1", payload["port"]), timeout=2) as conn:
            conn.sendall(b"hello")
        return "connected"
    except OSError as exc:
        return f"blocked: {type(exc).__name__}"


def job_write_outside(payload: dict[str, Any]) -> Any:
    results = {}
    for where in (payload["home"], payload["owned"]):
        try:
            Path(where, f"{payload['marker']}.txt").write_text("pwned")
            results[where] = "written"
        except OSError as exc:
            results[where] = type(exc).__name__
        try:
            Path(where, "keep.txt").write_text("changed")
            results[where + "/keep.txt"] = "written"
        except OSError as exc:
            results[where + "/keep.txt"] = type(exc).__name__
    Path("~/here.txt").expanduser().write_text("the job's own home is writable")
    return results


def job_read_secrets(payload: dict[str, Any]) -> Any:
    seen = [repr(dict(os.environ))]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                seen.append(Path(f"/proc/{entry}/environ").read_bytes().decode(errors="replace"))
    return "\n".join(seen)


def job_contaminate(payload: dict[str, Any]) -> Any:
    Path("/tmp", payload["marker"]).write_text("left behind")
    Path("left.txt").write_text("left behind")
    _STATE["leak"] = payload["marker"]
    os.environ["TROOP_LEAK"] = payload["marker"]
    return os.getcwd()


def job_look_for_contamination(payload: dict[str, Any]) -> Any:
    return {
        "tmp_file": os.path.exists(os.path.join("/tmp", payload["marker"])),
        "cwd_files": os.listdir("."),
        "global": _STATE.get("leak"),
        "env": os.environ.get("TROOP_LEAK"),
    }


def job_kill_worker(payload: dict[str, Any]) -> Any:
    """Find the worker (the parent of our parent) and kill it, where the tier lets us."""
    try:
        stat = Path(f"/proc/{os.getppid()}/stat").read_text()
        worker = int(stat.rsplit(")", 1)[1].split()[1])
        os.kill(worker, signal.SIGKILL)
    except (OSError, ValueError, IndexError) as exc:
        return f"could not: {type(exc).__name__}"
    time.sleep(2)
    return "the worker is still alive"


def job_modules(payload: dict[str, Any]) -> Any:
    return {name: name in sys.modules for name in payload["names"]}


def job_raise(payload: dict[str, Any]) -> Any:
    raise ValueError("a bug in the entry")


def job_exit(payload: dict[str, Any]) -> Any:
    if payload["how"] == "os":
        os._exit(3)
    if payload["how"] == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
        import ctypes

        ctypes.string_at(0)
    sys.exit(0)
