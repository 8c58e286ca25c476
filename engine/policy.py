"""Budget policies: how a run spreads its N·P samples over P problems (fixed, until-solved,
until-consistent, promising)."""

from __future__ import annotations

import contextlib
import heapq
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from troop.engine.events import SampleRecord
from troop.engine.formats import ANSWER_FORMATS, final_answer
from troop.engine.storage.rows import StoredProblem
from troop.engine.storage.session import Session
from troop.errors import TroopError
from troop.verifiers.answers import normalize
from troop.verifiers.base import Status, Verdict, partial_credit

if TYPE_CHECKING:
    from troop.engine.verify import Verification

POLICIES = ("fixed", "until-solved", "until-consistent", "promising")
#: Policies that stop a problem at its first verified pass, so they need a verifier.
STOP_AT_PASS = ("until-solved", "promising")


@dataclass(frozen=True)
class PolicySpec:
    """A budget policy and its parameters, as asked for and as stored in the session."""

    name: str = "fixed"  # fixed, until-solved, until-consistent or promising
    cap: float = 4.0  # adaptive policies: a problem draws at most cap × N samples (N = --samples)
    chunk: int | None = None  # adaptive policies: samples handed to one problem before the
    # scheduler looks again, all served by one prompt evaluation; None: max(4, ceil(N / 8))
    threshold: float = 0.95  # until-consistent: P(leader is the true majority) that settles it
    min_votes: int = 3  # until-consistent: answers a problem needs before it may settle
    credit: float = 0.5  # promising: successes a failing sample counts as per unit of its
    # partial credit (share of tests passed; for answers, disagreement), in [0, 1]

    @property
    def adaptive(self) -> bool:
        """Whether how many samples a problem gets depends on its samples (not fixed)."""
        return self.name != "fixed"

    def check(self) -> None:
        """Refuse an unknown policy or out-of-range parameters."""
        if self.name not in POLICIES:
            raise TroopError(f"--policy must be one of {', '.join(POLICIES)}, not {self.name!r}")
        if not (math.isfinite(self.cap) and self.cap >= 1):
            raise TroopError(
                f"--policy-cap must be a number >= 1 (a multiple of --samples), got {self.cap}"
            )
        if self.chunk is not None and self.chunk < 1:
            raise TroopError(f"--policy-chunk must be a positive integer, got {self.chunk}")
        if not 0.5 < self.threshold < 1:
            raise TroopError(f"--consistency-threshold must be in (0.5, 1), got {self.threshold}")
        if self.min_votes < 1:
            raise TroopError(f"--consistency-min must be a positive integer, got {self.min_votes}")
        if not 0 <= self.credit <= 1:
            raise TroopError(f"--policy-credit must be in [0, 1], got {self.credit}")

    def describe(self) -> dict[str, Any]:
        """The policy as the session stores it: its name and the parameters it uses."""
        if self.name == "fixed":
            return {"name": "fixed"}
        out: dict[str, Any] = {"name": self.name, "cap": self.cap, "chunk": self.chunk}
        if self.name == "until-consistent":
            out |= {"threshold": self.threshold, "min_votes": self.min_votes}
        if self.name == "promising":
            out |= {"credit": self.credit}
        return out


def check_formats(spec: PolicySpec, formats: Iterable[str]) -> None:
    """until-consistent votes on final answers: refuse formats that have none (code)."""
    if spec.name != "until-consistent":
        return
    wrong = sorted(set(formats) - set(ANSWER_FORMATS))
    if wrong:
        raise TroopError(
            f"--policy until-consistent needs answer-style problems "
            f"({', '.join(ANSWER_FORMATS)}), not {', '.join(wrong)}",
            hint="use --policy until-solved (with a verifier) or fixed for code problems",
        )


def majority_confidence(v1: int, v2: int) -> float:
    """Adaptive-Consistency's Beta stopping statistic (Aggarwal et al. 2023): with v1 and v2
    votes for the two most common answers, the probability that the leader's share p1 of the
    two exceeds one half under a uniform prior, P(p1 > 1/2) for p1 ~ Beta(v1 + 1, v2 + 1),
    which is 1 - I_{1/2}(v1 + 1, v2 + 1) with I the regularised incomplete beta function."""
    from scipy.special import betainc  # SciPy only where a consistency rule is applied

    return float(1.0 - betainc(v1 + 1, v2 + 1, 0.5))


def top_two(votes: Counter[str]) -> tuple[int, int]:
    """Counts of the two most common answers (0 for a missing runner-up)."""
    common = votes.most_common(2) + [("", 0), ("", 0)]
    return common[0][1], common[1][1]


