"""The sandbox against hostile jobs, in both tiers: outcomes, clean-up, and isolation."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from troop.engine.errors import TroopError
from troop.verifiers import sandbox as sandbox_module
from troop.verifiers.sandbox import Job, JobResult, Limits, Sandbox

ROOT = os.geteuid() == 0
HERE = "tests.test_sandbox"
FAST = Limits(wall_s=3.0, cpu_s=2.0)
_STATE: dict[str, str] = {}  # a module global a job may try to leave behind for the next one


def _bwrap_reason() -> str:
    return sandbox_module._bwrap_problem(ROOT)


TIERS = [
    pytest.param(
        "bwrap",
        marks=pytest.mark.skipif(
            bool(_bwrap_reason()), reason=f"bwrap not usable here: {_bwrap_reason()}"
        ),
    ),
    "rlimits",
]


@pytest.fixture(scope="module", params=TIERS)
def warm_box(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with Sandbox(2, tier=request.param) as box:
        assert box.tier == request.param
        yield box


@pytest.fixture
def marker() -> str:
    """A word a job plants in the command line of every process it starts."""
    return f"troop-test-{uuid.uuid4().hex}"


@pytest.fixture
def owned(tmp_path: Path) -> Path:
    """A directory only the test owns, with a file in it: jobs must not change it."""
    folder = tmp_path / "owned"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    return folder


@pytest.fixture
def sandbox(warm_box: Sandbox, owned: Path, marker: str) -> Iterator[Sandbox]:
    """The module's sandbox, checked after the test: no process the jobs started survived,
    and (where the tier protects it) neither the home folder nor `owned` changed."""
    before = _snapshot(owned, Path.home())
    yield warm_box
    assert _survivors(marker) == []
    assert _leftovers(warm_box) == []
    if _isolated_fs(warm_box.tier):
        assert _snapshot(owned, Path.home()) == before


def _leftovers(box: Sandbox) -> list[int]:
    """Processes below the workers other than the workers themselves (under bwrap each
    worker is bwrap, bwrap's init, then the Python worker)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    depth = 2 if box.tier == "bwrap" else 0  # processes between troop's child and the worker
    found: list[int] = []
    for root in box.worker_pids:
        level = [root]
        for _ in range(depth):
            level = [c for pid in level for c in children.get(pid, [])]
        todo = [c for pid in level for c in children.get(pid, [])]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def _run(box: Sandbox, name: str, limits: Limits = FAST, **payload: Any) -> JobResult:
    return box.run(Job(f"{HERE}:{name}", payload, limits))


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


def _snapshot(*folders: Path) -> list[tuple[str, int, int]]:
    """Names, sizes and mtimes under each folder (the home folder: its listing only)."""
    seen: list[tuple[str, int, int]] = []
    for folder in folders:
        if folder == Path.home():
            seen += [(str(folder / n), 0, 0) for n in sorted(os.listdir(folder))]
            continue
        for path in sorted(folder.rglob("*")):
            st = path.lstat()
            seen.append((str(path), st.st_size, st.st_mtime_ns))
    return seen


def _isolated_fs(tier: str) -> bool:
    """Whether the file system outside the job's folder is protected: always under bwrap;
    in the rlimits tier only when troop is root (jobs then run as a uid of their own)."""
    return tier == "bwrap" or ROOT


# --- jobs (run inside the sandbox) ------------------------------------------------------------


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


# --- tests ------------------------------------------------------------------------------------


def test_a_plain_job_returns_its_value_and_output(sandbox: Sandbox) -> None:
    result = _run(sandbox, "job_echo", text="hi")
    assert result.outcome == "returned", result.error
    assert result.output == "hi\n" and not result.truncated
    assert result.tier == sandbox.tier
    assert result.value["cwd"] != os.getcwd()
    if ROOT:
        assert result.value["uid"] != 0  # jobs never run as root
    if sandbox.tier == "bwrap" and "PID namespace" in sandbox.tier_note:
        assert result.value["pid"] == 1


def test_fork_bomb_is_contained(sandbox: Sandbox, marker: str) -> None:
    limits = Limits(wall_s=3.0, cpu_s=2.0, processes=32)
    start = time.monotonic()
    result = _run(sandbox, "job_fork_bomb", limits, marker=marker)
    assert result.outcome in ("timeout", "resource", "crash"), result
    assert time.monotonic() - start < 20
    assert _survivors(marker) == []
    assert _run(sandbox, "job_echo").outcome == "returned"


def test_the_process_limit_holds(sandbox: Sandbox) -> None:
    result = _run(sandbox, "job_count_forks", Limits(wall_s=10.0, processes=16))
    assert result.outcome == "returned", result.error
    assert result.value["children"] < 16
    assert result.value["error"] is not None


def test_setsid_double_fork_daemon_is_killed(sandbox: Sandbox, marker: str) -> None:
    result = _run(sandbox, "job_daemon", marker=marker)
    assert result.outcome == "returned", result.error
    assert result.value is True  # the daemon was running when the job returned
    assert _survivors(marker) == []


@pytest.mark.parametrize("how", ["parent", "group"])
def test_killing_the_parent_or_the_group_spares_the_worker(
    sandbox: Sandbox, marker: str, how: str
) -> None:
    workers = sorted(sandbox.worker_pids)
    result = _run(sandbox, "job_kill_parent", marker=marker, how=how)
    assert result.outcome in ("returned", "crash"), result
    assert _survivors(marker) == []
    assert sorted(sandbox.worker_pids) == workers  # no worker was lost
    assert _run(sandbox, "job_echo").outcome == "returned"


@pytest.mark.parametrize("how", ["block", "grow"])
def test_memory_bomb_is_a_resource_outcome(sandbox: Sandbox, how: str) -> None:
    limits = Limits(wall_s=10.0, memory_bytes=512 << 20)
    result = _run(sandbox, "job_memory", limits, how=how)
    assert result.outcome == "resource", result
    assert "MemoryError" in result.error


def test_huge_file_hits_the_file_size_limit(sandbox: Sandbox) -> None:
    result = _run(sandbox, "job_huge_file", Limits(wall_s=5.0, file_bytes=1 << 20))
    assert result.outcome == "resource", result


def test_many_files_stay_in_the_job_folder(sandbox: Sandbox) -> None:
    result = _run(sandbox, "job_many_files", Limits(wall_s=30.0))
    assert result.outcome == "returned", result
    assert result.value["made"] > 1000
    if sandbox.tier == "rlimits":
        assert not os.path.exists(result.value["cwd"])  # the job's folder was removed


def test_too_many_open_files_is_a_resource_outcome(sandbox: Sandbox) -> None:
    result = _run(sandbox, "job_open_files")
    assert result.outcome == "resource", result
    assert "Too many open files" in result.error


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_flood_without_newlines_is_capped(sandbox: Sandbox, stream: str) -> None:
    limits = Limits(wall_s=10.0, output_bytes=4096)
    result = _run(sandbox, "job_flood", limits, stream=stream, chunks=200)  # 12.5 MiB
    assert result.outcome == "returned", result
    assert result.truncated and result.output == "x" * 4096


def test_endless_flood_times_out_with_capped_output(sandbox: Sandbox) -> None:
    result = _run(sandbox, "job_flood", Limits(wall_s=1.0), stream="stdout", chunks=10**9)
    assert result.outcome == "timeout", result
    assert result.truncated and len(result.output) == Limits().output_bytes


def test_closing_stdout_then_spinning_times_out(sandbox: Sandbox) -> None:
    start = time.monotonic()
    result = _run(sandbox, "job_close_stdout_and_spin", Limits(wall_s=4.0, cpu_s=1.0))
    assert result.outcome == "timeout", result
    assert time.monotonic() - start < 10


def test_stdin_is_empty(sandbox: Sandbox) -> None:
    result = _run(sandbox, "job_read_stdin")
    assert result.outcome == "returned", result
    assert result.value == ["", ""]


def test_ignoring_sigterm_does_not_outlive_the_deadline(sandbox: Sandbox, marker: str) -> None:
    start = time.monotonic()
    result = _run(sandbox, "job_ignore_sigterm", Limits(wall_s=1.0), marker=marker)
    assert result.outcome == "timeout", result
    assert "wall-clock" in result.error
    assert time.monotonic() - start < 6
    assert _survivors(marker) == []


def test_network_is_blocked_under_bwrap(sandbox: Sandbox) -> None:
    accepted: list[bytes] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(3)

        def accept() -> None:
            try:
                conn, _ = server.accept()
                accepted.append(conn.recv(100))
                conn.close()
            except OSError:
                pass

        thread = threading.Thread(target=accept)
        thread.start()
        result = _run(sandbox, "job_connect", port=server.getsockname()[1])
        thread.join()
    assert result.outcome == "returned", result
    if sandbox.tier == "bwrap":
        assert result.value.startswith("blocked"), result.value
        assert accepted == []
    # rlimits: the job may reach the network; that is what the tier note says


def test_writing_outside_the_job_folder(sandbox: Sandbox, owned: Path, marker: str) -> None:
    result = _run(
        sandbox, "job_write_outside", home=str(Path.home()), owned=str(owned), marker=marker
    )
    assert result.outcome == "returned", result
    if _isolated_fs(sandbox.tier):  # the fixture checks that nothing changed
        assert "written" not in result.value.values(), result.value
    else:  # rlimits as an ordinary user: the job may write where the user may; clean up
        for folder in (owned, Path.home()):
            (folder / f"{marker}.txt").unlink(missing_ok=True)


def test_an_environment_secret_is_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    monkeypatch.setenv("TROOP_TEST_SECRET", secret)
    for tier in ("bwrap", "rlimits"):
        if tier == "bwrap" and _bwrap_reason():
            continue
        with Sandbox(1, tier=tier) as box:
            result = _run(box, "job_read_secrets")
        assert result.outcome == "returned", result
        assert secret not in result.value
        assert "TROOP_TEST_SECRET" not in result.value


@pytest.mark.parametrize("tier", TIERS)
def test_no_contamination_between_jobs_on_one_worker(tier: str, marker: str) -> None:
    with Sandbox(1, tier=tier) as box:
        first = _run(box, "job_contaminate", marker=marker)
        second = _run(box, "job_look_for_contamination", marker=marker)
    assert first.outcome == "returned" and second.outcome == "returned", (first, second)
    seen = second.value
    assert seen["global"] is None and seen["env"] is None
    assert seen["cwd_files"] == []
    if _isolated_fs(tier):
        assert seen["tmp_file"] is False
    else:
        Path("/tmp", marker).unlink(missing_ok=True)  # rlimits as a user: /tmp is shared


def test_terminal_escapes_and_markup_are_stored_raw(sandbox: Sandbox) -> None:
    text = "\x1b[31mred\x1b[0m [bold]not bold[/bold] \x07\x1b]0;title\x07 \r tab\t ünï 🎉"
    result = _run(sandbox, "job_echo", text=text)
    assert result.outcome == "returned", result
    assert result.output == text + "\n"


def test_entry_errors_and_exits_are_told_apart(sandbox: Sandbox) -> None:
    raised = _run(sandbox, "job_raise")
    assert raised.outcome == "error" and "ValueError: a bug in the entry" in raised.error
    exited = _run(sandbox, "job_exit", how="os")
    assert exited.outcome == "crash" and "status 3" in exited.error
    system_exit = _run(sandbox, "job_exit", how="sys")
    assert system_exit.outcome == "crash" and "SystemExit" in system_exit.error
    missing = sandbox.run(Job("tests.no_such_module:job", {}, FAST))
    assert missing.outcome == "error" and "ModuleNotFoundError" in missing.error


def test_a_worker_killed_from_outside_is_replaced(sandbox: Sandbox) -> None:
    with Sandbox(1, tier=sandbox.tier) as box:
        (pid,) = box.worker_pids
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        result = _run(box, "job_echo")
        assert result.outcome == "returned", result
        assert box.worker_pids != [pid]


def test_close_leaves_no_process_behind(sandbox: Sandbox, marker: str) -> None:
    box = Sandbox(2, tier=sandbox.tier)
    roots = box.worker_pids
    result: list[JobResult] = []
    thread = threading.Thread(
        target=lambda: result.append(
            _run(box, "job_ignore_sigterm", Limits(wall_s=30.0), marker=marker)
        )
    )
    thread.start()
    assert _wait_marked(marker)
    box.close()
    thread.join(timeout=20)
    assert result and result[0].outcome in ("infra_error", "crash")
    assert _survivors(marker) == []
    for pid in roots:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    assert box.run(Job(f"{HERE}:job_echo", {})).outcome == "infra_error"


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_forcing_bwrap_where_it_is_missing_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    monkeypatch.setattr(sandbox_module, "_bwrap_probe", {})
    with pytest.raises(TroopError, match="bwrap is not installed"):
        Sandbox(1, tier="bwrap")
    with Sandbox(1, tier="auto") as box:
        assert box.tier == "rlimits"
        assert box.tier_note.startswith("rlimits only: bwrap not usable (bwrap is not installed)")
        assert _run(box, "job_echo").outcome == "returned"


def test_a_job_that_kills_its_worker_is_a_crash(sandbox: Sandbox) -> None:
    with Sandbox(1, tier=sandbox.tier) as box:
        result = _run(box, "job_kill_worker")
        if result.outcome == "returned":  # bwrap, or troop is root: the worker is out of reach
            assert result.value.startswith("could not"), result.value
        else:
            assert result.outcome == "crash", result
            assert "killed its sandbox worker" in result.error
        assert _run(box, "job_echo").outcome == "returned"  # a new worker took over


def test_preloaded_modules_come_with_the_fork(sandbox: Sandbox) -> None:
    with Sandbox(1, tier=sandbox.tier, preload=["fractions", "decimal"]) as box:
        result = _run(box, "job_modules", names=["fractions", "decimal"])
    assert result.value == {"fractions": True, "decimal": True}
    with pytest.raises(TroopError, match="no_such_module"):
        Sandbox(1, tier=sandbox.tier, preload=["no_such_module"])
