"""Continuous batching over llama.cpp: one shared prompt per problem, many sequences per step."""

from __future__ import annotations

import codecs
import ctypes
import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from troop.engine import backend_sampling
from troop.engine.control import RunControl
from troop.engine.events import SampleRecord
from troop.engine.llamacpp import Context, Model, Sampler
from troop.engine.sample_loop import BatchStats as BatchStats
from troop.engine.sample_loop import Drawing, SampleSource, find_stop, sample_record

if TYPE_CHECKING:
    from troop.engine.policy import Allocation


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings shared by every sample of a session."""

    temperatures: tuple[float, ...] = (0.8,)  # cycled by sample index: i % len(temperatures)
    top_k: int = 40  # applied first; 0 disables it (slow: top-p then sorts the whole vocabulary)
    top_p: float = 0.95  # nucleus mass kept; 1.0 disables it
    min_p: float = 0.0  # min-p cut relative to the most likely token; 0.0 disables it
    max_tokens: int = 256  # completion budget per sample, tokens
    ignore_eos: bool = False  # benchmarks: an end-of-generation token does not end the
    # sample, so every sample is exactly max_tokens long (as llama-batched-bench's are)


@dataclass(frozen=True)
class PromptSpec:
    """A problem's prompt, tokenized, and the strings that end its samples."""

    problem_id: str  # the problem it belongs to
    tokens: tuple[int, ...]  # the prompt, tokens (at least one)
    stop: tuple[str, ...]  # stop strings; the completion is cut before the first match


@dataclass(frozen=True)
class WorkItem:
    """One sample to draw."""

    prompt: PromptSpec  # what it continues
    sample_index: int  # 0-based index among the problem's samples
    seed: int  # its sampler seed
    temperature: float  # its temperature


