"""Policy settings that are refused: bad specs, a policy that needs a verifier run without
one, and bad policy flags as one-line errors on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import troop
from troop.engine.policy import PolicySpec, begin, check_formats
from troop.engine.storage.rows import StoredProblem
from troop.engine.storage.session import Session
from troop.errors import TroopError

# -- specs -------------------------------------------------------------------------------------


def test_spec_checks_and_formats() -> None:
    for bad in (
        PolicySpec("greedy"),
        PolicySpec("until-solved", cap=0.5),
        PolicySpec("until-solved", chunk=0),
        PolicySpec("until-consistent", threshold=1),
        PolicySpec("until-consistent", threshold=0.5),
        PolicySpec("until-consistent", min_votes=0),
    ):
        with pytest.raises(TroopError):
            bad.check()
    with pytest.raises(TroopError, match="answer-style"):
        check_formats(PolicySpec("until-consistent"), ["humaneval"])
    check_formats(PolicySpec("until-consistent"), ["arithmetic", "gsm8k", "math"])
    check_formats(PolicySpec("until-solved"), ["humaneval"])
    assert PolicySpec("until-consistent").describe() == {
        "name": "until-consistent",
        "cap": 4.0,
        "chunk": None,
        "threshold": 0.95,
        "min_votes": 3,
    }
    for bad in (PolicySpec("promising", credit=-0.1), PolicySpec("promising", credit=1.5)):
        with pytest.raises(TroopError, match="--policy-credit"):
            bad.check()
    assert PolicySpec("promising").describe() == {
        "name": "promising",
        "cap": 4.0,
        "chunk": None,
        "credit": 0.5,
    }


def test_begin_refuses_until_solved_without_a_verifier(tmp_path: Path) -> None:
    with Session.create(tmp_path / "s.sqlite", {"budget": 2}) as session:
        with pytest.raises(TroopError, match="needs a verifier"):
            problem = StoredProblem("p0", 0, "gsm8k", "Q", 3, (), {"format": "gsm8k"})
            begin(PolicySpec("until-solved"), session, ["p0"], {"p0": problem}, None)
        assert session.meta("coverage_only") is None  # nothing recorded for a refused run


# -- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "until-solved", "--verifier", "none"], "needs a verifier"),
        (
            ["--policy", "until-solved", "--consistency-threshold", "0.9"],
            "--consistency-threshold goes with --policy until-consistent",
        ),
        (
            ["--policy-cap", "2"],
            "--policy-cap goes with --policy until-solved or until-consistent or promising",
        ),
        (["--policy-credit", "0.3"], "--policy-credit goes with --policy promising"),
        (["--policy", "promising", "--verifier", "none"], "needs a verifier"),
        (["--policy", "promising", "--policy-credit", "2"], "--policy-credit must be in [0, 1]"),
        (["--policy", "until-solved", "--policy-cap", "0.5"], "--policy-cap must be"),
        (["--policy", "until-consistent", "--consistency-threshold", "1.5"], "must be in (0.5, 1)"),
        (
            ["--policy", "until-consistent", "--problems", "humaneval", "--verifier", "none"],
            "answer-style",
        ),
        (["--policy", "sometimes"], "invalid choice"),
    ],
)
def test_bad_policy_arguments_are_one_line_errors(
    tmp_path: Path, args: list[str], message: str
) -> None:
    path = tmp_path / "s.sqlite"
    out = troop("run", "--headless", "--session", str(path), *args)
    assert out.returncode == 2
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert not path.exists()  # refused before a session was created
