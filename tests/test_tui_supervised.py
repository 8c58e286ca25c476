"""The TUI over the supervised worker (Pilot, real model): it survives a killed worker and `r`
completes the run; it follows a session another process samples; it never loads llama.cpp."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.test_supervisor import ARGS, _stored, _texts, _wait, _worker_pid
from tests.tui_pilot import SIZE, until
from troop.engine.runner import Launch, VerifyOptions
from troop.engine.settings import RunSettings
from troop.engine.storage.lock import holder
from troop.tui.app import TroopApp
from troop.tui.screens.live import LiveScreen

pytestmark = pytest.mark.model


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "config"
    monkeypatch.setenv("TROOP_CONFIG_HOME", str(home))
    return home


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_the_tui_survives_a_killed_worker_and_r_completes_the_run(
    tmp_path: Path, sig: signal.Signals
) -> None:
    path = tmp_path / "s.sqlite"
    launch = Launch(
        RunSettings(session=path, problems="arithmetic:3", samples=6, parallel=4, max_tokens=40),
        VerifyOptions(verifier="none"),
    )
    seen: dict[str, Any] = {}

    async def go() -> None:
        app = TroopApp(lambda: LiveScreen(launch=launch), watch_themes=False)
        async with app.run_test(size=SIZE) as pilot:
            live = app.screen
            assert isinstance(live, LiveScreen)
            await until(pilot, lambda: _stored(path) >= 3, timeout=300)
            pid = live.run.prep.model.worker.pid
            os.kill(pid, sig)
            await until(pilot, lambda: live.state.phase == "failed", timeout=120)
            seen["error"] = live.last_error
            seen["kept"] = _texts(path)
            await pilot.press("r")
            await until(pilot, lambda: live.state.phase == "completed", timeout=400)
            seen["new_pid"] = live.run.prep.model.worker.pid
            await pilot.press("q")

    asyncio.run(go())
    assert f"killed by {sig.name}" in seen["error"] and "in flight lost" in seen["error"]
    assert "\n" not in seen["error"].split(" (")[0]
    assert seen["new_pid"] != 0
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    con.close()
    after = _texts(path)
    assert len(after) == 18
    assert {k: after[k] for k in seen["kept"]} == seen["kept"]


def test_open_follows_a_session_another_process_samples(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    args = [*ARGS[:3], "8", *ARGS[4:]]  # 3 problems x 8 samples
    proc = subprocess.Popen(
        [sys.executable, "-m", "troop", "run", "--headless", "--session", str(path), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen: dict[str, Any] = {}
    try:
        _wait(lambda: _stored(path) >= 1 or proc.poll() is not None)
        who = holder(path)
        assert who is not None and who.pid == proc.pid

        async def go() -> None:
            app = TroopApp(lambda: LiveScreen(session_path=path, follow=who), watch_themes=False)
            async with app.run_test(size=SIZE) as pilot:
                live = app.screen
                assert isinstance(live, LiveScreen) and live.state.phase == "following"
                await until(pilot, lambda: live.analysis is not None, timeout=60)
                first = live.analysis.session.samples
                seen["first"] = first
                # Rows the writer adds reach the table and the status without a key press.
                await until(pilot, lambda: live.analysis.session.samples > first, timeout=300)
                await pilot.press("r")  # refused: the other process holds the session
                assert not live.sampling
                await until(pilot, lambda: live.state.phase == "browsing", timeout=400)
                await until(pilot, lambda: live.analysis.session.samples == 24, timeout=60)
                seen["table_rows"] = live.query_one("#problems").row_count
                await pilot.press("q")

        asyncio.run(go())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == 0
    assert seen["first"] < 24 and seen["table_rows"] == 3


def test_a_whole_tui_run_never_loads_llama_cpp_in_the_front_end(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import asyncio, sys, time
        from pathlib import Path
        from troop.engine.settings import RunSettings
        from troop.engine.runner import Launch
        from troop.tui.app import TroopApp
        from troop.tui.screens.live import LiveScreen

        launch = Launch(RunSettings(session=Path({str(tmp_path / "s.sqlite")!r}),
                                    problems="arithmetic:2", samples=2, parallel=2,
                                    max_tokens=12))

        async def go():
            app = TroopApp(lambda: LiveScreen(launch=launch), watch_themes=False)
            async with app.run_test(size=(120, 36)) as pilot:
                live = app.screen
                deadline = time.monotonic() + 400
                while live.state.phase != "completed" and time.monotonic() < deadline:
                    await pilot.pause(0.1)
                print("phase", live.state.phase)
                await pilot.press("q")

        asyncio.run(go())
        print("llama_cpp loaded:", "llama_cpp" in sys.modules)
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert "phase completed" in out.stdout, out.stderr[-2000:]
    assert "llama_cpp loaded: False" in out.stdout


def test_a_tui_whose_terminal_disappears_stops_cleanly(tmp_path: Path) -> None:
    """The terminal closes mid-run (its window shut, its ssh dropped): the TUI stops sampling,
    frees its worker and exits instead of spinning on a terminal that is gone."""
    import fcntl
    import pty
    import struct
    import termios
    import time

    path = tmp_path / "s.sqlite"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "TROOP_CONFIG_HOME": str(tmp_path / "c")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "troop", "run", "--session", str(path), *ARGS],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    seen = bytearray()
    try:
        deadline = time.monotonic() + 300
        while _stored(path) < 2 and time.monotonic() < deadline and proc.poll() is None:
            try:
                seen += os.read(master, 65536)  # keep the terminal drained
            except OSError:
                break
        assert proc.poll() is None, seen[-2000:].decode(errors="replace")
        pid = _worker_pid(path)
        assert pid is not None
        os.close(master)  # the terminal goes away: the TUI gets SIGHUP
        proc.wait(timeout=120)
        _wait(lambda: not Path(f"/proc/{pid}").exists(), timeout=60)  # its worker is gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert holder(path) is None
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    status = con.execute("SELECT status FROM runs").fetchone()[0]
    con.close()
    assert status in ("cancelled", "running")
