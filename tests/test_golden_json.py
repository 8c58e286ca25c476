"""The analysis's JSON, pinned byte for byte on two real session files and their comparison.

The session files in tests/data/golden/ were drawn by troop itself with the default model
(arithmetic:10 at temperatures 0.6 and 1.0, 16 samples each; the first 4 HumanEval problems,
16 samples each, judged by python-tests and then python-examples). The JSON beside them is what
`troop report --format json` printed for them before the analysis returned typed results;
any change to the analysis's output, in a key, an order or a digit, fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "data" / "golden"
CASES = {
    "arith.json": ["arith.sqlite"],
    "he.json": ["he.sqlite"],
    "compare.json": ["arith.sqlite", "he.sqlite"],
}


@pytest.mark.parametrize("expected", sorted(CASES))
def test_report_json_is_byte_identical_to_the_golden_file(expected: str, tmp_path: Path) -> None:
    for name in CASES[expected]:
        shutil.copy(GOLDEN / name, tmp_path / name)  # the report names the path it was given
    out = tmp_path / "out.json"
    # OpenBLAS picks its kernels by CPU, and the fits' last digits follow them: one kernel
    # that every x86-64 machine here runs keeps the comparison exact across machines.
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell"}
    args = [sys.executable, "-m", "troop", "report", *CASES[expected], "--format", "json"]
    done = subprocess.run(
        [*args, "-o", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (GOLDEN / expected).read_bytes()