def sample_seed(session_seed: int, problem_id: str, sample_index: int) -> int:
    """A 32-bit seed that depends only on (session seed, problem, index), so a resumed or
    re-ordered run draws each sample with the same seed."""
    digest = hashlib.sha256(f"{session_seed}\x00{problem_id}\x00{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


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
                total += sum(
                    1 for i in range(start, budget) if (p.problem_id, i) not in self._done
                )
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


class _Slot:
    """A sequence being decoded."""

    __slots__ = (
        "item", "seq", "sampler", "pos", "next_token", "tokens", "raw", "text", "decoder",
        "logprob", "started", "batch_idx", "finish",
    )

    def __init__(
        self, item: WorkItem, seq: int, sampler: Sampler | backend_sampling.AttachedChain
    ) -> None:
        self.item = item
        self.seq = seq  # llama.cpp sequence id (= slot number)
        self.sampler = sampler
        # The holder sequence has all prompt tokens but the last; each slot decodes that last
        # token itself, so every slot contributes one logits row per step from the start.
        self.pos = len(item.prompt.tokens) - 1
        self.next_token = item.prompt.tokens[-1]
        self.tokens: list[int] = []
        self.text = ""  # decoded so far
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.logprob = 0.0
        self.started = time.perf_counter()
        self.batch_idx = -1
        self.finish: tuple[str, str | None] = ("", None)  # (finish reason, matched stop string)


# mypy sees troop.engine.* imports as Any (the package is mapped from engine/).
class BatchedSampler(SampleSource):  # type: ignore[misc]
    """Draws samples with `parallel` slots decoding together, refilling a slot the moment its
    sample ends (continuous batching), until the work source is empty or the run is stopped."""

    def __init__(
        self,
        model: Model,
        ctx: Context,
        params: SamplingParams,
        *,
        logprobs: bool = True,
        sampler_device: str = "host",
    ) -> None:
        self.model = model
        self.ctx = ctx
        self.params = params
        self.parallel = ctx.plan.n_seq - 1
        self.holder = self.parallel  # the sequence that keeps the current shared prompt
        self.logprobs = logprobs
        # Where the chains run ("host" or "backend") and why; a backend that cannot run every
        # sampler of the chain falls back to the host.
        self.sampler_device, self.sampler_note = "host", "asked for"
        self._backend: backend_sampling.BackendChains | None = None
        if sampler_device == "backend":
            self._backend, self.sampler_note = backend_sampling.attach(ctx, params,
                                                                       self.parallel)
            if self._backend is not None:
                self.sampler_device = "backend"
        elif ctx.sampler_chains:  # a context an earlier backend sampler left chains on
            backend_sampling.detach(ctx)
        # Scratch for the per-step log-sum-exp: one row per slot, reused every step (host
        # sampling only: with backend sampling the full logits never reach the host).
        self._scratch = np.empty((self.parallel if self._backend is None else 0,
                                  model.n_vocab), dtype=np.float32)
        self._lse = np.zeros(self.parallel, dtype=np.float64)
        self._logits: np.ndarray | None = None
        self._eog_cache: dict[int, bool] = {}
        # Token bytes by id: a dict lookup per slot per step instead of a call into llama.cpp.
        self._pieces: dict[int, bytes] = {}

    def _draw(self, drawing: Drawing) -> None:
        scheduler, control, stats = drawing.scheduler, drawing.control, drawing.stats
        ctx = self.ctx
        slots: list[_Slot | None] = [None] * self.parallel
        holder_problem: str | None = None
        exhausted = False
        exhausted_at = 0  # the budget when the scheduler ran dry
        try:
            while True:
                control.wait_while_paused()
                if control.cancelled:
                    break
                # Only a raised budget can refill a dry scheduler; rescanning the work list every
                # step while the last slots drain would cost O(problems x budget) per step.
                if exhausted and control.budget != exhausted_at:
                    exhausted = False
                for s in range(self.parallel):
                    if slots[s] is not None or exhausted:
                        continue
                    item = scheduler.next_item()
                    if item is None:
                        exhausted = True
                        exhausted_at = scheduler.budget_seen
                        break
                    if item.prompt.problem_id != holder_problem:
                        self._evaluate_prompt(item.prompt, drawing)
                        holder_problem = item.prompt.problem_id
                    slots[s] = self._start(item, s, drawing)
                live = [slot for slot in slots if slot is not None]
                if not live:
                    break
                ctx.clear_batch()
                for slot in live:
                    slot.batch_idx = ctx.add(slot.next_token, slot.pos, slot.seq, True)
                ctx.decode()
                stats.steps += 1
                if self.logprobs:
                    self._normalizers(len(live))
                for slot in live:
                    if self._advance(slot, drawing):
                        drawing.finished(slot.seq, self._record(slot))
                        slots[slot.seq] = None
                        self._release(slot)
        finally:
            for leftover in slots:
                if leftover is not None:
                    self._release(leftover)

    def _evaluate_prompt(self, prompt: PromptSpec, drawing: Drawing) -> None:
        t0 = time.perf_counter()
        self.ctx.seq_remove(self.holder)
        self.ctx.decode_prompt(list(prompt.tokens[:-1]), self.holder)
        drawing.prompt_evaluated(prompt.problem_id, len(prompt.tokens), t0)

    def _start(self, item: WorkItem, s: int, drawing: Drawing) -> _Slot:
        p = self.params
        sampler: Sampler | backend_sampling.AttachedChain
        if self._backend is not None:
            sampler = self._backend.start(s, item.seed, item.temperature)
        else:
            sampler = Sampler(
                seed=item.seed, temperature=item.temperature, top_k=p.top_k, top_p=p.top_p,
                min_p=p.min_p,
            )
        if len(item.prompt.tokens) > 1:
            self.ctx.seq_copy(self.holder, s)
        drawing.started(s, item, item.seed)
        return _Slot(item, s, sampler)

    def _is_eog(self, token: int) -> bool:
        hit = self._eog_cache.get(token)
        if hit is None:
            hit = self._eog_cache[token] = self.model.is_eog(token)
        return hit

    def _advance(self, slot: _Slot, drawing: Drawing) -> bool:
        """Draw the slot's next token; True when its sample is finished."""
        token = slot.sampler.sample(self.ctx, slot.batch_idx)
        if self._logits is not None:
            row = slot.batch_idx
            slot.logprob += float(self._logits[row, token]) - float(self._lse[row])
        elif self._backend is not None and self.logprobs:
            slot.logprob += self._backend.logprob(slot.batch_idx, token, slot.item.temperature)
        slot.pos += 1
        item = slot.item
        if self._is_eog(token) and not self.params.ignore_eos:
            return self._done(slot, "eos", None)
        slot.tokens.append(token)
        slot.next_token = token
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self.model.piece(token)
        delta = slot.decoder.decode(piece)
        if delta:
            before = len(slot.text)
            slot.text += delta
            hit = find_stop(slot.text, before, item.prompt.stop)
            if hit is not None:
                slot.text = slot.text[:hit[0]]
                return self._done(slot, "stop", hit[1])
        drawing.decoded(slot.seq, item, delta, len(slot.tokens))
        if len(slot.tokens) >= self.params.max_tokens:
            return self._done(slot, "length", None)
        return False

    @staticmethod
    def _done(slot: _Slot, reason: str, stop: str | None) -> bool:
        if reason != "stop":  # flush a dangling partial character
            slot.text += slot.decoder.decode(b"", final=True)
        slot.finish = (reason, stop)
        return True

    def _normalizers(self, n: int) -> None:
        """log-sum-exp of every output row of the last decode, in one vectorised pass.

        Each slot added exactly one token with logits, so output row i is batch index i.
        With backend sampling there are no host logits: the draw's own probability is used.
        """
        if self._backend is not None:
            self._backend.read_step(n)
            return
        ptr = ctypes.cast(self.ctx.all_logits(), ctypes.POINTER(ctypes.c_float))
        logits = np.ctypeslib.as_array(ptr, shape=(n, self.model.n_vocab))
        top = logits.max(axis=1)
        buf = self._scratch[:n]
        np.subtract(logits, top[:, None], out=buf)
        np.exp(buf, out=buf)
        self._lse[:n] = top + np.log(buf.sum(axis=1, dtype=np.float64))
        self._logits = logits

    def _record(self, slot: _Slot) -> SampleRecord:
        item = slot.item
        return sample_record(item, self.params, seed=item.seed, text=slot.text,
                             tokens=tuple(slot.tokens), prompt_tokens=len(item.prompt.tokens),
                             finish=slot.finish, started=slot.started, logprob=slot.logprob)

    def _release(self, slot: _Slot) -> None:
        slot.sampler.close()
        self.ctx.seq_remove(slot.seq)
