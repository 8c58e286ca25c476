"""The llama.cpp worker seen from the front end's process: the model it loaded, the samples
it draws, and what this machine taught about its CPU kernels.

llama.cpp runs in a child process (engine/backends/worker.py, held by worker_process.py) so
that a native fault (a SIGILL in a CPU kernel, a segfault, a CUDA abort) ends that process
only: the session file, the sandbox and the terminal belong to this side, which commits every
sample before reporting it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

from troop.engine.backends.sample_loop import BatchStats, Store
from troop.engine.backends.worker_process import Death, WorkerProcess
from troop.engine.control import RunControl
from troop.engine.events import (
    PromptEvaluated,
    RunObserver,
    SampleFinished,
    SampleStarted,
    TokensDecoded,
)
from troop.engine.model_facts import ContextPlan, ModelShape
from troop.engine.work import PromptSpec, SamplingParams, WorkSource
from troop.errors import EngineError, TroopError


def worker_log_path(session_path: Path) -> Path:
    """Where a session's worker writes its stdout and stderr (llama.cpp's log)."""
    return session_path.with_name(session_path.name + ".worker.log")


# -- CPU extra buffer types: what this machine taught us -------------------------------------


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "troop"


def findings_path() -> Path:
    """The file that remembers, per machine and llama.cpp build, that extra buffers fault."""
    return _cache_dir() / "cpu-extra-buffers.json"


def machine_key() -> str:
    """This CPU and this llama.cpp build, without loading llama.cpp."""
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(("model name", "flags")):
                cpu += line
            if line.strip() == "":
                break
    build = ""
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is not None and spec.submodule_search_locations:
        lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
        for f in sorted(lib.glob("*.so*")) if lib.is_dir() else []:
            st = f.stat()
            build += f"{f.name}:{st.st_size}:{int(st.st_mtime)};"
    raw = f"{platform.machine()}|{cpu}|{build}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def extra_buffers_fault_known() -> bool:
    """True when a worker here died of extra buffers (AMX) with this llama.cpp build."""
    try:
        data = json.loads(findings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    entry = data.get(machine_key()) if isinstance(data, dict) else None
    return isinstance(entry, dict) and entry.get("extra_buffers") == "off"


def remember_extra_buffers_fault(reason: str) -> Path:
    """Record that extra buffers must stay off on this machine and build."""
    path = findings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    data[machine_key()] = {
        "extra_buffers": "off",
        "reason": reason,
        "cpu": platform.processor() or platform.machine(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        tmp.replace(path)
    return path


def choose_extra_buffers(mode: str) -> bool:
    """Whether a new worker loads the model with CPU extra buffer types ("auto": unless this
    machine is known to fault with them)."""
    if mode not in ("auto", "on", "off"):
        raise TroopError(f"--cpu-extra-buffers must be auto, on or off, not {mode!r}")
    if mode == "auto":
        return not extra_buffers_fault_known()
    return mode == "on"


def is_extra_buffers_fault(death: Death | None, system_info: str, extra_buffers: bool) -> bool:
    """A SIGILL in a worker whose llama.cpp uses AMX with extra buffers on: the known fault of
    AMX kernels on some (virtualised) hosts, which loading without extra buffers avoids."""
    return (
        death is not None
        and death.signal_name == "SIGILL"
        and extra_buffers
        and "AMX_INT8 = 1" in system_info
    )


# -- the model, as the front end sees it ----------------------------------------------------


class WorkerModel:
    """A GGUF model loaded in a worker process; answers what prompt building and the session's
    records need (shape, metadata, template, tokens) without loading llama.cpp here."""

    def __init__(self, path: Path, *, gpu_layers: int, extra_buffers: bool, log_path: Path) -> None:
        self.path = path
        self.gpu_layers = gpu_layers
        self.extra_buffers = extra_buffers  # CPU extra buffer types (AMX repacking) in use
        self.log_path = log_path
        self.worker: WorkerProcess | None = None
        self.facts: dict[str, Any] = {}
        self.start()

    def start(self) -> None:
        """A fresh worker with the model loaded (after a death, or with other buffers)."""
        self.close()
        worker = WorkerProcess(self.log_path)
        try:
            self.facts = worker.call("load", str(self.path), self.gpu_layers, self.extra_buffers)
        except BaseException:
            worker.close()
            raise
        self.worker = worker

    @property
    def alive(self) -> bool:
        return self.worker is not None and not self.worker.dead.is_set()

    @property
    def system_info(self) -> str:
        return self.worker.system_info if self.worker is not None else ""

    @property
    def gpu_offload(self) -> bool:
        return bool(self.facts.get("gpu_offload"))

    def _call(self, name: str, *args: Any) -> Any:
        if self.worker is None:
            raise EngineError("the llama.cpp worker is not running")
        return self.worker.call(name, *args)

    def shape(self) -> ModelShape:
        return ModelShape(**self.facts["shape"])

    def metadata(self) -> dict[str, str]:
        meta: dict[str, str] = self.facts["metadata"]
        return meta

    def chat_template(self) -> str | None:
        template: str | None = self.facts["chat_template"]
        return template

    def bos_eos(self) -> tuple[int, int]:
        return int(self.facts["bos"]), int(self.facts["eos"])

    def token_text(self, token: int) -> str:
        if token == self.facts["bos"]:
            return str(self.facts["bos_text"])
        if token == self.facts["eos"]:
            return str(self.facts["eos_text"])
        text: str = self._call("token_text", token)
        return text

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        tokens: list[int] = self._call("tokenize", text, add_special)
        return tokens

    def native_template(self, template: str, user_message: str) -> str:
        text: str = self._call("native_template", template, user_message)
        return text

    def close(self) -> None:
        if self.worker is not None:
            worker, self.worker = self.worker, None
            worker.close()


# -- sampling in the worker -----------------------------------------------------------------


class RemoteSampler:
    """Draws a run's samples in the worker: the Scheduler stays here and keeps the worker's
    queue a full set of slots ahead, so a slot that frees is refilled without a round trip;
    each step's message is turned back into the engine's events, and every finished sample is
    stored before its event is reported."""

    def __init__(
        self,
        model: WorkerModel,
        plan: ContextPlan,
        params: SamplingParams,
        *,
        logprobs: bool,
        lookahead: int | None = None,
        sampler_device: str = "host",
    ) -> None:
        self.model = model
        self.plan = plan
        self.params = params
        self.logprobs = logprobs
        self.parallel = plan.n_seq - 1
        # Samples handed over ahead of the free slots: a full set keeps every slot busy; an
        # adaptive budget policy asks for fewer, since a sample handed over is spent even if
        # its problem is solved meanwhile.
        self.lookahead = lookahead if lookahead is not None else self.parallel
        self.sampler_device = sampler_device  # "host" or "backend", as asked
        self.used_device: tuple[str, str] | None = None  # (where, why) as the worker ran it
        self.in_flight: dict[int, tuple[str, int]] = {}  # slot -> (problem, index)

    def run(
        self,
        scheduler: WorkSource,
        store: Store,
        observer: RunObserver,
        control: RunControl,
        stats: BatchStats,
    ) -> BatchStats:
        worker = self.model.worker
        if worker is None:
            raise EngineError("the llama.cpp worker is not running")
        lock = threading.Lock()
        done = threading.Event()
        failure: list[BaseException] = []
        sent_prompts: set[str] = set()
        queued = [0]  # handed to the worker, not yet started there
        in_flight = self.in_flight
        in_flight.clear()

        def top_up() -> int:
            """Hand the worker samples until a full set of slots waits; how many were sent."""
            with lock:
                batch: list[tuple[str, int, int, float]] = []
                while queued[0] + len(batch) < self.lookahead:
                    item = scheduler.next_item()
                    if item is None:
                        break
                    prompt: PromptSpec = item.prompt
                    if prompt.problem_id not in sent_prompts:
                        if batch:  # keep the order: prompts precede their items
                            worker.send(("items", batch))
                            queued[0] += len(batch)
                            batch = []
                        worker.send(("prompt", prompt))
                        sent_prompts.add(prompt.problem_id)
                    batch.append(
                        (prompt.problem_id, item.sample_index, item.seed, item.temperature)
                    )
                if batch:
                    worker.send(("items", batch))
                    queued[0] += len(batch)
                return len(batch)

        def on_message(message: tuple[Any, ...]) -> None:
            if done.is_set():
                return
            try:
                kind = message[0]
                if kind == "step":
                    self._step(message[1], store, observer, stats, queued, lock)
                    stats.steps += 1
                    top_up()
                elif kind == "idle":
                    if top_up() == 0 and queued[0] == 0:
                        worker.send(("finish",))
                elif kind == "sampled" or kind == "died":
                    done.set()
            except BaseException as exc:  # storing or an observer failed: stop the run
                failure.append(exc)
                with contextlib.suppress(TroopError):
                    worker.send(("cancel",))
                done.set()

        def on_control(what: str, value: Any) -> None:
            with contextlib.suppress(TroopError):
                if what in ("pause", "resume", "cancel"):
                    worker.send((what,))
                elif what == "temperatures":
                    worker.send(("temperatures", value))
                else:  # a raised budget or added problems: more work may be there now
                    top_up()

        worker.handler = on_message
        unsubscribe = control.subscribe(on_control)
        try:
            worker.send(("sample", self.plan, self.params, self.logprobs, self.sampler_device))
            if control.temperatures is not None:
                worker.send(("temperatures", control.temperatures))
            if control.paused:
                worker.send(("pause",))
            top_up()
            if control.cancelled:
                worker.send(("cancel",))
            while not done.wait(0.25):
                pass
        except KeyboardInterrupt:
            with contextlib.suppress(TroopError):
                worker.send(("cancel",))
            done.wait(30)
            raise
        finally:
            unsubscribe()
            worker.handler = None
        if failure:
            raise failure[0]
        if worker.dead.is_set():
            raise worker.died_error(lost=len(in_flight))
        return stats

    def _step(
        self,
        events: list[tuple[Any, ...]],
        store: Store,
        observer: RunObserver,
        stats: BatchStats,
        queued: list[int],
        lock: threading.Lock,
    ) -> None:
        for event in events:
            tag = event[0]
            if tag == "d":
                _, slot, problem_id, index, delta, n = event
                observer.on_event(TokensDecoded(slot, problem_id, index, delta, n))
            elif tag == "s":
                _, slot, problem_id, index, temperature, seed = event
                with lock:
                    queued[0] -= 1
                self.in_flight[slot] = (problem_id, index)
                observer.on_event(SampleStarted(slot, problem_id, index, temperature, seed))
            elif tag == "f":
                _, slot, record = event
                stored = store(record)  # committed before anything hears of it
                self.in_flight.pop(slot, None)
                stats.samples += 1
                stats.completion_tokens += stored.completion_tokens
                observer.on_event(SampleFinished(slot=slot, record=stored))
            elif tag == "e":
                _, problem_id, n_tokens, wall_s = event
                stats.prompt_tokens += n_tokens
                observer.on_event(PromptEvaluated(problem_id, n_tokens, wall_s))
