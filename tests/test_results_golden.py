"""The typed analysis against the golden JSON: `analyse_path(...).to_json()` and
`compare(...).to_json()`, dumped as the report dumps them, are the pinned bytes of
tests/data/golden/, and each section of the two golden sessions has the type its JSON says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from troop.engine.analytics.analysis import analyse_path, compare
from troop.engine.analytics.backtest import Backtest
from troop.engine.analytics.results import Refused
from troop.engine.analytics.results_curves import BetaBinomialFit, PassAtK, PowerLawFit
from troop.engine.analytics.results_selection import FalsePositives, Selection

GOLDEN = Path(__file__).parent / "data" / "golden"
CASES = {
    "arith.json": ["arith.sqlite"],
    "he.json": ["he.sqlite"],
    "compare.json": ["arith.sqlite", "he.sqlite"],
}
# Analyses the sessions named on its command line (one: the analysis, more: their comparison)
# and writes the JSON of the typed result, as `troop report --format json` writes it.
SCRIPT = """
import json, sys
from pathlib import Path
from troop.engine.analytics.analysis import analyse_path, compare
*names, out = sys.argv[1:]
analyses = [analyse_path(Path(name)) for name in names]
result = analyses[0] if len(analyses) == 1 else compare(analyses)
text = json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\\n"
Path(out).write_bytes(text.encode("utf-8"))
"""


@pytest.mark.parametrize("expected", sorted(CASES))
def test_to_json_is_byte_identical_to_the_golden_file(expected: str, tmp_path: Path) -> None:
    for name in CASES[expected]:
        shutil.copy(GOLDEN / name, tmp_path / name)  # the analysis names the path it was given
    out = tmp_path / "out.json"
    # As in test_golden_json.py: one OpenBLAS kernel on every x86-64 machine keeps the fits'
    # last digits, so this runs in a fresh interpreter that picks it before numpy loads.
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell"}
    args = [sys.executable, "-c", SCRIPT, *CASES[expected], str(out)]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (GOLDEN / expected).read_bytes()


def test_the_golden_sessions_sections_have_their_types(tmp_path: Path) -> None:
    # Types only, no digits: these hold whichever OpenBLAS kernel this interpreter runs.
    for name in ("arith.sqlite", "he.sqlite"):
        shutil.copy(GOLDEN / name, tmp_path / name)  # opening a session may write beside it
    arith = analyse_path(tmp_path / "arith.sqlite")
    assert isinstance(arith.coverage, PassAtK)
    assert isinstance(arith.fit.power_law, PowerLawFit)
    assert isinstance(arith.fit.beta_binomial, BetaBinomialFit)
    assert isinstance(arith.backtest, Backtest)
    assert isinstance(arith.selection, Selection)
    assert isinstance(arith.false_positives, Refused)  # no python-examples verdicts
    he = analyse_path(tmp_path / "he.sqlite")
    assert he.fit.power_law == Refused("no problem solved yet")
    assert he.fit.better is None
    assert isinstance(he.selection, Refused) and "answer-style" in he.selection.reason
    assert isinstance(he.false_positives, FalsePositives)
    both = compare([arith, he])
    assert both.analyses == (arith, he) and not both.same_problems
