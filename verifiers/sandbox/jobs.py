"""What the sandbox is asked to run and what it answers: a job, its limits and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Limits:
    """Resource limits of one job."""

    wall_s: float = 10.0  # wall-clock limit per job, seconds
    cpu_s: float = 10.0  # CPU-time limit (RLIMIT_CPU, whole seconds, rounded up), seconds
    memory_bytes: int = 1 << 30  # address-space limit (RLIMIT_AS), bytes
    file_bytes: int = 16 << 20  # largest file the job may write (RLIMIT_FSIZE), bytes
    open_files: int = 64  # open file descriptors (RLIMIT_NOFILE)
    processes: int = 64  # processes and threads (RLIMIT_NPROC); per uid, and the job's uid
    # (or user namespace) is its own under bwrap or when troop runs as root
    output_bytes: int = 64 << 10  # cap on captured stdout+stderr, bytes


@dataclass(frozen=True)
class Job:
    """One piece of work for the sandbox."""

    entry: str  # "module:function", trusted code importable in the worker; called in a fresh
    # forked child as function(payload) and must return a JSON-serialisable value
    payload: dict[str, Any]  # JSON-serialisable argument
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class JobResult:
    """How a job ended, with everything it printed."""

    outcome: str  # "returned" | "error" (the entry raised; `error` holds the traceback) |
    # "timeout" | "resource" (memory/file/process limits) | "crash" (the child died without
    # returning: signal, os._exit, killed) | "infra_error" (the sandbox itself failed)
    value: Any  # the entry's return value when outcome == "returned", else None
    error: str  # traceback or reason, "" if none
    output: str  # captured stdout+stderr of the child and all it started, capped while reading
    # (decoded as UTF-8 with replacement)
    truncated: bool  # whether the output hit the cap
    duration_s: float  # seconds from the fork to the end of the clean-up
    tier: str  # "bwrap" or "rlimits"
