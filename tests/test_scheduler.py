"""The work list: which (problem, index) pairs a run draws, in what order, with what seed."""

from __future__ import annotations

from troop.engine.control import RunControl
from troop.engine.scheduler import Scheduler
from troop.engine.work import PromptSpec, SamplingParams, WorkItem, sample_seed

PROMPTS = [PromptSpec(f"p{i}", (1, 2, 3), ()) for i in range(3)]


def drain(s: Scheduler) -> list[WorkItem]:
    out = []
    while (item := s.next_item()) is not None:
        out.append(item)
    return out


def test_problem_major_order_skips_stored_samples() -> None:
    control = RunControl(3)
    s = Scheduler(PROMPTS, {("p0", 1), ("p2", 0)}, control, SamplingParams(), 5)
    assert s.remaining() == 7
    items = drain(s)
    assert [(i.prompt.problem_id, i.sample_index) for i in items] == [
        ("p0", 0),
        ("p0", 2),
        ("p1", 0),
        ("p1", 1),
        ("p1", 2),
        ("p2", 1),
        ("p2", 2),
    ]
    assert s.remaining() == 0
    assert all(i.seed == sample_seed(5, i.prompt.problem_id, i.sample_index) for i in items)


def test_raised_budget_reopens_finished_problems() -> None:
    control = RunControl(1)
    s = Scheduler(PROMPTS, set(), control, SamplingParams(), 0)
    assert len(drain(s)) == 3
    control.raise_budget(2)
    control.raise_budget(1)  # lowering is ignored
    assert [(i.prompt.problem_id, i.sample_index) for i in drain(s)] == [
        ("p0", 1),
        ("p1", 1),
        ("p2", 1),
    ]


def test_temperatures_cycle_by_index_and_seeds_are_stable() -> None:
    control = RunControl(4)
    params = SamplingParams(temperatures=(0.2, 1.0))
    items = drain(Scheduler(PROMPTS[:1], set(), control, params, 0))
    assert [i.temperature for i in items] == [0.2, 1.0, 0.2, 1.0]
    assert len({i.seed for i in items}) == 4
    assert sample_seed(0, "p0", 0) == sample_seed(0, "p0", 0) != sample_seed(1, "p0", 0)
