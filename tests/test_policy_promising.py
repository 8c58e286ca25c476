"""The promising policy: one chunk for every problem, then samples for the problem likeliest
to be solved, within the budget and never after a pass."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tests.policy_helpers import IDS, credit_extra, record, scheduler
from troop.engine.analytics import fits
from troop.engine.policy import PolicySpec, Promising
from troop.engine.work import WorkItem

# -- promising ---------------------------------------------------------------------------------


def test_promising_explores_every_problem_then_follows_the_likeliest() -> None:
    spec = PolicySpec("promising", chunk=2, credit=0.5)
    s, _, allocation = scheduler(spec, 6, formats=dict.fromkeys(IDS, "humaneval"))
    assert isinstance(allocation, Promising)
    first = [s.next_item() for _ in range(8)]
    # One chunk each, in work-list order, before any problem is judged on its samples.
    assert [i.prompt.problem_id for i in first if i] == [p for p in IDS for _ in range(2)]
    verdicts = {
        "p0": [("fail", credit_extra(9, 10)), ("fail", credit_extra(8, 10))],
        "p1": [("fail", credit_extra(0, 10)), ("fail", {})],
        "p2": [("fail", credit_extra(1, 10)), ("pass", credit_extra(10, 10))],
        "p3": [("fail", credit_extra(2, 10)), ("invalid", {})],
    }
    for pid, judged in verdicts.items():
        for status, extra in judged:
            allocation.judged(pid, status, extra)
    assert allocation.stopped == {"p2"}
    assert allocation.credit("p0") == pytest.approx(1.7)
    assert allocation.credit("p3") == pytest.approx(0.2)
    # The prior is the beta-binomial fitted to every problem's verdicts so far.
    alpha, beta = fits.fit_beta_prior(np.array([2, 2, 2, 2]), np.array([0, 0, 1, 0]))
    assert allocation.chance("p0") == pytest.approx((alpha + 0.5 * 1.7) / (alpha + beta + 2))
    assert allocation.prior == pytest.approx((alpha, beta))
    assert allocation.chance("p0") > allocation.chance("p3") > allocation.chance("p1")
    nxt = [s.next_item() for _ in range(2)]
    assert [(i.prompt.problem_id, i.sample_index) for i in nxt if i] == [("p0", 2), ("p0", 3)]
    # Samples handed out but not yet judged count as failures.
    assert allocation.chance("p0") == pytest.approx((alpha + 0.5 * 1.7) / (alpha + beta + 4))
    allocation.judged("p0", "fail", credit_extra(9, 10))
    allocation.judged("p0", "pass", credit_extra(10, 10))
    assert allocation.stopped == {"p0", "p2"}
    nxt = [s.next_item() for _ in range(2)]
    assert [i.prompt.problem_id for i in nxt if i] == ["p3", "p3"]
    refit = fits.fit_beta_prior(np.array([4, 2, 2, 2]), np.array([1, 0, 1, 0]))
    assert allocation.prior == pytest.approx(refit)  # refitted on the new verdicts


def test_promising_reads_answer_disagreement_as_room_to_be_solved() -> None:
    spec = PolicySpec("promising", chunk=3, credit=1.0)
    s, _, allocation = scheduler(spec, 6, formats=dict.fromkeys(IDS, "arithmetic"))
    assert isinstance(allocation, Promising)
    for item in [s.next_item() for _ in range(12)]:
        assert item is not None
        pid, i = item.prompt.problem_id, item.sample_index
        text = {
            "p0": "The answer is 12",
            "p1": f"The answer is {i + 20}",
            "p2": "I cannot say",
            "p3": "The answer is 12" if i else "The answer is 3",
        }[pid]
        allocation.observe(record(pid, i, text))
        allocation.judged(pid, "fail", {})
    # p0 always agrees on one wrong answer: stuck. p1 spreads over three: 3 * (1 - 3/9).
    assert allocation.credit("p0") == 0.0
    assert allocation.credit("p1") == pytest.approx(2.0)
    assert allocation.credit("p2") == 0.0  # no answers at all
    assert allocation.credit("p3") == pytest.approx(3 * (1 - (1 / 9 + 4 / 9)))
    assert s.next_item().prompt.problem_id == "p1"  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", range(30))
def test_promising_never_exceeds_the_budget_nor_samples_a_solved_problem(seed: int) -> None:
    rng = random.Random(seed)
    budget = rng.randint(1, 9)
    spec = PolicySpec(
        "promising", cap=rng.choice([1.0, 1.5, 4.0]), chunk=rng.randint(1, 5), credit=rng.random()
    )
    fmt = rng.choice(["humaneval", "arithmetic"])
    done = {(pid, i) for pid in IDS for i in range(rng.randint(0, 3)) if rng.random() < 0.5}
    s, _, allocation = scheduler(spec, budget, done, dict.fromkeys(IDS, fmt))
    assert isinstance(allocation, Promising)
    rate = {pid: rng.choice([0.0, 0.05, 0.3, 0.9]) for pid in IDS}
    solved_at: dict[str, int] = {}  # problem -> items handed out when its pass was reported
    waiting: list[WorkItem] = []  # handed out, verdict not yet in (verification lags)
    handed: list[WorkItem] = []

    def deliver(how_many: int) -> None:
        for _ in range(min(how_many, len(waiting))):
            item = waiting.pop(rng.randrange(len(waiting)))
            pid = item.prompt.problem_id
            allocation.observe(record(pid, item.sample_index, f"The answer is {rng.randint(0, 3)}"))
            passed = rng.random() < rate[pid]
            allocation.judged(pid, "pass" if passed else "fail", credit_extra(rng.randint(0, 5), 5))
            if passed:
                solved_at.setdefault(pid, len(handed))

    while (item := s.next_item()) is not None:
        pid = item.prompt.problem_id
        assert pid not in solved_at, f"{pid} drew again after its pass"
        handed.append(item)
        waiting.append(item)
        deliver(rng.randint(0, 3))
    keys = [(i.prompt.problem_id, i.sample_index) for i in handed]
    assert len(set(keys)) == len(keys) and not set(keys) & done
    assert len(handed) + len(done) <= budget * len(IDS)
    cap = allocation.cap(budget)
    for pid in IDS:
        assert allocation.drawn(pid) <= max(cap, sum(1 for d in done if d[0] == pid))
    assert set(solved_at) <= allocation.stopped
