"""The sandbox's workers: errors and exits told apart, workers killed and replaced, a clean
close, the tier chosen where bwrap is missing, and modules preloaded before the fork."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.sandbox_helpers import (
    FAST,
    HERE,
    _is_zombie,
    _run,
    marker_fixture,  # noqa: F401 - a fixture pytest finds by its name
    owned_fixture,  # noqa: F401 - a fixture pytest finds by its name
    sandbox_fixture,  # noqa: F401 - a fixture pytest finds by its name
    warm_box_fixture,  # noqa: F401 - a fixture pytest finds by its name
)
from tests.sandbox_jobs import _survivors, _wait_marked
from troop.errors import TroopError
from troop.verifiers.sandbox import Job, JobResult, Limits, Sandbox
from troop.verifiers.sandbox import tiers as sandbox_module


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
