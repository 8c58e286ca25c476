"""What a run was asked to do: its settings, what each one left unset defaults to, their
checks, and where a new session is stored."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from troop.engine import model_facts
from troop.engine.policy import PolicySpec
from troop.errors import TroopError

#: Defaults for a new session; a resumed session keeps what it was created with.
DEFAULT_PROBLEMS = "arithmetic"
DEFAULT_SAMPLES = 10
DEFAULT_SEED = 0

#: The prompt format a new session asks for unless --prompt-format says otherwise (the sampling
#: settings' defaults are SamplingParams' own).
DEFAULT_PROMPT_FORMAT = "auto"

#: Slots decoded together unless --parallel says otherwise.
DEFAULT_PARALLEL = 16
#: Measured with bench/sampling.py on a 2-core CPU: a unified cache wins at few slots (no
#: per-sample buffer copy), a split one at many (attention does not scan every slot's cells).
UNIFIED_UP_TO = 8


@dataclass(frozen=True)
class RunSettings:
    """What `troop run` was asked for; None means "the default, or what the session has"."""

    session: Path | None = None  # session file; None: a new file in sessions_dir()
    model: str | None = None  # registry name or GGUF path
    problems: str | None = None  # built-in set, problem file or folder, or hf:NAME[:CONFIG]:SPLIT
    fields: tuple[tuple[str, str], ...] = ()  # --fields: (troop's field, the data's column)
    limit: int | None = None  # keep the first N problems
    problem_ids: tuple[str, ...] = ()  # keep only these problems
    samples: int | None = None  # budget: samples per problem
    temperatures: tuple[float, ...] | None = None  # cycled by sample index
    top_k: int | None = None  # top-k cut, 0 disables
    top_p: float | None = None  # nucleus mass, 1.0 disables
    min_p: float | None = None  # min-p cut, 0.0 disables
    max_tokens: int | None = None  # completion budget per sample, tokens
    seed: int | None = None  # session seed; each sample's seed derives from it
    prompt_format: str | None = None  # auto, chat or raw
    parallel: int = DEFAULT_PARALLEL  # sampling slots decoded together
    gpu_layers: int = -1  # layers offloaded to the GPU; -1 all (when built with a GPU backend)
    threads: int | None = None  # CPU threads; None: all cores
    kv_cache: str = "auto"  # "split" (a KV buffer per slot), "unified" (one shared pool), or
    # "auto": unified up to UNIFIED_UP_TO slots, split beyond (see bench/sampling.py)
    logprobs: bool = True  # record each sample's log-probability (costs ~1% of throughput)
    sampler_device: str = "auto"  # where sampler chains run: "host", "backend" (in llama.cpp's
    # decode graph) or "auto" (backend when layers are offloaded to a GPU)
    policy: PolicySpec = PolicySpec()  # budget policy: fixed, until-solved, until-consistent
    backend: str | None = None  # "llamacpp" or "openai"; None: the session's, else llamacpp
    base_url: str | None = None  # openai: the server's API root (None: the session's)
    api_key_env: str | None = None  # openai: environment variable holding the API key
    n_per_request: int = 1  # openai: samples per request (the server's `n`), when it honours it
    cpu_extra_buffers: str = "auto"  # llama.cpp's CPU extra buffer types (AMX and other weight
    # repacking): "on", "off", or "auto" (on, unless this machine is known to fault with them)


def check_settings(settings: RunSettings) -> None:
    """Refuse bad numbers and names before anything is loaded or created."""

    def positive(name: str, value: int | None) -> None:
        if value is not None and value <= 0:
            raise TroopError(f"{name} must be a positive integer, got {value}")

    positive("--samples", settings.samples)
    positive("--limit", settings.limit)
    positive("--max-tokens", settings.max_tokens)
    positive("--parallel", settings.parallel)
    positive("--threads", settings.threads)
    settings.policy.check()
    for t in settings.temperatures or ():
        if not t >= 0 or t == float("inf"):  # also catches NaN
            raise TroopError(f"--temperature must be a finite number >= 0, got {t}")
    if settings.top_p is not None and not 0 < settings.top_p <= 1:
        raise TroopError(f"--top-p must be in (0, 1], got {settings.top_p}")
    if settings.min_p is not None and not 0 <= settings.min_p < 1:
        raise TroopError(f"--min-p must be in [0, 1), got {settings.min_p}")
    if settings.top_k is not None and settings.top_k < 0:
        raise TroopError(f"--top-k must be >= 0, got {settings.top_k}")
    if settings.prompt_format not in (None, "auto", "chat", "raw"):
        raise TroopError(f"--prompt-format must be auto, chat or raw, not {settings.prompt_format}")
    if settings.kv_cache not in ("auto", "split", "unified"):
        raise TroopError(f"--kv-cache must be auto, split or unified, not {settings.kv_cache}")
    if settings.cpu_extra_buffers not in ("auto", "on", "off"):
        raise TroopError(
            f"--cpu-extra-buffers must be auto, on or off, not {settings.cpu_extra_buffers}"
        )
    model_facts.choose_sampler_device(settings.sampler_device, offloaded=False)


def kv_unified(settings: RunSettings) -> bool:
    """Whether this run uses one KV pool for all slots."""
    if settings.kv_cache == "auto":
        return settings.parallel <= UNIFIED_UP_TO
    return settings.kv_cache == "unified"


def sessions_dir() -> Path:
    """Where new sessions go unless --session says otherwise."""
    if env := os.environ.get("TROOP_SESSIONS"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "troop" / "sessions"


def new_session_path(model: str, problems: str) -> Path:
    """A new session file in sessions_dir(), named by time, model and problem set."""
    stem = Path(problems).stem.replace(".jsonl", "") if "/" in problems else problems
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = sessions_dir() / f"{stamp}-{model}-{stem}"
    path = base.with_suffix(".sqlite")
    n = 1
    while path.exists():
        n += 1
        path = Path(f"{base}-{n}.sqlite")
    return path
