"""Continuous batching over llama.cpp: one shared prompt per problem, many sequences per step
(runs in the llama.cpp worker process, engine/backends/worker.py)."""

from __future__ import annotations

import codecs
import ctypes
import time

import numpy as np

from troop.engine.backends import backend_sampling
from troop.engine.backends.llamacpp import Context, Model, Sampler
from troop.engine.backends.sample_loop import BatchStats as BatchStats
from troop.engine.backends.sample_loop import Drawing, SampleSource, find_stop, sample_record
from troop.engine.events import SampleRecord
from troop.engine.work import PromptSpec, SamplingParams, WorkItem


class _Slot:
    """A sequence being decoded."""

    __slots__ = (
        "item",
        "seq",
        "sampler",
        "pos",
        "next_token",
        "tokens",
        "raw",
        "text",
        "decoder",
        "logprob",
        "started",
        "batch_idx",
        "finish",
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


class BatchedSampler(SampleSource):
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
            self._backend, self.sampler_note = backend_sampling.attach(ctx, params, self.parallel)
            if self._backend is not None:
                self.sampler_device = "backend"
        elif ctx.sampler_chains:  # a context an earlier backend sampler left chains on
            backend_sampling.detach(ctx)
        # Scratch for the per-step log-sum-exp: one row per slot, reused every step (host
        # sampling only: with backend sampling the full logits never reach the host).
        self._scratch = np.empty(
            (self.parallel if self._backend is None else 0, model.n_vocab), dtype=np.float32
        )
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
                drawing.stepped()
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
                seed=item.seed,
                temperature=item.temperature,
                top_k=p.top_k,
                top_p=p.top_p,
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
                slot.text = slot.text[: hit[0]]
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
        return sample_record(
            item,
            self.params,
            seed=item.seed,
            text=slot.text,
            tokens=tuple(slot.tokens),
            prompt_tokens=len(item.prompt.tokens),
            finish=slot.finish,
            started=slot.started,
            logprob=slot.logprob,
        )

    def _release(self, slot: _Slot) -> None:
        slot.sampler.close()
        self.ctx.seq_remove(slot.seq)
