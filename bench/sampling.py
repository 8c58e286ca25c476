"""Sampling throughput, side by side: a create_completion loop, troop's engine, llama-batched-bench,
and troop's OpenAI backend against a server on loopback (what the network path costs).

Run `python bench/sampling.py --help`; bench/README.md explains the columns.
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import json
import os
import platform
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from troop.engine.backends import llamacpp
from troop.engine.backends.openai_backend import UNKNOWN_TOKEN, ServerPrompt, ServerSampler
from troop.engine.backends.openai_client import ServerOptions, ServerTarget, count_prompts
from troop.engine.backends.sample_loop import BatchStats
from troop.engine.backends.sampler import BatchedSampler
from troop.engine.backends.supervisor import choose_extra_buffers
from troop.engine.control import RunControl
from troop.engine.events import Event, PromptEvaluated, SampleRecord
from troop.engine.model_facts import plan_context
from troop.engine.models import resolve_model
from troop.engine.scheduler import Scheduler
from troop.engine.work import PromptSpec, SamplingParams

HERE = Path(__file__).resolve().parent
DEFAULT_BINARY = HERE / "_build" / "llama" / "bin" / "llama-batched-bench"
SEED = 1234
TEMPERATURE = 0.8
TOP_K = 40
TOP_P = 0.95
MODES = ("split", "unified")  # troop's --kv-cache values; "unified" is kv_unified=True

# A HumanEval-like prompt: a signature and docstring, repeated until it is long enough.
PROMPT_TEXT = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold.
    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
    False
    >>> has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)
    True
    """
