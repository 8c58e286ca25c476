"""Budget policies: fixed, until-solved, until-consistent and promising allocation, the Beta
stopping rule, and real runs through the CLI that stop solved problems early and resume."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from concurrent.futures import Future
from itertools import pairwise
from math import comb
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

from tests.conftest import troop
from troop.engine import fits
from troop.engine.control import RunControl
from troop.engine.errors import TroopError
from troop.engine.events import Event, Recorder, SampleFinished, SampleRecord
from troop.engine.policy import (
    PolicySpec,
    Promising,
    UntilConsistent,
    UntilSolved,
    begin,
    check_formats,
    majority_confidence,
    make_allocation,
    top_two,
)
from troop.engine.run import RunSettings, execute, prepare
from troop.engine.scheduler import PromptSpec, SamplingParams, Scheduler, WorkItem
from troop.engine.session import Session
from troop.engine.verify import Verification
from troop.verifiers import registry
from troop.verifiers.base import Status, Verdict
from troop.verifiers.sandbox import Sandbox

IDS = [f"p{i}" for i in range(4)]
PROMPTS = [PromptSpec(pid, (1, 2, 3), ()) for pid in IDS]


def scheduler(
    spec: PolicySpec,
    budget: int,
    done: set[tuple[str, int]] | None = None,
    formats: dict[str, str] | None = None,
) -> tuple[Scheduler, RunControl, object]:
    done = done or set()
    allocation = make_allocation(spec, IDS, done, formats or dict.fromkeys(IDS, "arithmetic"))
    control = RunControl(budget)
    return Scheduler(PROMPTS, done, control, SamplingParams(), 0, allocation), control, allocation


def drain(s: Scheduler) -> list[WorkItem]:
    out = []
    while (item := s.next_item()) is not None:
        out.append(item)
    return out


def record(pid: str, index: int, text: str) -> SampleRecord:
    return SampleRecord(
        pid, index, 0, 0.8, 40, 0.95, 0.0, 32, text, (1,), 3, "eos", None, 0.1, -1.0
    )


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


# -- promising ---------------------------------------------------------------------------------


def credit_extra(passed: int, run: int) -> dict[str, int]:
    return {"tests_passed": passed, "tests_run": run}


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


# -- until-consistent --------------------------------------------------------------------------


def beta_tail(v1: int, v2: int) -> float:
    """P(X > 1/2) for X ~ Beta(v1+1, v2+1), for whole counts: P(Binomial(v1+v2+1, 1/2) <= v1)."""
    n = v1 + v2 + 1
    return sum(comb(n, j) for j in range(v1 + 1)) / 2**n


def test_beta_stopping_rule_against_hand_computed_values() -> None:
    assert majority_confidence(0, 0) == pytest.approx(0.5)
    assert majority_confidence(5, 5) == pytest.approx(0.5)
    assert majority_confidence(1, 0) == pytest.approx(0.75)  # 1 - 0.5^2
    assert majority_confidence(3, 0) == pytest.approx(0.9375)  # 1 - 0.5^4: not yet at 0.95
    assert majority_confidence(4, 0) == pytest.approx(0.96875)  # 1 - 0.5^5: settled
    assert majority_confidence(3, 1) == pytest.approx(26 / 32)
    assert majority_confidence(6, 2) == pytest.approx(466 / 512)
    assert majority_confidence(6, 1) == pytest.approx(1 - 9 / 256)


@pytest.mark.parametrize("v1", range(0, 30, 3))
@pytest.mark.parametrize("v2", range(0, 12, 2))
def test_beta_stopping_rule_matches_scipy_stats_and_the_integral(v1: int, v2: int) -> None:
    expected = stats.beta(v1 + 1, v2 + 1).sf(0.5)
    assert majority_confidence(v1, v2) == pytest.approx(expected, abs=1e-12)
    assert majority_confidence(v1, v2) == pytest.approx(beta_tail(v1, v2), abs=1e-12)
    density = stats.beta(v1 + 1, v2 + 1).pdf
    assert majority_confidence(v1, v2) == pytest.approx(
        integrate.quad(density, 0.5, 1)[0], abs=1e-8
    )


def test_top_two() -> None:
    assert top_two(Counter()) == (0, 0)
    assert top_two(Counter(a=3)) == (3, 0)
    assert top_two(Counter(a=1, b=4, c=2)) == (4, 2)


def test_until_consistent_stops_when_the_majority_is_settled() -> None:
    spec = PolicySpec("until-consistent")
    allocation = make_allocation(spec, IDS, set(), dict.fromkeys(IDS, "arithmetic"))
    assert isinstance(allocation, UntilConsistent)
    # p0: four agreeing answers settle it (0.969 >= 0.95); three do not (0.9375).
    for i in range(3):
        allocation.observe(record("p0", i, "So 4 + 9 = 13. The answer is 13."))
    assert "p0" not in allocation.stopped
    allocation.observe(record("p0", 3, "The answer is 13.00"))  # normalised: the same vote
    assert allocation.stopped == {"p0"}
    # p1: a dissenting vote and samples with no answer delay it: (5, 1) is 0.9375, (6, 1) 0.965.
    texts = ["The answer is 7", "I don't know", "The answer is 8"] + ["The answer is 7"] * 4
    for i, text in enumerate(texts):
        allocation.observe(record("p1", i, text))
    assert allocation.votes("p1") == {"7": 5, "8": 1}
    assert "p1" not in allocation.stopped
    allocation.observe(record("p1", 7, "The answer is 7"))
    assert "p1" in allocation.stopped


def test_min_votes_holds_a_low_threshold_back() -> None:
    spec = PolicySpec("until-consistent", threshold=0.7, min_votes=3)
    allocation = make_allocation(spec, IDS, set(), dict.fromkeys(IDS, "gsm8k"))
    assert allocation is not None
    allocation.observe(record("p2", 0, "#### 12"))  # 0.75 >= 0.7 already, but one vote
    allocation.observe(record("p2", 1, "#### 12"))
    assert not allocation.stopped
    allocation.observe(record("p2", 2, "#### 12"))
    assert allocation.stopped == {"p2"}


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
            begin(PolicySpec("until-solved"), session, ["p0"], {"p0": {"format": "gsm8k"}}, None)
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


# -- real runs ---------------------------------------------------------------------------------

# arithmetic:4:3 holds "What is 4 + 9?", which the default model answers right in most samples,
# and harder ones it rarely does; small budgets keep these runs to seconds.
RESUME = ["run", "--headless", "--parallel", "8", "--max-tokens", "32"]
RUN = [*RESUME, "--problems", "arithmetic:4:3"]


def counts(path: Path, run_id: int | None = None) -> Counter[str]:
    with Session.open(path) as s:
        sql = "SELECT problem_id FROM samples" + (" WHERE run_id = ?" if run_id else "")
        return Counter(r[0] for r in s.conn.execute(sql, (run_id,) if run_id else ()))


def passes(path: Path) -> dict[str, int]:
    """Each solved problem's number of passing samples."""
    with Session.open(path) as s:
        rows = s.conn.execute("SELECT problem_id FROM verdicts WHERE status = 'pass'")
        return dict(Counter(r[0] for r in rows))