class Allocation:
    """Which problem draws next under an adaptive policy; thread-safe.

    Water-filling: the next chunk goes to the still-open problem with the fewest samples
    (stored or handed out), ties to the earlier problem, so the total N·P is spread evenly
    over the problems that still need samples; a stopped problem's share flows to the rest.
    A problem draws at most cap × N, and the run stops when N·P samples exist or no problem
    is open. The scheduler calls choose(); sampling and verification threads call observe()
    and solved().
    """

    def __init__(
        self, spec: PolicySpec, problem_ids: Sequence[str], stored: Mapping[str, int]
    ) -> None:
        self.spec = spec
        self._ids = list(problem_ids)
        self._position = {pid: k for k, pid in enumerate(self._ids)}
        self._have = [stored.get(pid, 0) for pid in self._ids]  # samples stored or handed out
        self._total = sum(self._have)
        self._stopped: set[int] = set()  # positions of solved or settled problems
        self._heap = [(h, k) for k, h in enumerate(self._have)]  # open problems, fewest first
        heapq.heapify(self._heap)
        self._parked: list[int] = []  # open problems at their cap; a raised budget reopens them
        self._current: int | None = None  # the problem whose chunk is being handed out
        self._left = 0  # samples left in its chunk
        self._budget = -1  # the budget (N) the parked list was computed for
        self._lock = threading.Lock()

    def cap(self, budget: int) -> int:
        """The most samples one problem may have at N = budget."""
        return max(budget, math.floor(self.spec.cap * budget))

    def chunk(self, budget: int) -> int:
        """Samples a problem gets per turn at N = budget. Each turn costs one evaluation of
        the problem's prompt (see bench/chunks.py), and a solved problem overshoots by up to a
        chunk; growing with N bounds both: about 8 evaluations per N samples, N / 8 extra."""
        if self.spec.chunk is not None:
            return self.spec.chunk
        return max(4, math.ceil(budget / 8))

    def remaining(self, budget: int) -> int:
        """An upper bound on the samples still to hand out (stops may end the run earlier)."""
        with self._lock:
            room = sum(
                max(0, self.cap(budget) - h)
                for k, h in enumerate(self._have)
                if k not in self._stopped
            )
            return max(0, min(budget * len(self._ids) - self._total, room))

    def choose(self, budget: int) -> int | None:
        """The position of the problem that draws the next sample, or None when the budget
        is spent or every problem is stopped or at its cap."""
        with self._lock:
            cap = self.cap(budget)
            if budget != self._budget:
                self._budget = budget
                for parked in self._parked:  # a raised budget raises the cap
                    heapq.heappush(self._heap, (self._have[parked], parked))
                self._parked.clear()
            if self._total >= budget * len(self._ids):
                return None
            current = self._current
            if current is not None:
                if self._left > 0 and current not in self._stopped and self._have[current] < cap:
                    return self._take(current)
                self._current = None
                if current not in self._stopped:
                    heapq.heappush(self._heap, (self._have[current], current))
            k = self._next_problem(cap, budget)
            if k is None:
                return None
            self._current, self._left = k, self.chunk(budget)
            return self._take(k)

    def _next_problem(self, cap: int, budget: int) -> int | None:
        """The open problem below its cap that gets the next chunk (called under the lock):
        here the one with the fewest samples."""
        while self._heap:
            _, k = heapq.heappop(self._heap)
            if k in self._stopped:
                continue
            if self._have[k] >= cap:
                self._parked.append(k)
                continue
            return k
        return None

    def _take(self, k: int) -> int:
        self._have[k] += 1
        self._total += 1
        self._left -= 1
        return k

    def stop(self, problem_id: str) -> None:
        """Draw nothing more for this problem (samples already handed out still finish)."""
        with self._lock:
            k = self._position.get(problem_id)
            if k is not None:
                self._stopped.add(k)

    @property
    def stopped(self) -> frozenset[str]:
        """Ids of the problems stopped so far."""
        with self._lock:
            return frozenset(self._ids[k] for k in self._stopped)

    def drawn(self, problem_id: str) -> int:
        """Samples the problem has: stored before the run plus handed out since."""
        with self._lock:
            return self._have[self._position[problem_id]]

    def observe(self, record: SampleRecord) -> None:
        """A sample was stored (called from the sampling thread)."""

    def solved(self, problem_id: str) -> None:
        """A sample of this problem passed its verifier (called from verification threads)."""

    def judged(self, problem_id: str, status: str, extra: Mapping[str, Any]) -> None:
        """A sample of this problem has a verdict (its status and the verifier's `extra`);
        a pass goes on to solved()."""
        if status == Status.PASS:
            self.solved(problem_id)

    def on_verdict(self, problem_id: str) -> Callable[[Future[Verdict]], None]:
        """A done-callback for a verification future that reports the verdict to judged()."""

        def done(future: Future[Verdict]) -> None:
            # A verifier's bug resurfaces in Verification.wait(); here it just is no verdict.
            if future.exception() is None:
                verdict = future.result()
                self.judged(problem_id, str(verdict.status), verdict.extra)

        return done


