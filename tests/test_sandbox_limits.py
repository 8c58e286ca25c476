"""The sandbox's limits in both tiers: forks, daemons, memory, files, output and time each
end a hostile job with the right outcome and nothing left running, and output is kept raw."""

from __future__ import annotations

import os
import time

import pytest

from tests.sandbox_helpers import (
    ROOT,
    _run,
    marker_fixture,  # noqa: F401 - a fixture pytest finds by its name
    owned_fixture,  # noqa: F401 - a fixture pytest finds by its name
    sandbox_fixture,  # noqa: F401 - a fixture pytest finds by its name
    warm_box_fixture,  # noqa: F401 - a fixture pytest finds by its name
)
from tests.sandbox_jobs import _survivors
from troop.verifiers.sandbox import Limits, Sandbox


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


def test_terminal_escapes_and_markup_are_stored_raw(sandbox: Sandbox) -> None:
    text = "\x1b[31mred\x1b[0m [bold]not bold[/bold] \x07\x1b]0;title\x07 \r tab\t ünï 🎉"
    result = _run(sandbox, "job_echo", text=text)
    assert result.outcome == "returned", result
    assert result.output == text + "\n"