'''


@dataclass(frozen=True)
class Config:
    """What one benchmark invocation measures."""

    parallel: tuple[int, ...]  # troop slots / C++ batch sizes to measure
    tokens: int  # completion tokens per sample (every sample runs exactly this long)
    prompt_tokens: int  # shared prompt length, tokens
    reps: int  # repetitions; tables show medians
    loop_samples: int  # completions per rep in the create_completion loop
    threads: int  # CPU threads for every method
    modes: tuple[str, ...] = MODES  # troop's KV modes to measure
    sampler_device: str = "host"  # where troop's sampler chains run: "host" or "backend"


@dataclass
class TroopRun:
    """One BatchedSampler.run at one P and KV mode."""

    parallel: int  # slots
    mode: str  # "split" or "unified"
    samples: int  # samples drawn
    completion_tokens: int  # tokens drawn, all samples
    wall_s: float  # seconds for the whole run, shared prompt evaluation included
    prompt_s: float  # seconds spent evaluating the shared prompt

    @property
    def tok_s(self) -> float:
        return self.completion_tokens / self.wall_s

    @property
    def decode_tok_s(self) -> float:
        return self.completion_tokens / (self.wall_s - self.prompt_s)

    @property
    def samples_s(self) -> float:
        return self.samples / self.wall_s


@dataclass
class Results:
    """Every rep's numbers, keyed so medians can be taken per (method, P, mode)."""

    machine: dict[str, Any] = field(default_factory=dict)
    loop_tok_s: list[float] = field(default_factory=list)  # completion tokens / wall, per rep
    troop: list[TroopRun] = field(default_factory=list)
    cpp: list[dict[str, Any]] = field(default_factory=list)  # batched-bench jsonl rows + "mode"
    server: list[ServerRun] = field(default_factory=list)  # the OpenAI backend, per rep and P
    notes: list[str] = field(default_factory=list)


@dataclass
class ServerRun:
    """One ServerSampler.run against the server at one P (requests in flight)."""

    parallel: int  # requests in flight
    samples: int  # samples drawn
    completion_tokens: int  # tokens drawn, all samples
    wall_s: float  # seconds for the whole run, HTTP and the server's prompt evaluations included

    @property
    def tok_s(self) -> float:
        return self.completion_tokens / self.wall_s


class PromptClock:
    """An observer that ignores everything except prompt evaluations, whose time it sums."""

    def __init__(self) -> None:
        self.prompt_s = 0.0

    def on_event(self, event: Event) -> None:
        # A type check per event costs about what NullObserver's empty call does.
        if type(event) is PromptEvaluated:
            self.prompt_s += event.wall_s


def build_prompt(model: llamacpp.Model, n_tokens: int) -> list[int]:
    """A fixed prompt of exactly n_tokens tokens, so every method sees the same prefix."""
    text = PROMPT_TEXT
    while len(model.tokenize(text)) < n_tokens:
        text += PROMPT_TEXT
    tokens: list[int] = model.tokenize(text)[:n_tokens]
    return tokens


def eog_tokens(model: llamacpp.Model) -> list[int]:
    """Every end-of-generation token; the loop biases them away so samples run full length."""
    return [t for t in range(model.n_vocab) if model.is_eog(t)]


def bench_loop(path: Path, prompt: list[int], eog: list[int], cfg: Config) -> float:
    """Completion tokens per second of llama-cpp-python's create_completion, one at a time."""
    import llama_cpp
    import llama_cpp.llama_cpp as low

    if not choose_extra_buffers("auto"):
        # Where AMX faults (engine/backends/supervisor.py), Llama() must load without extra buffers
        # too; it takes llama.cpp's default model parameters, so those are adjusted.
        default = low.llama_model_default_params

        def params() -> Any:
            p = default()
            p.use_extra_bufts = False
            return p

        low.llama_model_default_params = params
    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=_round_up(len(prompt) + cfg.tokens + 16, 256),
        n_threads=cfg.threads,
        n_threads_batch=cfg.threads,
        # troop's contexts and llama-batched-bench keep llama.cpp's "auto" flash attention,
        # which is on for the CPU; Llama() defaults to off, so it is asked for explicitly.
        flash_attn=True,
        verbose=False,
    )
    bias = {t: float("-inf") for t in eog}
    kwargs: dict[str, Any] = dict(
        temperature=TEMPERATURE,
        top_k=TOP_K,
        top_p=TOP_P,
        min_p=0.0,  # create_completion defaults to 0.05; troop's SamplingParams to 0.0
        logit_bias=bias,
    )
    try:
        llm.create_completion(prompt, max_tokens=4, seed=SEED, **kwargs)  # warm-up
        tokens = 0
        t0 = time.perf_counter()
        for i in range(cfg.loop_samples):
            out: Any = llm.create_completion(prompt, max_tokens=cfg.tokens, seed=SEED + i, **kwargs)
            tokens += int(out["usage"]["completion_tokens"])
        wall = time.perf_counter() - t0
    finally:
        llm.close()
    return tokens / wall


def bench_troop(
    model: llamacpp.Model,
    prompt: list[int],
    parallel: int,
    mode: str,
    cfg: Config,
    *,
    tokens: int | None = None,
    profile: cProfile.Profile | None = None,
) -> TroopRun:
    """One BatchedSampler.run in a fresh context, after an untimed warm-up run."""
    max_tokens = tokens or cfg.tokens
    plan = plan_context(
        parallel=parallel,
        max_prompt_tokens=len(prompt),
        max_tokens=max_tokens,
        kv_unified=mode == "unified",
        n_threads=cfg.threads,
        n_ctx_train=model.shape().n_ctx_train,
    )
    ctx = llamacpp.Context(model, plan)
    try:
        spec = PromptSpec("bench/0", tuple(prompt), ())
        # Like batched-bench's warm-up decode: the first steps of a context allocate its
        # compute graphs, a one-off cost no long run notices.
        _draw(model, ctx, spec, parallel, 4, SEED + 1, PromptClock(), cfg.sampler_device)
        samples = max(8, 2 * parallel)  # every slot draws at least two samples
        clock = PromptClock()
        if profile is not None:
            profile.enable()
        t0 = time.perf_counter()
        drawn = _draw(model, ctx, spec, samples, max_tokens, SEED, clock, cfg.sampler_device)
        wall = time.perf_counter() - t0
        if profile is not None:
            profile.disable()
    finally:
        ctx.close()
    return TroopRun(parallel, mode, samples, drawn, wall, clock.prompt_s)


def _draw(
    model: llamacpp.Model,
    ctx: llamacpp.Context,
    spec: PromptSpec,
    samples: int,
    max_tokens: int,
    seed: int,
    observer: PromptClock,
    sampler_device: str = "host",
) -> int:
    params = SamplingParams(
        temperatures=(TEMPERATURE,),
        top_k=TOP_K,
        top_p=TOP_P,
        max_tokens=max_tokens,
        ignore_eos=True,
    )
    control = RunControl(samples)
    scheduler = Scheduler([spec], set(), control, params, seed)

    def store(record: SampleRecord) -> SampleRecord:
        return record

    stats = BatchedSampler(model, ctx, params, sampler_device=sampler_device).run(
        scheduler, store, observer, control
    )
    if stats.completion_tokens != samples * max_tokens:
        raise RuntimeError(
            f"expected {samples} x {max_tokens} tokens, drew {stats.completion_tokens}"
        )
    drawn: int = stats.completion_tokens
    return drawn


class LoopbackServer:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1 with the bench's model, threads
    and a context for one prompt plus completion (it runs one request at a time)."""

    def __init__(self, model_path: Path, cfg: Config) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        self.model = "bench"
        # Its load log would fill a pipe and stall it; closed in close().
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model_path),
                "--model_alias",
                self.model,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                str(_round_up(cfg.prompt_tokens + cfg.tokens + 16, 256)),
                "--n_threads",
                str(cfg.threads),
                "--n_threads_batch",
                str(cfg.threads),
                "--flash_attn",
                "True",
                # By default a waiting request cuts the running stream short: every parallel
                # request would be retried.
                "--interrupt_requests",
                "False",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        atexit.register(self.close)  # a crashed benchmark leaves no server behind

    def wait_ready(self, timeout: float = 120) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.log.seek(0)
        tail = self.log.read().decode(errors="replace")[-1500:]
        raise RuntimeError(f"llama_cpp.server did not start:\n{tail}")

    def close(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def bench_server(
    url: str,
    model_name: str,
    text: str,
    n_prompt: int,
    eog: list[int],
    parallel: int,
    cfg: Config,
    *,
    tokens: int | None = None,
    logprobs: bool = False,
) -> ServerRun:
    """One ServerSampler.run (troop's OpenAI backend, /completions) with `parallel` requests in
    flight, after an untimed warm-up. Logprobs are off by default, as in the loop: on
    llama-cpp-python's server they cost several times the throughput (its per-token Python
    log-softmax), which is that server's cost, not the network path's."""
    max_tokens = tokens or cfg.tokens
    params = SamplingParams(
        temperatures=(TEMPERATURE,),
        top_k=TOP_K,
        top_p=TOP_P,
        max_tokens=max_tokens,
        ignore_eos=True,  # honoured by llama-server and vLLM; the bias below does it elsewhere
    )
    spec = PromptSpec("bench/0", (UNKNOWN_TOKEN,) * n_prompt, ())
    sampler = ServerSampler(
        ServerTarget(url, model_name, "completions"),
        params,
        {"bench/0": ServerPrompt(text, n_prompt)},
        parallel=parallel,
        logprobs=logprobs,
        options=ServerOptions(retries=0),
        # As in the loop: end-of-generation tokens biased away, so samples run full length.
        extra_body={"logit_bias": {str(t): -100 for t in eog}},
    )

    def draw(samples: int, seed: int) -> int:
        control = RunControl(samples)
        stats = sampler.run(
            Scheduler([spec], set(), control, params, seed),
            lambda r: r,
            PromptClock(),
            control,
            BatchStats(),
        )
        return stats.completion_tokens

    draw(1, SEED + 1)  # warm-up: connection, the server's first prompt evaluation
    samples = max(8, 2 * parallel)
    t0 = time.perf_counter()
    drawn = draw(samples, SEED)
    wall = time.perf_counter() - t0
    if drawn != samples * max_tokens:
        raise RuntimeError(
            f"expected {samples} x {max_tokens} tokens, drew {drawn} (does the "
            "server honour ignore_eos or logit_bias?)"
        )
    return ServerRun(parallel, samples, drawn, wall)


def find_binary(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    if DEFAULT_BINARY.exists():
        return DEFAULT_BINARY
    found = shutil.which("llama-batched-bench")
    return Path(found) if found else None


def bench_cpp(binary: Path, model_path: Path, mode: str, cfg: Config) -> list[dict[str, Any]]:
    """One llama-batched-bench process measuring every P, shared prompt, in one KV mode."""
    # Split mode gives each of max(P) sequences its own n_ctx / max(P) cells, so the context
    # must hold the largest P times one prompt plus completion (llama.cpp pads to 256).
    n_ctx = max(cfg.parallel) * _round_up(cfg.prompt_tokens + cfg.tokens + 1, 256)
    cmd = [
        str(binary),
        "-m",
        str(model_path),
        "-c",
        str(n_ctx),
        "-b",
        "2048",
        "-ub",
        "512",
        "-npp",
        str(cfg.prompt_tokens),
        "-ntg",
        str(cfg.tokens),
        "-npl",
        ",".join(map(str, cfg.parallel)),
        "-pps",
        "-t",
        str(cfg.threads),
        "-kvu" if mode == "unified" else "-no-kvu",
        "--output-format",
        "jsonl",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not rows:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): " + " | ".join(tail))
    for row in rows:
        row["mode"] = mode
        # Completion tokens over prompt plus generation time: comparable to troop's tok/s.
        row["e2e_tg"] = row["pl"] * row["tg"] / row["t"]
    return rows


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def summarize(res: Results, cfg: Config) -> dict[str, Any]:
    """Medians per P: the numbers behind the tables (and the --json "summary")."""
    loop = _median(res.loop_tok_s)
    rows: dict[str, Any] = {}
    for p in cfg.parallel:
        row: dict[str, Any] = {"loop_tok_s": loop}
        for mode in MODES:
            runs = [r for r in res.troop if r.parallel == p and r.mode == mode]
            cpp = [r for r in res.cpp if r["pl"] == p and r["mode"] == mode]
            row[f"troop_{mode}_tok_s"] = _median([r.tok_s for r in runs])
            row[f"troop_{mode}_decode_tok_s"] = _median([r.decode_tok_s for r in runs])
            row[f"troop_{mode}_samples_s"] = _median([r.samples_s for r in runs])
            row[f"troop_{mode}_prompt_s"] = _median([r.prompt_s for r in runs])
            row[f"cpp_{mode}_s_tg"] = _median([float(r["speed_tg"]) for r in cpp])
            row[f"cpp_{mode}_e2e_tok_s"] = _median([float(r["e2e_tg"]) for r in cpp])
        row["server_tok_s"] = _median([r.tok_s for r in res.server if r.parallel == p])
        rows[str(p)] = row
    return rows


def print_tables(summary: dict[str, Any]) -> None:
    head = (
        f"{'P':>4} | {'loop':>7} | {'troop split':>11} | {'troop unif':>10} | "
        f"{'C++ split':>9} | {'C++ unif':>8} || {'tr/loop s':>9} | {'tr/loop u':>9} | "
        f"{'tr/C++ s':>8} | {'tr/C++ u':>8}"
    )
    print(
        "\nCompletion tokens per second (medians); troop includes its prompt evaluation,"
        " C++ is S_TG (generation phase only)"
    )
    print(head)
    print("-" * len(head))
    for p, r in summary.items():
        ts, tu = r["troop_split_tok_s"], r["troop_unified_tok_s"]
        cs, cu = r["cpp_split_s_tg"], r["cpp_unified_s_tg"]
        print(
            f"{p:>4} | {_fmt(r['loop_tok_s']):>7} | {_fmt(ts):>11} | {_fmt(tu):>10} | "
            f"{_fmt(cs):>9} | {_fmt(cu):>8} || {_ratio(ts, r['loop_tok_s']):>9} | "
            f"{_ratio(tu, r['loop_tok_s']):>9} | {_ratio(ts, cs):>8} | {_ratio(tu, cu):>8}"
        )
    head2 = (
        f"{'P':>4} | {'mode':>7} | {'samples/s':>9} | {'prompt s':>8} | {'troop dec':>9} | "
        f"{'C++ S_TG':>8} | {'dec/S_TG':>8} | {'troop e2e':>9} | {'C++ e2e':>8} | {'e2e/e2e':>8}"
    )
    print(
        "\nDetails: 'dec' excludes troop's shared-prompt evaluation; 'e2e' counts completion"
        " tokens over prompt plus generation time for both"
    )
    print(head2)
    print("-" * len(head2))
    for p, r in summary.items():
        for mode in MODES:
            dec, s_tg = r[f"troop_{mode}_decode_tok_s"], r[f"cpp_{mode}_s_tg"]
            e2e, c_e2e = r[f"troop_{mode}_tok_s"], r[f"cpp_{mode}_e2e_tok_s"]
            print(
                f"{p:>4} | {mode:>7} | {_fmt(r[f'troop_{mode}_samples_s'], 2):>9} | "
                f"{_fmt(r[f'troop_{mode}_prompt_s'], 3):>8} | {_fmt(dec):>9} | "
                f"{_fmt(s_tg):>8} | {_ratio(dec, s_tg):>8} | {_fmt(e2e):>9} | "
                f"{_fmt(c_e2e):>8} | {_ratio(e2e, c_e2e):>8}"
            )


def print_server_table(summary: dict[str, Any], where: str) -> None:
    head = (
        f"{'P':>4} | {'loop':>7} | {'troop split':>11} | {'troop unif':>10} | "
        f"{'server':>7} || {'srv/loop':>8} | {'srv/tr s':>8} | {'srv/tr u':>8}"
    )
    print(
        f"\nOpenAI backend against {where}: completion tokens per second (medians), "
        "HTTP streaming and the server's own prompt evaluations included"
    )
    print(head)
    print("-" * len(head))
    for p, r in summary.items():
        srv, loop = r["server_tok_s"], r["loop_tok_s"]
        ts, tu = r["troop_split_tok_s"], r["troop_unified_tok_s"]
        print(
            f"{p:>4} | {_fmt(loop):>7} | {_fmt(ts):>11} | {_fmt(tu):>10} | {_fmt(srv):>7} || "
            f"{_ratio(srv, loop):>8} | {_ratio(srv, ts):>8} | {_ratio(srv, tu):>8}"
        )


def machine_info(cfg: Config, model_path: Path, binary: Path | None) -> dict[str, Any]:
    import llama_cpp

    return {
        "cpu_count": os.cpu_count(),
        "threads": cfg.threads,
        "processor": _cpu_name(),
        "python": platform.python_version(),
        "llama_cpp_python": llama_cpp.__version__,
        "system_info": llamacpp.system_info(),
        "gpu_offload": llamacpp.gpu_offload_supported(),
        "model": str(model_path),
        "batched_bench": str(binary) if binary else None,
        "loadavg_start": os.getloadavg(),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 1 rep, P in 1,16, 32 tokens, 2 loop samples",
    )
    ap.add_argument("--parallel", default="1,4,16,32,64", help="comma-separated slot counts")
    ap.add_argument("--tokens", type=int, default=128, help="completion tokens per sample")
    ap.add_argument("--prompt-tokens", type=int, default=160, help="shared prompt, tokens")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (medians are shown)")
    ap.add_argument(
        "--loop-samples",
        type=int,
        default=8,
        help="completions per rep of the create_completion loop",
    )
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    ap.add_argument(
        "--batched-bench",
        help="path of llama-batched-bench "
        "(default: bench/_build/llama/bin/, built by bench/build_batched_bench.sh)",
    )
    ap.add_argument(
        "--skip", default="", help="comma-separated methods to skip: loop,troop,cpp,server"
    )
    ap.add_argument(
        "--server-url",
        metavar="URL",
        help="measure the OpenAI backend against this running server (e.g. "
        "llama-server -np 16) instead of starting llama-cpp-python's on loopback",
    )
    ap.add_argument(
        "--server-model",
        default=None,
        metavar="NAME",
        help="with --server-url: the served model's name (default: its only one)",
    )
    ap.add_argument(
        "--server-logprobs",
        action="store_true",
        help="ask the server for logprobs, as `troop run` does by default (off: as in the loop)",
    )
    ap.add_argument(
        "--profile",
        type=int,
        metavar="P",
        help="instead of benchmarking, cProfile one troop run at P slots (split)",
    )
    ap.add_argument("--json", help="write every rep's numbers and the medians to this file")
    ap.add_argument(
        "--model",
        type=Path,
        help="GGUF file (default: troop's default model); e.g. one written by "
        "bench/synthetic_gguf.py",
    )
    ap.add_argument(
        "--kv-modes",
        default=",".join(MODES),
        help="troop's KV modes to measure: split, unified or both",
    )
    ap.add_argument(
        "--sampler-device",
        choices=("host", "backend"),
        default="host",
        help="where troop's sampler chains run (the C++ and server columns are unaffected)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    modes = tuple(m for m in args.kv_modes.split(",") if m)
    if args.quick:
        cfg = Config((1, 16), 32, args.prompt_tokens, 1, 2, threads, modes, args.sampler_device)
    else:
        cfg = Config(
            tuple(int(p) for p in args.parallel.split(",")),
            args.tokens,
            args.prompt_tokens,
            args.reps,
            args.loop_samples,
            threads,
            modes,
            args.sampler_device,
        )
    skip = set(filter(None, args.skip.split(",")))
    model_path = args.model or resolve_model(None).path
    # In this process, with the CPU extra buffers troop's worker would use on this machine
    # (off where AMX faults; see engine/backends/supervisor.py).
    model = llamacpp.Model(model_path, extra_buffers=choose_extra_buffers("auto"))
    prompt = build_prompt(model, cfg.prompt_tokens)

    if args.profile:
        prof = cProfile.Profile()
        run = bench_troop(model, prompt, args.profile, "split", cfg, profile=prof)
        print(
            f"P={run.parallel} split: {run.tok_s:.1f} tok/s over {run.wall_s:.2f} s "
            "(profiled, so slower than unprofiled)"
        )
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(25)
        return 0

    binary = None if "cpp" in skip else find_binary(args.batched_bench)
    res = Results(machine=machine_info(cfg, model_path, binary))
    res.machine["config"] = asdict(cfg)
    m = res.machine
    print(
        f"machine: {m['processor']}, {m['cpu_count']} cores, threads={cfg.threads}, "
        f"GPU offload {'available' if m['gpu_offload'] else 'not available'}"
    )
    print(f"llama.cpp: {m['system_info']}")
    print(
        f"model: {model_path.name} ({model.shape().description}); prompt {len(prompt)} "
        f"tokens, {cfg.tokens} completion tokens per sample, {cfg.reps} reps; troop samples "
        f"on the {cfg.sampler_device}"
    )
    if model.metadata().get("general.name", "").startswith("synthetic"):
        from synthetic_gguf import COST_NOTE

        res.notes.append(f"synthetic model, {COST_NOTE}")
        print(f"note: synthetic model, {COST_NOTE}")
    if "cpp" not in skip and (binary is None or not binary.exists()):
        note = (
            "C++ columns skipped: no llama-batched-bench (run bench/build_batched_bench.sh "
            "or pass --batched-bench PATH)"
        )
        res.notes.append(note)
        print(note)
        binary = None
    eog = eog_tokens(model)

    server, server_url, server_model, server_text, server_n = None, None, "", "", 0
    if "server" not in skip:
        server_url, server_model = args.server_url, args.server_model
        if server_url is None:
            server = LoopbackServer(model_path, cfg)
            server.wait_ready()
            server_url, server_model = server.url, server.model
        elif server_model is None:
            from troop.engine.backends.openai_client import served_models

            names = served_models(server_url, None, ServerOptions())
            if len(names) != 1:
                raise SystemExit(f"--server-model: {server_url} serves {names}")
            server_model = names[0]
        # The same prompt as text (the server tokenizes it and adds its own BOS).
        bos = model.bos_eos()[0]
        server_text = b"".join(model.piece(t) for t in prompt[prompt[0] == bos :]).decode(
            "utf-8", "replace"
        )
        target = ServerTarget(server_url, server_model, "completions")
        server_n = count_prompts(target, ServerOptions(), [(server_text, ())], parallel=1)[0]
        where = "llama-cpp-python's server on loopback" if server is not None else server_url
        m["server"] = {
            "url": server_url,
            "model": server_model,
            "where": where,
            "prompt_tokens": server_n,
            "logprobs": args.server_logprobs,
        }
        print(
            f"server: {where} ({server_url}), model {server_model!r}, prompt "
            f"{server_n} tokens as it counts them"
        )

    # Reps are the outer loop so that a slow spell on the machine hits every method alike.
    for rep in range(cfg.reps):
        if "loop" not in skip:
            tok_s = bench_loop(model_path, prompt, eog, cfg)
            res.loop_tok_s.append(tok_s)
            print(f"[rep {rep + 1}] loop: {tok_s:.1f} tok/s", flush=True)
        if "troop" not in skip:
            for p in cfg.parallel:
                for mode in cfg.modes:
                    run = bench_troop(model, prompt, p, mode, cfg)
                    res.troop.append(run)
                    print(
                        f"[rep {rep + 1}] troop P={p} {mode}: {run.tok_s:.1f} tok/s "
                        f"({run.decode_tok_s:.1f} decode), {run.samples_s:.2f} samples/s",
                        flush=True,
                    )
        if binary is not None:
            for mode in cfg.modes:
                rows = bench_cpp(binary, model_path, mode, cfg)
                res.cpp.extend(rows)
                speeds = ", ".join(f"P={r['pl']}: {r['speed_tg']:.1f}" for r in rows)
                print(f"[rep {rep + 1}] C++ {mode} S_TG: {speeds}", flush=True)
        if server_url is not None:
            for p in cfg.parallel:
                srun = bench_server(
                    server_url,
                    server_model,
                    server_text,
                    server_n,
                    eog,
                    p,
                    cfg,
                    logprobs=args.server_logprobs,
                )
                res.server.append(srun)
                print(f"[rep {rep + 1}] server P={p}: {srun.tok_s:.1f} tok/s", flush=True)
    if server is not None:
        server.close()

    m["loadavg_end"] = os.getloadavg()
    summary = summarize(res, cfg)
    print_tables(summary)
    if res.server:
        print_server_table(summary, m["server"]["where"])
    print(
        f"\nload average at start {m['loadavg_start'][0]:.2f}, at end "
        f"{m['loadavg_end'][0]:.2f} (other work on the machine skews every column)"
    )
    for note in res.notes:
        print(f"note: {note}")
    if args.json:
        out = {
            "machine": m,
            "notes": res.notes,
            "summary": summary,
            "loop_tok_s": res.loop_tok_s,
            "troop": [
                {
                    **asdict(r),
                    "tok_s": r.tok_s,
                    "decode_tok_s": r.decode_tok_s,
                    "samples_s": r.samples_s,
                }
                for r in res.troop
            ],
            "cpp": res.cpp,
            "server": [{**asdict(r), "tok_s": r.tok_s} for r in res.server],
        }
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
