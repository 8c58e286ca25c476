"""The Python share of a decode step: how long troop's own per-slot work takes next to llama_decode.

At hundreds of slots a GPU step of a small model takes a few milliseconds, so the bookkeeping
between two decodes (drawing each slot's token, detokenizing, stop strings, events, the
log-probability) must stay small beside it. This runs BatchedSampler at P slots on a model (a
tiny synthetic one stands in for a fast GPU step on a CPU) and splits each step's wall time
into llama_decode and everything else.

    python bench/step_share.py --model synthetic-tiny-f16.gguf --parallel 256 --tokens 64
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

from troop.engine.backends import llamacpp
from troop.engine.backends.sample_loop import BatchStats
from troop.engine.backends.sampler import BatchedSampler
from troop.engine.control import RunControl
from troop.engine.events import Event, SampleRecord
from troop.engine.model_facts import ContextPlan, plan_context
from troop.engine.scheduler import Scheduler
from troop.engine.work import PromptSpec, SamplingParams

PROMPT = "def has_close_elements(numbers, threshold):\n    "


class _Events:
    """An observer that looks at every event, as the TUI's folding observer does."""

    def __init__(self) -> None:
        self.n = 0

    def on_event(self, event: Event) -> None:
        self.n += 1


class TimedContext(llamacpp.Context):
    """A context that times each llama_decode of the sampling steps (not the prompts)."""

    def __init__(self, model: llamacpp.Model, plan: ContextPlan) -> None:
        super().__init__(model, plan)
        self.decode_s: list[float] = []  # llama_decode, one per step
        self.between_s: list[float] = []  # from the end of one step's decode to the next's start
        # The same two on this thread's CPU clock: on a shared machine the wall clock also
        # counts the time other processes held the core.
        self.decode_cpu: list[float] = []
        self.between_cpu: list[float] = []
        self._last_end: float | None = None
        self._last_end_cpu = 0.0
        self._prompt = False

    def decode_prompt(self, tokens: list[int], seq: int) -> None:
        self._prompt = True
        try:
            super().decode_prompt(tokens, seq)
        finally:
            self._prompt = False
            self._last_end = None  # a prompt evaluation is not a step's bookkeeping

    def decode(self) -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        super().decode()
        t1, c1 = time.perf_counter(), time.thread_time()
        if self._prompt:
            return
        if self._last_end is not None:
            self.between_s.append(t0 - self._last_end)
            self.between_cpu.append(c0 - self._last_end_cpu)
        self.decode_s.append(t1 - t0)
        self.decode_cpu.append(c1 - c0)
        self._last_end, self._last_end_cpu = t1, c1


def measure(
    model: llamacpp.Model,
    *,
    parallel: int,
    tokens: int,
    device: str,
    threads: int,
    stop: tuple[str, ...],
    profile: cProfile.Profile | None = None,
) -> tuple[TimedContext, BatchedSampler, float]:
    prompt = tuple(model.tokenize(PROMPT))
    plan = plan_context(
        parallel=parallel,
        max_prompt_tokens=len(prompt),
        max_tokens=tokens,
        kv_unified=False,
        n_threads=threads,
        n_ctx_train=model.shape().n_ctx_train,
    )
    ctx = TimedContext(model, plan)
    params = SamplingParams(temperatures=(0.8,), max_tokens=tokens, ignore_eos=True)
    samples = 2 * parallel
    control = RunControl(samples)
    scheduler = Scheduler([PromptSpec("bench/0", prompt, stop)], set(), control, params, 1)
    sampler = BatchedSampler(model, ctx, params, sampler_device=device)

    def store(record: SampleRecord) -> SampleRecord:
        return record

    if profile is not None:
        profile.enable()
    t0 = time.perf_counter()
    sampler.run(scheduler, store, _Events(), control, BatchStats())
    wall = time.perf_counter() - t0
    if profile is not None:
        profile.disable()
    return ctx, sampler, wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", type=Path, required=True, help="GGUF file (a synthetic one)")
    ap.add_argument(
        "--parallel",
        type=int,
        default=255,
        help="slots (llama.cpp allows 256 sequences, one holds the prompt)",
    )
    ap.add_argument("--tokens", type=int, default=64, help="completion tokens per sample")
    ap.add_argument("--sampler-device", default="host,backend", help="comma list of host, backend")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    ap.add_argument(
        "--stop",
        default="\n\n\n\n",
        help="a stop string every slot checks (never matched by noise, in practice)",
    )
    ap.add_argument("--profile", action="store_true", help="cProfile the Python side too")
    args = ap.parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    model = llamacpp.Model(args.model)
    print(
        f"model {args.model.name} ({model.shape().description}), P={args.parallel}, "
        f"{args.tokens} tokens per sample, {threads} threads, load {os.getloadavg()[0]:.2f}"
    )
    for device in args.sampler_device.split(","):
        prof = cProfile.Profile() if args.profile else None
        ctx, sampler, wall = measure(
            model,
            parallel=args.parallel,
            tokens=args.tokens,
            device=device,
            threads=threads,
            stop=(args.stop,),
            profile=prof,
        )
        # Full steps only: while slots drain at the end a step carries fewer tokens.
        n = len(ctx.between_s)
        for clock, decs, pys in (
            ("wall", ctx.decode_s, ctx.between_s),
            ("cpu", ctx.decode_cpu, ctx.between_cpu),
        ):
            dec, py = statistics.median(decs[:n]), statistics.median(pys)
            print(
                f"{sampler.sampler_device:>7} {clock:>4}: step median {1e3 * (dec + py):7.2f} "
                f"ms = decode {1e3 * dec:7.2f} ms + troop {1e3 * py:6.2f} ms "
                f"({100 * py / (dec + py):4.1f}% of the step, "
                f"{1e6 * py / args.parallel:5.1f} us per slot); {n} steps, {wall:.1f} s"
            )
        ctx.close()
        if prof is not None:
            pstats.Stats(prof).sort_stats("tottime").print_stats(14)
    print(f"load average at end {os.getloadavg()[0]:.2f} (a shared machine skews every number)")
    model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
