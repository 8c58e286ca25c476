"""Sampling inside llama.cpp's decode graph: each slot's chain attached to its sequence."""

# With host sampling every step copies each slot's full-vocabulary logits from the device and
# samples them on the CPU; with backend sampling the chain (top-k, top-p, min-p, temperature,
# seeded draw) runs where the model runs and only the chosen token, with the probabilities of
# the candidates it was drawn from, comes back.

from __future__ import annotations

import ctypes
import math
from typing import TYPE_CHECKING, Any

import llama_cpp as lc
import numpy as np

from troop.engine.backends.llamacpp import Context, build_chain

if TYPE_CHECKING:
    from troop.engine.work import SamplingParams


class AttachedChain:
    """A slot's chain, attached to its sequence: the decode has already drawn the token."""

    __slots__ = ("ptr",)

    def __init__(self, ptr: Any) -> None:
        self.ptr = ptr

    def sample(self, ctx: Context, idx: int) -> int:
        # Only the draw has state, and with one output per sequence (Context) it advances
        # inside the decode: the token is read, not accepted (llama_sampler_sample would also
        # log a debug line per token through troop's Python log callback).
        return int(lc.llama_get_sampled_token_ith(ctx.ptr, idx))

    def close(self) -> None:
        """Nothing: the chain stays attached, and the slot's next sample reseeds it."""