class UntilSolved(Allocation):
    """Stops a problem at its first verified pass; its unspent share goes to unsolved ones."""

    def solved(self, problem_id: str) -> None:
        self.stop(problem_id)


class UntilConsistent(Allocation):
    """Stops a problem once its majority answer is settled by Adaptive-Consistency's Beta rule:
    at least min_votes answers, and majority_confidence(v1, v2) >= threshold. Samples with no
    extractable final answer are not votes."""

    def __init__(
        self,
        spec: PolicySpec,
        problem_ids: Sequence[str],
        stored: Mapping[str, int],
        formats: Mapping[str, str],
    ) -> None:
        super().__init__(spec, problem_ids, stored)
        self._formats = dict(formats)
        self._votes: dict[str, Counter[str]] = {pid: Counter() for pid in problem_ids}
        self._vote_lock = threading.Lock()

    def observe(self, record: SampleRecord) -> None:
        answer = final_answer(record.text, self._formats[record.problem_id])
        if answer is None or not (key := normalize(answer)):
            return
        with self._vote_lock:
            votes = self._votes[record.problem_id]
            votes[key] += 1
            settled = (
                votes.total() >= self.spec.min_votes
                and majority_confidence(*top_two(votes)) >= self.spec.threshold
            )
        if settled:
            self.stop(record.problem_id)

    def votes(self, problem_id: str) -> Counter[str]:
        """A copy of the problem's answer counts so far."""
        with self._vote_lock:
            return Counter(self._votes[problem_id])


class Promising(UntilSolved):
    """Stops a problem at its first pass, and gives each next chunk to the open problem most
    likely to be solved by one more sample.

    A problem's success rate p is taken from the population prior Beta(alpha, beta), fitted
    by maximum likelihood to every problem's verdicts so far (the beta-binomial law of the
    fits; refitted as verdicts arrive), and updated with the problem's own f samples, all
    failures while it is open (samples still being judged count as failures: most will be).
    A failing sample's partial credit q in [0, 1] (share of its tests it passed; for answer
    sets, how much the answers disagree) counts as `credit` x q of a success, so
    P(next sample solves) = (alpha + credit * Q) / (alpha + beta + f), Q the sum of q. Every
    problem first gets one chunk, in work-list order, so none is judged on no samples.
    """

    #: Prior used before any problem is solved (the fit is refused): uniform on p.
    FLAT_PRIOR = (1.0, 1.0)

    def __init__(
        self,
        spec: PolicySpec,
        problem_ids: Sequence[str],
        stored: Mapping[str, int],
        formats: Mapping[str, str],
    ) -> None:
        super().__init__(spec, problem_ids, stored)
        size = len(self._ids)
        self._judged = np.zeros(size, dtype=np.int64)  # verdicts received, per problem
        self._passes = np.zeros(size, dtype=np.int64)  # passes among them
        self._tests_credit = np.zeros(size)  # sum of failing verdicts' share of tests passed
        self._answers = [Counter[str]() for _ in self._ids]  # answer-set problems' answers
        self._answer_style = [formats.get(pid) in ANSWER_FORMATS for pid in self._ids]
        self._formats = dict(formats)
        self._prior = self.FLAT_PRIOR
        self._fitted_on = 0  # verdicts the prior was last fitted on

    def judged(self, problem_id: str, status: str, extra: Mapping[str, Any]) -> None:
        k = self._position.get(problem_id)
        if k is not None:
            with self._lock:
                self._judged[k] += 1
                if status == Status.PASS:
                    self._passes[k] += 1
                else:
                    self._tests_credit[k] += partial_credit(extra) or 0.0
        super().judged(problem_id, status, extra)

    def observe(self, record: SampleRecord) -> None:
        k = self._position.get(record.problem_id)
        if k is None or not self._answer_style[k]:
            return
        answer = final_answer(record.text, self._formats[record.problem_id])
        with self._lock:
            # A sample with no final answer agrees with nothing and disagrees with nothing.
            if answer is not None and (key := normalize(answer)):
                self._answers[k][key] += 1

    @property
    def prior(self) -> tuple[float, float]:
        """The population prior (alpha, beta) the last choice used."""
        with self._lock:
            return self._prior

    def credit(self, problem_id: str) -> float:
        """Q: the summed partial credit of the problem's failing samples so far."""
        with self._lock:
            return self._credit(self._position[problem_id])

    def _credit(self, k: int) -> float:
        votes = self._answers[k]
        total = votes.total()
        if not total:
            return float(self._tests_credit[k])
        # Every answer of an open problem is wrong. Agreement on one wrong answer means the
        # model is stuck; answers spread over many values leave room for the right one. Each
        # answer's q is the share of the others that disagree with it: the sum is
        # total * (1 - sum of squared shares), Gini-Simpson diversity.
        shares = np.array(list(votes.values()), dtype=np.float64) / total
        return float(self._tests_credit[k] + total * (1.0 - float((shares**2).sum())))

    def chance(self, problem_id: str) -> float:
        """Estimated probability that the problem's next sample passes."""
        with self._lock:
            self._refit()
            return self._chance(self._position[problem_id])

    def _chance(self, k: int) -> float:
        alpha, beta = self._prior
        return (alpha + self.spec.credit * self._credit(k)) / (alpha + beta + self._have[k])

    def _refit(self) -> None:
        seen = int(self._judged.sum())
        if seen == self._fitted_on:
            return
        self._fitted_on = seen
        judged = self._judged > 0
        # No pass yet, or nothing but passes: the prior there is stays.
        from troop.engine.analytics import fits  # SciPy only where a prior is fitted

        with contextlib.suppress(fits.FitRefused):
            self._prior = fits.fit_beta_prior(self._judged[judged], self._passes[judged])

    def _next_problem(self, cap: int, budget: int) -> int | None:
        open_ = [k for k in range(len(self._ids)) if k not in self._stopped and self._have[k] < cap]
        if not open_:
            return None
        first = self.chunk(budget)
        unexplored = [k for k in open_ if self._have[k] < first]
        if unexplored:
            return min(unexplored, key=lambda k: (self._have[k], k))
        self._refit()
        # Highest chance first; ties to the problem with fewer samples, then the earlier one.
        return max(open_, key=lambda k: (self._chance(k), -self._have[k], -k))


