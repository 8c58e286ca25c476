"""A small scheduler over four problems, and sample records, shared by the policy tests."""

from __future__ import annotations

from troop.engine.control import RunControl
from troop.engine.events import SampleRecord
from troop.engine.policy import PolicySpec, make_allocation
from troop.engine.scheduler import Scheduler
from troop.engine.work import PromptSpec, SamplingParams, WorkItem

IDS = [f"p{i}" for i in range(4)]
PROMPTS = [PromptSpec(pid, (1, 2, 3), ()) for pid in IDS]


def scheduler(
    spec: PolicySpec,
    budget: int,
    done: set[tuple[str, int]] | None = None,
    formats: dict[str, str] | None = None,
) -> tuple[Scheduler, RunControl, object]:
    """A scheduler over IDS under `spec`, with its run control and allocation."""
    done = done or set()
    allocation = make_allocation(spec, IDS, done, formats or dict.fromkeys(IDS, "arithmetic"))
    control = RunControl(budget)
    return Scheduler(PROMPTS, done, control, SamplingParams(), 0, allocation), control, allocation


def drain(s: Scheduler) -> list[WorkItem]:
    """Every work item the scheduler hands out, in order."""
    out = []
    while (item := s.next_item()) is not None:
        out.append(item)
    return out


def record(pid: str, index: int, text: str) -> SampleRecord:
    """A stored sample of `pid` whose text is `text`."""
    return SampleRecord(
        pid, index, 0, 0.8, 40, 0.95, 0.0, 32, text, (1,), 3, "eos", None, 0.1, -1.0
    )


def credit_extra(passed: int, run: int) -> dict[str, int]:
    """A code verdict's extra: how many of its tests passed, of how many run."""
    return {"tests_passed": passed, "tests_run": run}
