"""Shared fixtures: a private sessions folder, and helpers that run troop like a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


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
        capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env,
    )
