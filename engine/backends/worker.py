"""The llama.cpp worker process: loads the model and samples, driven by its supervisor over a pipe.

Started by engine/backends/worker_process.py as `python -m troop.engine.backends.worker FD`, with
stdout and stderr going to a log file beside the session. It never touches the session file or
a terminal: every finished sample goes back to the supervisor, which commits it before anything
reports it.

Messages are tuples whose first element names them.
  supervisor -> worker: ("call", id, name, args),
    ("sample", plan, params, logprobs, sampler_device),
    ("prompt", PromptSpec), ("items", [(problem_id, index, seed, temperature)...]),
    ("temperatures", temps | None), ("pause",), ("resume",), ("cancel",), ("finish",), ("quit",)
  worker -> supervisor: ("hello", pid, system_info), ("reply", id, ok, value),
    ("device", where, why) once a run's sampler chains are placed, ("step", [event...]) once
    per decode step, ("idle",), ("sampled", steps)
A step's events are ("e", problem_id, n_tokens, wall_s) for a prompt evaluation,
("s", slot, problem_id, index, temperature, seed) for a start, ("d", slot, problem_id, index,
delta, n_tokens) for new text and ("f", slot, SampleRecord) for a finished sample, in the
order they happened.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from troop.engine.backends import llamacpp
from troop.engine.backends.sampler import BatchedSampler
from troop.engine.control import RunControl
from troop.engine.events import (
    Event,
    PromptEvaluated,
    SampleFinished,
    SampleRecord,
    SampleStarted,
    TokensDecoded,
)
from troop.engine.model_facts import ContextPlan
from troop.engine.work import PromptSpec, SamplingParams, WorkItem
from troop.errors import TroopError

#: Test-only fault switch (an environment variable): "sigill" makes a worker whose model has
#: CPU extra buffers on kill itself with SIGILL at its first decode and report AMX, as a
#: native build does on a host whose AMX faults; the runner's recovery is tested with it on
#: any CPU.
FAULT_ENV = "TROOP_WORKER_FAULT"


class _Queue:
    """The samples the supervisor handed over, in its order; the sampler's scheduler."""

    def __init__(self, control: RunControl) -> None:
        self._control = control
        self._cond = threading.Condition()
        self._items: deque[WorkItem] = deque()
        self.prompts: dict[str, PromptSpec] = {}
        self._generation = 0  # bumped by every delivery; the sampler's "budget"
        self._seen = 0  # the generation when next_item last ran dry
        self.finish = False  # the supervisor has no more work for now
        self.temperatures: tuple[float, ...] = ()  # the session's, cycled by index

    def put(self, items: list[tuple[str, int, int, float]]) -> None:
        with self._cond:
            for problem_id, index, seed, temperature in items:
                prompt = self.prompts[problem_id]
                self._items.append(WorkItem(prompt, index, seed, temperature))
            self._generation += 1
            self._control.raise_budget(self._generation)
            self._cond.notify_all()

    def retemper(self, temperatures: tuple[float, ...] | None) -> None:
        """Samples not yet started take these temperatures (None: the session's)."""
        temps = temperatures or self.temperatures
        with self._cond:
            self._items = deque(
                WorkItem(w.prompt, w.sample_index, w.seed, temps[w.sample_index % len(temps)])
                for w in self._items
            )

    def next_item(self) -> WorkItem | None:
        with self._cond:
            if self._items:
                return self._items.popleft()
            self._seen = self._generation
            return None

    @property
    def budget_seen(self) -> int:
        with self._cond:
            return self._seen

    def remaining(self) -> int:
        with self._cond:
            return len(self._items)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait_for_work(self) -> bool:
        """Block until items arrive (True) or the supervisor says finish, or cancels (False)."""
        with self._cond:
            while True:
                if self._control.cancelled:
                    return False
                if self._items:
                    return True
                if self.finish:
                    self.finish = False
                    return False
                self._cond.wait(0.5)


