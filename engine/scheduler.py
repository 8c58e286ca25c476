"""The Scheduler: hands out the samples a run still needs, problem by problem or as an
adaptive budget policy picks (no llama.cpp here: the front end schedules, the llama.cpp worker
decodes)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from troop.engine.control import RunControl
from troop.engine.work import PromptSpec, SamplingParams, WorkItem, sample_seed

if TYPE_CHECKING:
    from troop.engine.policy import Allocation


class Scheduler:
    """Hands out the missing (problem, index) pairs below the live budget, problem by problem
    so one prompt evaluation serves as many samples as possible; under an adaptive budget
    policy (engine/policy.py) the policy picks the problem, a chunk at a time."""

    def __init__(
        self,
        prompts: Sequence[PromptSpec],
        done: set[tuple[str, int]],
        control: RunControl,
        params: SamplingParams,
        session_seed: int,
        policy: Allocation | None = None,
    ) -> None:
        self._prompts = list(prompts)
        # An adaptive budget policy picks the problem (chunk by chunk); None: fixed, every
        # problem up to the budget in order.
        self._policy = policy
        self._done = done
        self._control = control
        self._params = params
        self._seed = session_seed
        self._next = [0] * len(self._prompts)  # next index to consider, per problem
        self._cursor = 0  # first problem that may still have work
        self._seen_budget: int = control.budget
        self._lock = threading.Lock()

    def remaining(self) -> int:
        """Samples still to hand out under the current budget."""
        budget = self._control.budget
        if self._policy is not None:
            left: int = self._policy.remaining(budget)
            return left
        with self._lock:
            total = 0
            for p, start in zip(self._prompts, self._next, strict=True):
                total += sum(1 for i in range(start, budget) if (p.problem_id, i) not in self._done)
            return total

    @property
    def budget_seen(self) -> int:
        """The budget the last next_item() worked to (a later raise is not yet seen)."""
        with self._lock:
            return self._seen_budget

    def next_item(self) -> WorkItem | None:
        with self._lock:
            budget = self._control.budget
            if budget != self._seen_budget:
                self._seen_budget = budget
                self._cursor = 0  # a raised budget reopens problems already finished
            if self._policy is not None:
                return self._policy_item(self._policy, budget)
            # Problems added mid-run (the TUI) join the end of the work list; an adaptive
            # policy's allocation is fixed per run, so there they wait for the next run.
            for prompt in self._control.take_prompts():
                if all(p.problem_id != prompt.problem_id for p in self._prompts):
                    self._prompts.append(prompt)
                    self._next.append(0)
            while self._cursor < len(self._prompts):
                prompt = self._prompts[self._cursor]
                i = self._next[self._cursor]
                while i < budget and (prompt.problem_id, i) in self._done:
                    i += 1
                if i < budget:
                    self._next[self._cursor] = i + 1
                    return self._item(prompt, i)
                self._next[self._cursor] = i
                self._cursor += 1
            return None

    def _policy_item(self, policy: Allocation, budget: int) -> WorkItem | None:
        """The policy's problem, at its lowest index not yet stored or handed out."""
        k = policy.choose(budget)
        if k is None:
            return None
        prompt = self._prompts[k]
        i = self._next[k]
        while (prompt.problem_id, i) in self._done:
            i += 1
        self._next[k] = i + 1
        return self._item(prompt, i)

    def _item(self, prompt: PromptSpec, i: int) -> WorkItem:
        # A temperature changed mid-run applies to samples not yet started.
        temps = self._control.temperatures or self._params.temperatures
        return WorkItem(
            prompt=prompt,
            sample_index=i,
            seed=sample_seed(self._seed, prompt.problem_id, i),
            temperature=temps[i % len(temps)],
        )