class BackendChains:
    """One chain per slot sequence, attached to a context for all its samples.

    Attaching a chain makes llama.cpp re-plan its compute graphs at the next decode, so a new
    sample at the same temperature keeps the chain and only reseeds its draw (llama.cpp's
    state copy); a new temperature attaches a new chain."""

    def __init__(self, ctx: Context, params: SamplingParams, n_slots: int) -> None:
        self.ctx = ctx
        self.params = params
        self.n_vocab = ctx.model.n_vocab
        # This step's candidates and probabilities (read_step), one row per output.
        self._ids: np.ndarray | None = None
        self._probs: np.ndarray | None = None
        self._temps: dict[int, float] = {}  # seq -> temperature of its attached chain
        self._chains: dict[int, AttachedChain] = {}
        first = params.temperatures[0]
        for seq in range(n_slots):
            self._attach(seq, 0, first)

    def _attach(self, seq: int, seed: int, temperature: float) -> AttachedChain:
        p = self.params
        # ggml's top-k asserts k <= n_vocab (aborting the process); the host's clamps it.
        ptr = build_chain(
            seed=seed,
            temperature=temperature,
            top_k=min(p.top_k, self.n_vocab),
            top_p=p.top_p,
            min_p=p.min_p,
        )
        # The context owns attached chains: it frees them after llama.cpp is done with them.
        old = self.ctx.sampler_chains.get(seq)
        lc.llama_set_sampler(self.ctx.ptr, seq, ptr)
        self.ctx.sampler_chains[seq] = ptr
        if old is not None:
            lc.llama_sampler_free(old)
        chain = self._chains[seq] = AttachedChain(ptr)
        self._temps[seq] = temperature
        return chain

    def unsupported(self) -> list[str]:
        """Samplers of the chains that llama.cpp could not put on the backend (it prefixes an
        initialised sampler's name with "+" when the backend runs it, "-" when not)."""
        missing: list[str] = []
        for chain in self._chains.values():
            for i in range(int(lc.llama_sampler_chain_n(chain.ptr))):
                name = lc.llama_sampler_name(lc.llama_sampler_chain_get(chain.ptr, i)).decode()
                if not name.startswith("+") and name.lstrip("+-") not in missing:
                    missing.append(name.lstrip("+-"))
        return missing

    def start(self, seq: int, seed: int, temperature: float) -> AttachedChain:
        """The chain for a new sample on `seq`, drawing with `seed` from its first token."""
        if self._temps.get(seq) != temperature:
            return self._attach(seq, seed, temperature)
        chain = self._chains[seq]
        if temperature > 0:
            # Only the draw holds state: copy a fresh draw's (seeded) state into the attached
            # one, which keeps its place in the compute graph.
            fresh = lc.llama_sampler_init_dist(seed & 0xFFFFFFFF)
            dist = lc.llama_sampler_chain_get(chain.ptr, lc.llama_sampler_chain_n(chain.ptr) - 1)
            lc.llama_sampler_copy(fresh, dist)
            lc.llama_sampler_free(fresh)
        return chain

    def read_step(self, n: int) -> None:
        """Views, without copies, of the last decode's candidates and their probabilities.

        llama.cpp keeps them in two host buffers with one vocabulary-wide row per output, so
        one pointer per buffer serves every slot of the step (a call per slot costs more than
        the lookup)."""
        self._ids = self._probs = None
        if self.params.top_k <= 0 or n == 0:
            return  # candidates are then the whole (sorted) vocabulary: per-row lookups
        ctx, n_vocab = self.ctx.ptr, self.n_vocab
        for row in range(n):  # the first row with probabilities (a greedy row has none)
            probs = lc.llama_get_sampled_probs_ith(ctx, row)
            if probs:
                ids = lc.llama_get_sampled_candidates_ith(ctx, row)
                p0 = ctypes.cast(probs, ctypes.c_void_p).value or 0
                i0 = ctypes.cast(ids, ctypes.c_void_p).value or 0
                stride = n_vocab * 4  # bytes per row, float32 and int32 alike
                self._probs = np.ctypeslib.as_array(
                    (ctypes.c_float * (n * n_vocab)).from_address(p0 - row * stride)
                ).reshape(n, n_vocab)
                self._ids = np.ctypeslib.as_array(
                    (ctypes.c_int32 * (n * n_vocab)).from_address(i0 - row * stride)
                ).reshape(n, n_vocab)
                return

    def logprob(self, idx: int, token: int, temperature: float) -> float:
        """log p(token) under the distribution the graph drew it from: the candidates left by
        top-k, top-p and min-p, at the sample's temperature; 0.0 for a greedy pick."""
        if temperature <= 0:
            return 0.0
        if self._ids is not None and self._probs is not None:
            k = min(self.params.top_k, self.n_vocab)
            j = int((self._ids[idx, :k] == token).argmax())
            p = float(self._probs[idx, j]) if self._ids[idx, j] == token else 0.0
            return math.log(p) if p > 0 else -math.inf
        return self._logprob_row(idx, token)

    def _logprob_row(self, idx: int, token: int) -> float:
        ctx = self.ctx.ptr
        n = int(lc.llama_get_sampled_probs_count_ith(ctx, idx))
        if n == 0:
            return 0.0
        probs = np.ctypeslib.as_array(
            ctypes.cast(lc.llama_get_sampled_probs_ith(ctx, idx), ctypes.POINTER(ctypes.c_float)),
            shape=(n,),
        )
        cands = lc.llama_get_sampled_candidates_ith(ctx, idx)
        ids = np.ctypeslib.as_array(ctypes.cast(cands, ctypes.POINTER(ctypes.c_int32)), shape=(n,))
        hit = np.flatnonzero(ids == token)
        p = float(probs[hit[0]]) if len(hit) else 0.0
        return math.log(p) if p > 0 else -math.inf


def detach(ctx: Context) -> None:
    """Take every chain off the context, so it hands the host full logits again."""
    for seq, ptr in list(ctx.sampler_chains.items()):
        lc.llama_set_sampler(ctx.ptr, seq, None)
        lc.llama_sampler_free(ptr)
        del ctx.sampler_chains[seq]


def attach(ctx: Context, params: SamplingParams, n_slots: int) -> tuple[BackendChains | None, str]:
    """Chains on the backend for every slot, or None and why the host samples instead."""
    chains = BackendChains(ctx, params, n_slots)
    missing = chains.unsupported()
    if missing:
        detach(ctx)
        return None, f"fell back to host: {', '.join(missing)} cannot run on the backend"
    return chains, "every sampler runs on the backend"