@pytest.mark.model
def test_until_solved_run_draws_fewer_samples_for_solved_problems(tmp_path: Path) -> None:
    n, path = 12, tmp_path / "s.sqlite"
    out = troop(*RUN, "--samples", str(n), "--policy", "until-solved", "--session", str(path))
    assert out.returncode == 0, out.stderr
    assert "resume with" not in out.stderr  # completing below N*P is completion here
    per = counts(path)
    solved = passes(path)
    assert solved, "the default model solves 4 + 9 in most samples"
    assert sum(per.values()) <= n * 4
    for pid in solved:
        assert per[pid] < n  # fixed would have drawn n
    unsolved = [per[pid] for pid in per if pid not in solved]
    assert max(unsolved) > n  # the freed budget went to them
    show = json.loads(troop("show", str(path)).stdout)
    assert show["coverage_only"] is True
    assert show["policy"] == {"name": "until-solved", "cap": 4.0, "chunk": None}
    with Session.open(path) as s:
        (settings,) = s.conn.execute("SELECT settings FROM runs").fetchone()
    assert json.loads(settings)["policy"]["name"] == "until-solved"


@pytest.mark.model
def test_promising_run_stops_at_the_first_pass_within_the_budget(tmp_path: Path) -> None:
    n, path = 12, tmp_path / "s.sqlite"
    out = troop(*RUN, "--samples", str(n), "--policy", "promising", "--session", str(path))
    assert out.returncode == 0, out.stderr
    per = counts(path)
    solved = passes(path)
    assert solved, "the default model solves 4 + 9 in most samples"
    assert sum(per.values()) <= n * 4
    with Session.open(path) as s:
        stored = s.conn.execute("SELECT problem_id, created_at FROM samples").fetchall()
        known = dict(
            s.conn.execute(
                "SELECT problem_id, MIN(created_at) FROM verdicts WHERE status = 'pass'"
                " GROUP BY problem_id"
            ).fetchall()
        )
        assert s.meta("coverage_only") is True
        assert s.meta("policy") == {"name": "promising", "cap": 4.0, "chunk": None, "credit": 0.5}
    # Once a problem's first pass is known, only samples already being decoded (at most the 8
    # slots) follow it.
    for pid, at in known.items():
        assert sum(1 for p, t in stored if p == pid and t > at) <= 8