def make_allocation(
    spec: PolicySpec,
    problem_ids: Sequence[str],
    done: Iterable[tuple[str, int]],
    formats: Mapping[str, str],
) -> Allocation | None:
    """The allocation a policy runs with (None for fixed: the scheduler's own order)."""
    stored = Counter(pid for pid, _ in done)
    if spec.name == "until-solved":
        return UntilSolved(spec, problem_ids, stored)
    if spec.name == "until-consistent":
        check_formats(spec, formats.values())
        return UntilConsistent(spec, problem_ids, stored, formats)
    if spec.name == "promising":
        return Promising(spec, problem_ids, stored, formats)
    return None


def begin(
    spec: PolicySpec,
    session: Session,
    problem_ids: Sequence[str],
    problems: Mapping[str, StoredProblem],
    verification: Verification | None,
) -> Allocation | None:
    """Check the policy against the run, record it in the session, and seed its allocation
    with what the session already holds (passes of the current verifier, stored answers).

    Resuming with another policy is allowed; once any run was adaptive the session stays
    coverage-only, since its per-problem sample counts depended on the samples' outcomes.
    """
    spec.check()
    formats = {pid: problems[pid].format for pid in problem_ids}
    if spec.name in STOP_AT_PASS and verification is None:
        raise TroopError(
            f"--policy {spec.name} needs a verifier to know when a problem is solved",
            hint="drop --verifier none, or use --policy fixed",
        )
    allocation = make_allocation(spec, problem_ids, session.done(), formats)
    if isinstance(allocation, UntilSolved) and verification is not None:
        verification.wait()  # samples an earlier run left unjudged: their passes count now
        verifier = verification.verifier
        verdicts = session.current_verdicts(verifier.name, verifier.version)
        for (pid, _), row in verdicts.items():
            allocation.judged(pid, row.status, row.extra)
    if isinstance(allocation, UntilConsistent | Promising):
        for record in session.samples():
            if record.problem_id in formats:
                allocation.observe(record)
    session.set_meta("policy", spec.describe())
    session.set_meta("coverage_only", bool(session.meta("coverage_only", False)) or spec.adaptive)
    return allocation
