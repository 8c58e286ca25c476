"""The test command also runs the static checks of `python scripts/check.py`: ruff, the
formatter, mypy (strict, over the package as installed) and the import-linter layer contracts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("step", ["ruff", "format", "mypy", "imports"])
def test_static_check_passes(step: str) -> None:
    out = subprocess.run(
        [sys.executable, "scripts/check.py", "--only", step],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