@pytest.mark.model
def test_until_solved_resumes_after_a_cancel_and_then_with_fixed(tmp_path: Path) -> None:
    n, path = 8, tmp_path / "s.sqlite"
    settings = RunSettings(
        session=path,
        problems="arithmetic:4:3",
        samples=n,
        parallel=8,
        max_tokens=32,
        policy=PolicySpec("until-solved"),
    )
    control = RunControl(n)

    class CancelAfterTen(Recorder):
        def on_event(self, event: Event) -> None:
            super().on_event(event)
            if isinstance(event, SampleFinished) and len(self.of(SampleFinished)) == 10:
                control.cancel()

    prep = prepare(settings)
    with Sandbox(workers=1) as sandbox:
        verification = Verification(
            prep.session, registry.for_format("arithmetic"), sandbox, Recorder()
        )
        try:
            first = execute(prep, CancelAfterTen(), control, verification)
        finally:
            verification.close(wait=True)  # every stored sample judged
            prep.close()
    assert first.status == "cancelled" and first.stored < n * 4
    solved_before = set(passes(path))
    # Resume through the CLI: stored passes stop their problems at once; it completes.
    out = troop(*RESUME, "--policy", "until-solved", "--session", str(path))
    assert out.returncode == 0, out.stderr
    assert "run completed" in out.stdout
    second = counts(path, run_id=2)
    assert not solved_before & set(second)  # nothing more drawn for problems already solved
    assert sum(counts(path).values()) <= n * 4
    # Another policy is allowed; the session stays coverage-only. fixed tops every problem up
    # to N, the early-stopped ones included.
    out = troop(*RESUME, "--session", str(path))
    assert out.returncode == 0, out.stderr
    assert all(c >= n for c in counts(path).values())
    with Session.open(path) as s:
        assert s.meta("coverage_only") is True
        assert s.meta("policy") == {"name": "fixed"}
        policies = [
            json.loads(r[0])["policy"]["name"]
            for r in s.conn.execute("SELECT settings FROM runs ORDER BY run_id")
        ]
    assert policies == ["until-solved", "until-solved", "fixed"]


@pytest.mark.model
def test_until_consistent_run_stops_settled_problems(tmp_path: Path) -> None:
    n, path = 12, tmp_path / "s.sqlite"
    out = troop(
        *RUN,
        "--samples",
        str(n),
        "--policy",
        "until-consistent",
        "--verifier",
        "none",
        "--session",
        str(path),
    )
    assert out.returncode == 0, out.stderr
    per = counts(path)
    assert sum(per.values()) <= n * 4
    # Replay the stored samples in the order they were stored: every problem that got fewer
    # than N samples was settled by the Beta rule, and after that drew only the samples
    # already in flight (at most the 8 slots).
    replay = make_allocation(
        PolicySpec("until-consistent"), sorted(per), set(), dict.fromkeys(per, "arithmetic")
    )
    assert replay is not None
    after: Counter[str] = Counter()
    with Session.open(path) as s:
        rows = s.conn.execute("SELECT problem_id, sample_index, text FROM samples ORDER BY rowid")
        for pid, index, text in rows.fetchall():
            if pid in replay.stopped:
                after[pid] += 1
            replay.observe(record(pid, index, text))
    short = [pid for pid, c in per.items() if c < n]
    assert short, "4 + 9 = 13 settles within a few samples"
    for pid in short:
        assert pid in replay.stopped
        assert after[pid] <= 8
