"""A misbehaving OpenAI-compatible server: transient faults retried, a persistent one failing
the run with its samples kept, refusals, cancels and resumes, and several samples per request."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fault_server import FaultServer, answer_text
from tests.openai_helpers import (
    fault_fixture,  # noqa: F401 - a fixture pytest finds by its name
    prompt_of,
    quick_retries_fixture,  # noqa: F401 - an autouse fixture
    rows,
    run,
    settings,
)
from troop.engine.control import RunControl
from troop.engine.events import Event, Recorder, SampleFinished
from troop.engine.storage.session import Session
from troop.engine.work import sample_seed
from troop.errors import EngineError

# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "faults",
    [
        ["429", "500", "503"],
        ["slow"],
        ["drop", "drop"],
        ["malformed", "garbage", "error-event"],
        ["no-finish"],
    ],
)
def test_transient_faults_are_retried_and_nothing_is_lost(
    tmp_path: Path, fault: FaultServer, faults: list[str]
) -> None:
    fault.behaviour.faults.extend(faults)
    path = tmp_path / "f.sqlite"
    rec = Recorder()
    summary = run(settings(path, fault.url, parallel=2), rec)
    assert summary.status == "completed" and summary.stored == summary.target == 12
    assert not fault.behaviour.faults  # every fault was served
    assert len(fault.stream_bodies()) == 12 + len(faults)
    # A retried sample is stored whole: the partial text of a dropped attempt is forgotten.
    for pid, _idx, seed, text, *_ in rows(path):
        assert text == answer_text(prompt_of(path, pid), seed)
    assert len(rec.of(SampleFinished)) == 12


def test_persistent_failure_fails_the_run_keeps_samples_and_resume_completes(
    tmp_path: Path, fault: FaultServer
) -> None:
    path = tmp_path / "p.sqlite"
    fault.behaviour.always, fault.behaviour.ok_first = "500", 3
    with pytest.raises(EngineError) as info:
        run(settings(path, fault.url, parallel=1))
    message = str(info.value)
    assert "1 sample(s) could not be drawn" in message and "after 4 attempts" in message
    assert "HTTP 500: injected 500" in message and "3 drawn and stored" in message
    assert len(rows(path)) == 3  # the samples drawn before the outage are kept
    with Session.open(path) as s:
        status, error = s.conn.execute("SELECT status, error FROM runs").fetchone()
    assert status == "failed" and "could not be drawn" in error
    # The server recovers; resuming draws exactly the missing samples, with their own seeds.
    fault.behaviour.always = None
    before = len(fault.stream_bodies())
    summary = run(
        settings(
            path,
            fault.url,
            parallel=4,
            base_url=None,
            model=None,
            backend=None,
            problems=None,
            limit=None,
            samples=None,
            max_tokens=None,
        )
    )
    assert summary.status == "completed" and summary.samples == 9 and summary.stored == 12
    assert len(fault.stream_bodies()) - before == 9
    keys = [(r[0], r[1]) for r in rows(path)]
    assert len(keys) == len(set(keys)) == 12


def test_a_refused_request_is_not_retried(tmp_path: Path, fault: FaultServer) -> None:
    fault.behaviour.faults.append("400")
    with pytest.raises(EngineError, match=r"not retried: HTTP 400: injected 400"):
        run(settings(tmp_path / "r.sqlite", fault.url, parallel=1))
    assert len(fault.stream_bodies()) == 1


def test_cancel_mid_run_then_resume(tmp_path: Path, fault: FaultServer) -> None:
    fault.behaviour.token_delay_s = 0.02
    control = RunControl(4)

    class CancelAfterThree:
        def __init__(self) -> None:
            self.n = 0

        def on_event(self, event: Event) -> None:
            if isinstance(event, SampleFinished):
                self.n += 1
                if self.n == 3:
                    control.cancel()

    path = tmp_path / "c.sqlite"
    summary = run(settings(path, fault.url, parallel=2), CancelAfterThree(), control)
    assert summary.status == "cancelled" and 3 <= summary.stored < 12
    fault.behaviour.token_delay_s = 0.0
    summary = run(settings(path, fault.url))
    assert summary.status == "completed" and summary.stored == 12


@pytest.mark.parametrize("honour", [True, False])
def test_n_per_request(tmp_path: Path, fault: FaultServer, honour: bool) -> None:
    fault.behaviour.honour_n = honour
    path = tmp_path / "n.sqlite"
    summary = run(settings(path, fault.url, n_per_request=4, parallel=4))
    assert summary.status == "completed" and summary.stored == 12
    bodies = fault.stream_bodies()
    if honour:
        assert len(bodies) == 3 and all(b["n"] == 4 for b in bodies)
        # The samples of one request share its seed (its first sample's).
        for pid in ("arith/000", "arith/001", "arith/002"):
            assert len({r[2] for r in rows(path) if r[0] == pid}) == 1
    else:
        # The server ignored `n`: the first request's other samples went back as singles.
        assert len(bodies) == 1 + 3 + 4 + 4
        with Session.open(path) as s:
            seed = s.meta("config")["seed"]
        assert all(r[2] == sample_seed(seed, r[0], r[1]) for r in rows(path))