class _Collector:
    """Gathers one decode step's events and sends them as one message."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._events: list[tuple[Any, ...]] = []

    def on_event(self, event: Event) -> None:
        if isinstance(event, TokensDecoded):
            self._events.append(
                ("d", event.slot, event.problem_id, event.sample_index, event.delta, event.n_tokens)
            )
        elif isinstance(event, SampleStarted):
            self._events.append(
                (
                    "s",
                    event.slot,
                    event.problem_id,
                    event.sample_index,
                    event.temperature,
                    event.seed,
                )
            )
        elif isinstance(event, SampleFinished):
            self._events.append(("f", event.slot, event.record))
        elif isinstance(event, PromptEvaluated):
            self._events.append(("e", event.problem_id, event.n_tokens, event.wall_s))

    def flush(self) -> None:
        if self._events:
            events, self._events = self._events, []
            self._worker.send(("step", events))


class Worker:
    """The worker's state: its model, the pipe, and the sampling run in progress."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._send_lock = threading.Lock()
        self.model: llamacpp.Model | None = None
        self.extra_buffers = True
        self.control = RunControl(0)
        self.queue = _Queue(self.control)
        self.jobs: deque[tuple[ContextPlan, SamplingParams, bool, str]] = deque()
        self.jobs_ready = threading.Condition()
        self.quitting = False
        self.fault = os.environ.get(FAULT_ENV, "")

    def send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            self.conn.send(message)

    # -- the reader thread: calls, control and work from the supervisor ----------------------

    def read(self) -> None:
        try:
            while True:
                message = self.conn.recv()
                if not self._handle(message):
                    break
        except (EOFError, OSError):
            pass  # the supervisor is gone: stop at the next step and leave
        self.quitting = True
        self.control.cancel()
        self.queue.wake()
        with self.jobs_ready:
            self.jobs_ready.notify_all()

    def _handle(self, message: tuple[Any, ...]) -> bool:
        kind = message[0]
        if kind == "call":
            _, rid, name, args = message
            try:
                value = getattr(self, f"call_{name}")(*args)
                self.send(("reply", rid, True, value))
            except TroopError as exc:
                self.send(("reply", rid, False, (type(exc).__name__, exc.message, exc.hint)))
            except Exception as exc:  # a bug: the supervisor reports it as one line
                self.send(
                    ("reply", rid, False, ("EngineError", f"{type(exc).__name__}: {exc}", None))
                )
        elif kind == "sample":
            self.control = RunControl(0)
            self.queue = _Queue(self.control)
            self.queue.temperatures = message[2].temperatures
            with self.jobs_ready:
                self.jobs.append((message[1], message[2], message[3], message[4]))
                self.jobs_ready.notify_all()
        elif kind == "prompt":
            spec: PromptSpec = message[1]
            self.queue.prompts[spec.problem_id] = spec
        elif kind == "items":
            self.queue.put(message[1])
        elif kind == "temperatures":
            self.queue.retemper(message[1])
        elif kind == "pause":
            self.control.pause()
        elif kind == "resume":
            self.control.resume()
        elif kind == "cancel":
            self.control.cancel()
            self.queue.wake()
        elif kind == "finish":
            self.queue.finish = True
            self.queue.wake()
        elif kind == "quit":
            return False
        return True

    # -- calls ----------------------------------------------------------------------------

    def call_load(self, path: str, gpu_layers: int, extra_buffers: bool) -> dict[str, Any]:
        """Load the model; what the supervisor needs to know of it."""
        if self.model is not None:
            self.model.close()
        self.model = llamacpp.Model(Path(path), gpu_layers=gpu_layers, extra_buffers=extra_buffers)
        self.extra_buffers = extra_buffers
        model = self.model
        bos, eos = model.bos_eos()
        return {
            "shape": asdict(model.shape()),
            "metadata": model.metadata(),
            "chat_template": model.chat_template(),
            "bos": bos,
            "eos": eos,
            "bos_text": model.token_text(bos),
            "eos_text": model.token_text(eos),
            "gpu_offload": llamacpp.gpu_offload_supported(),
            # Measured with the weights loaded: what a context's KV cache may still take.
            "gpu_free": llamacpp.gpu_memory_free(),
        }

    def call_tokenize(self, text: str, add_special: bool) -> list[int]:
        assert self.model is not None
        tokens: list[int] = self.model.tokenize(text, add_special=add_special)
        return tokens

    def call_token_text(self, token: int) -> str:
        assert self.model is not None
        text: str = self.model.token_text(token)
        return text

    def call_native_template(self, template: str, user_message: str) -> str:
        text: str = llamacpp.native_chat_template(template, user_message)
        return text

    # -- the main thread: sampling runs ---------------------------------------------------

    def serve(self) -> None:
        while True:
            with self.jobs_ready:
                while not self.jobs and not self.quitting:
                    self.jobs_ready.wait()
                if self.quitting:
                    return
                plan, params, logprobs, device = self.jobs.popleft()
            self._sample(plan, params, logprobs, device)

    def _sample(
        self, plan: ContextPlan, params: SamplingParams, logprobs: bool, device: str
    ) -> None:
        assert self.model is not None
        ctx = llamacpp.Context(self.model, plan)
        if self.fault == "sigill" and self.extra_buffers:
            _fault_at_first_decode(ctx)
        sampler = BatchedSampler(self.model, ctx, params, logprobs=logprobs, sampler_device=device)
        self.send(("device", sampler.sampler_device, sampler.sampler_note))
        collector = _Collector(self)
        steps = 0
        try:
            while True:
                stats = sampler.run(
                    self.queue, _unchanged, collector, self.control, on_step=collector.flush
                )
                steps += stats.steps
                collector.flush()
                if self.control.cancelled:
                    break
                self.send(("idle",))
                if not self.queue.wait_for_work():
                    break
        finally:
            ctx.close()
        if not self.quitting:
            self.send(("sampled", steps))


def _unchanged(record: SampleRecord) -> SampleRecord:
    return record  # the supervisor stores samples, not the worker


def _fault_at_first_decode(ctx: llamacpp.Context) -> None:
    decode = ctx.decode

    def faulting() -> None:
        os.kill(os.getpid(), signal.SIGILL)
        time.sleep(5)  # the signal is delivered at once; never decode
        decode()

    # The test-only fault replaces this one context's method; nothing else sees it.
    ctx.decode = faulting  # type: ignore[method-assign]


def system_info() -> str:
    info: str = llamacpp.system_info()
    if os.environ.get(FAULT_ENV) == "sigill" and "AMX_INT8 = 1" not in info:
        info += " | AMX_INT8 = 1 (simulated by TROOP_WORKER_FAULT)"
    return info


def main(argv: list[str]) -> int:
    conn = Connection(int(argv[1]))
    if len(argv) > 2 and int(argv[2]):
        os.nice(int(argv[2]))
    worker = Worker(conn)
    worker.send(("hello", os.getpid(), system_info()))
    reader = threading.Thread(target=worker.read, name="troop-worker-reader", daemon=True)
    reader.start()
    worker.serve()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: llama.cpp's statics may already be gone by then.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
