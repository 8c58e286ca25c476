"""Shared fixtures: a private sessions folder, and helpers that run troop like a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """What troop learns about this machine (engine/backends/supervisor.py: CPU extra buffers that
    fault) goes to a cache of the test run's own: on a host whose AMX kernels fault, the first
    model test meets the real fault and every later one starts from the finding."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(autouse=True)
def sessions_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """New sessions land in this test's own folder, never in the user's."""
    home = tmp_path / "sessions"
    monkeypatch.setenv("TROOP_SESSIONS", str(home))
    yield home


def troop(
    *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the installed `troop` command line in a fresh interpreter."""
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "troop", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )
