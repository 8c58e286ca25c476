"""The sandbox's isolation in both tiers: the network, files outside the job's folder,
secrets in the environment, and what one job leaves for the next."""

from __future__ import annotations

import socket
import threading
import uuid
from pathlib import Path

import pytest

from tests.sandbox_helpers import (
    TIERS,
    _bwrap_reason,
    _isolated_fs,
    _run,
    marker_fixture,  # noqa: F401 - a fixture pytest finds by its name
    owned_fixture,  # noqa: F401 - a fixture pytest finds by its name
    sandbox_fixture,  # noqa: F401 - a fixture pytest finds by its name
    warm_box_fixture,  # noqa: F401 - a fixture pytest finds by its name
)
from troop.verifiers.sandbox import Sandbox


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
