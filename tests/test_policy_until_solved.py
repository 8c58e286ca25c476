"""Budget policies fixed and until-solved: the order of work, water-filling in chunks, the
cap, and never more than the budget however passes arrive."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import Future
from itertools import pairwise

import pytest

from tests.policy_helpers import IDS, drain, scheduler
from troop.engine.policy import PolicySpec, UntilSolved, make_allocation
from troop.engine.work import WorkItem
from troop.verifiers.base import Status, Verdict

# -- fixed -------------------------------------------------------------------------------------


def test_fixed_is_the_scheduler_unchanged() -> None:
    assert make_allocation(PolicySpec(), IDS, set(), {}) is None
    assert PolicySpec().describe() == {"name": "fixed"}
    s, _, _ = scheduler(PolicySpec(), 2, {("p1", 0)})
    assert s.remaining() == 7
    assert [(i.prompt.problem_id, i.sample_index) for i in drain(s)] == [
        ("p0", 0),
        ("p0", 1),
        ("p1", 1),
        ("p2", 0),
        ("p2", 1),
        ("p3", 0),
        ("p3", 1),
    ]


# -- until-solved ------------------------------------------------------------------------------


def test_until_solved_stops_at_first_pass_and_spends_the_rest_on_unsolved() -> None:
    spec = PolicySpec("until-solved", cap=3.0, chunk=2)
    s, _, allocation = scheduler(spec, 4)
    assert isinstance(allocation, UntilSolved)
    assert s.remaining() == 16
    items = []
    while (item := s.next_item()) is not None:
        items.append(item)
        if item.prompt.problem_id in ("p0", "p2") and item.sample_index == 1:
            allocation.solved(item.prompt.problem_id)  # its second sample passed
    per = Counter(i.prompt.problem_id for i in items)
    assert per == {"p0": 2, "p2": 2, "p1": 6, "p3": 6}  # 4 freed samples went to p1 and p3
    assert len(items) == 16 == 4 * len(IDS)  # the whole N*P budget, never more
    assert allocation.stopped == {"p0", "p2"}
    # Indices run past N for the unsolved problems, each once, with its own seed.
    assert sorted(i.sample_index for i in items if i.prompt.problem_id == "p1") == list(range(6))
    # Work comes in chunks of 2 per problem: one prompt evaluation serves a chunk.
    switches = sum(a.prompt.problem_id != b.prompt.problem_id for a, b in pairwise(items))
    assert switches <= len(items) // 2


def test_water_filling_order_and_chunks() -> None:
    s, _, _ = scheduler(PolicySpec("until-solved", chunk=3), 6)
    order = [i.prompt.problem_id for i in drain(s)][:15]
    assert order == ["p0"] * 3 + ["p1"] * 3 + ["p2"] * 3 + ["p3"] * 3 + ["p0"] * 3


def test_cap_bounds_a_problem_and_a_raised_budget_reopens_it() -> None:
    spec = PolicySpec("until-solved", cap=2.0, chunk=4)
    s, control, allocation = scheduler(spec, 3)
    for pid in ("p0", "p1", "p2"):
        allocation.solved(pid)
    items = drain(s)
    assert [i.prompt.problem_id for i in items] == ["p3"] * 6  # cap 2 x N, not all 12
    assert s.remaining() == 0
    control.raise_budget(5)
    more = drain(s)
    assert [i.sample_index for i in more] == [6, 7, 8, 9]  # the cap is now 10


def test_stored_samples_count_against_the_budget() -> None:
    done = {("p0", i) for i in range(5)} | {("p1", 0), ("p1", 2)}
    s, _, allocation = scheduler(PolicySpec("until-solved", chunk=1), 4, done)
    assert s.remaining() == 16 - 7
    items = drain(s)
    assert len(items) + len(done) == 16
    # Water-filling serves the problems with fewest samples: p0 (5 stored) gets none.
    assert allocation.drawn("p0") == 5
    assert "p0" not in {i.prompt.problem_id for i in items}
    assert [i.sample_index for i in items if i.prompt.problem_id == "p1"] == [1, 3]


@pytest.mark.parametrize("seed", range(20))
def test_total_never_exceeds_the_budget_with_random_stops(seed: int) -> None:
    rng = random.Random(seed)
    budget = rng.randint(1, 9)
    spec = PolicySpec("until-solved", cap=rng.choice([1.0, 1.5, 4.0]), chunk=rng.randint(1, 5))
    done = {(pid, i) for pid in IDS for i in range(rng.randint(0, 3)) if rng.random() < 0.5}
    s, control, allocation = scheduler(spec, budget, done)
    handed: list[WorkItem] = []

    def stopper() -> None:  # passes arrive from other threads, as verification's do
        for pid in rng.sample(IDS, rng.randint(0, 4)):
            allocation.solved(pid)

    thread = threading.Thread(target=stopper)
    thread.start()
    while (item := s.next_item()) is not None:
        handed.append(item)
    thread.join()
    keys = [(i.prompt.problem_id, i.sample_index) for i in handed]
    assert len(set(keys)) == len(keys) and not set(keys) & done
    assert len(handed) + len(done) <= budget * len(IDS)
    cap = allocation.cap(budget)
    for pid in IDS:
        assert allocation.drawn(pid) <= max(cap, sum(1 for d in done if d[0] == pid))


def test_a_pass_reported_by_a_verification_future_stops_the_problem() -> None:
    allocation = make_allocation(PolicySpec("until-solved"), IDS, set(), {})
    assert allocation is not None

    def future(status: Status | None) -> Future[Verdict]:
        f: Future[Verdict] = Future()
        if status is None:
            f.set_exception(RuntimeError("verifier bug"))
        else:
            f.set_result(Verdict(status, "math-answer", "1", 0.01, ""))
        return f

    for pid, status in (
        ("p0", Status.FAIL),
        ("p1", None),
        ("p2", Status.INVALID),
        ("p3", Status.PASS),
    ):
        f = future(status)
        f.add_done_callback(allocation.on_verdict(pid))  # already done: runs at once
    assert allocation.stopped == {"p3"}
