"""What the worker process costs: the same batched sampling in this process (BatchedSampler) and
in troop's supervised llama.cpp worker (RemoteSampler), side by side, alternating, per P.

    python bench/worker.py --parallel 16,32,64 --tokens 64 --reps 3

Every sample runs exactly --tokens tokens (end-of-generation ignored), one shared prompt, the
default model. Medians of tokens/s per method and P, and the worker/in-process ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from troop.engine.backends import llamacpp, supervisor
from troop.engine.backends.sample_loop import BatchStats
from troop.engine.backends.sampler import BatchedSampler
from troop.engine.control import RunControl
from troop.engine.events import NullObserver, SampleRecord
from troop.engine.model_facts import plan_context
from troop.engine.models import resolve_model
from troop.engine.scheduler import Scheduler
from troop.engine.work import PromptSpec, SamplingParams

PROMPT = "Write a Python function that returns the n-th Fibonacci number. " * 4


def _keep(record: SampleRecord) -> SampleRecord:
    return record


def _run(
    sampler: BatchedSampler | supervisor.RemoteSampler,
    spec: PromptSpec,
    params: SamplingParams,
    samples: int,
) -> float:
    control = RunControl(samples)
    scheduler = Scheduler([spec], set(), control, params, 1234)
    stats = BatchStats()
    t0 = time.perf_counter()
    sampler.run(scheduler, _keep, NullObserver(), control, stats)
    wall = time.perf_counter() - t0
    if stats.completion_tokens != samples * params.max_tokens:
        raise RuntimeError(
            f"drew {stats.completion_tokens} tokens, expected {samples * params.max_tokens}"
        )
    return stats.completion_tokens / wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parallel", default="16,32,64", help="comma-separated slot counts")
    ap.add_argument("--tokens", type=int, default=64, help="completion tokens per sample")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (medians are shown)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    args = ap.parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    parallels = [int(p) for p in args.parallel.split(",")]
    path = resolve_model(None).path
    extra = supervisor.choose_extra_buffers("auto")
    model = llamacpp.Model(path, extra_buffers=extra)
    log = Path(tempfile.mkdtemp()) / "bench.worker.log"
    remote = supervisor.WorkerModel(path, gpu_layers=-1, extra_buffers=extra, log_path=log)
    params = SamplingParams(max_tokens=args.tokens, ignore_eos=True)
    tokens = tuple(model.tokenize(PROMPT))
    spec = PromptSpec("bench/0", tokens, ())
    print(
        f"CPU: {platform.processor() or platform.machine()} · {os.cpu_count()} cores · "
        f"threads {threads} · extra buffers {'on' if extra else 'off'} · load "
        f"{os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )
    rows = []
    try:
        for p in parallels:
            plan = plan_context(
                parallel=p,
                max_prompt_tokens=len(tokens),
                max_tokens=args.tokens,
                kv_unified=p <= 8,
                n_threads=threads,
                n_ctx_train=model.shape().n_ctx_train,
            )
            samples = 2 * p
            local: list[float] = []
            worker: list[float] = []
            ctx = llamacpp.Context(model, plan)
            try:
                here = BatchedSampler(model, ctx, params, logprobs=True)
                there = supervisor.RemoteSampler(remote, plan, params, logprobs=True)
                _run(here, spec, params, p)  # warm-up: graphs are allocated on first use
                _run(there, spec, params, p)
                for _ in range(args.reps):
                    local.append(_run(here, spec, params, samples))
                    worker.append(_run(there, spec, params, samples))
            finally:
                ctx.close()
            a, b = statistics.median(local), statistics.median(worker)
            rows.append((p, a, b, local, worker))
            print(
                f"P={p}: in-process {a:.1f} tok/s, worker {b:.1f} tok/s, ratio {b / a:.3f}",
                file=sys.stderr,
            )
    finally:
        remote.close()
        model.close()
    print("| P | in-process tok/s | worker tok/s | worker / in-process | per rep (in, worker) |")
    print("| --- | --- | --- | --- | --- |")
    for p, a, b, local, worker in rows:
        reps = ", ".join(f"{x:.0f}/{y:.0f}" for x, y in zip(local, worker, strict=True))
        print(f"| {p} | {a:.1f} | {b:.1f} | {b / a:.3f} | {reps} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
