"""Running untrusted code: a warm pool of worker processes that fork one isolated child per job.

troop's side: `pool` (Sandbox, the pool), `process` (one worker process: its start and pipes),
`tiers` (bwrap or rlimits), `jobs` (Job, Limits, JobResult). The worker's side: `worker` (the
process troop starts), `job` (one job: fork, watch, clean up), `child` (inside the job's
processes), `outcomes`, `reaper`, `namespaces`, `linux`, `state`; between them, `wire`.
`untrusted` is for entries that run a sample's code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from troop.verifiers.sandbox.jobs import Job, JobResult, Limits
    from troop.verifiers.sandbox.outcomes import classify_exception, cpu_seconds
    from troop.verifiers.sandbox.pool import Sandbox
    from troop.verifiers.sandbox.process import WORKER_MARKER
    from troop.verifiers.sandbox.tiers import TIERS, bwrap_problem
    from troop.verifiers.sandbox.untrusted import UntrustedProcess, spawn_untrusted

__all__ = [
    "TIERS",
    "WORKER_MARKER",
    "Job",
    "JobResult",
    "Limits",
    "Sandbox",
    "UntrustedProcess",
    "bwrap_problem",
    "classify_exception",
    "cpu_seconds",
    "spawn_untrusted",
]

# Each public name's module, imported on first use: every worker process imports this package
# on its way to `worker`, and must not pay for the pool (threads, subprocess) it never uses.
_HOMES = {
    "TIERS": "tiers",
    "WORKER_MARKER": "process",
    "Job": "jobs",
    "JobResult": "jobs",
    "Limits": "jobs",
    "Sandbox": "pool",
    "UntrustedProcess": "untrusted",
    "bwrap_problem": "tiers",
    "classify_exception": "outcomes",
    "cpu_seconds": "outcomes",
    "spawn_untrusted": "untrusted",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
