"""A worker process's own state: troop's configuration, the pipes to troop, its namespaces."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any


class Worker:
    """One worker process's state: its configuration and the pipes to troop."""

    def __init__(self, config: dict[str, Any], reply_fd: int, request_fd: int) -> None:
        self.config = config
        self.reply_fd = reply_fd  # where results go to troop
        self.request_fd = request_fd  # where jobs come from; EOF means troop is gone
        self.job_uid: int | None = config.get("job_uid")  # uid jobs run as when troop is root
        self.namespaces = False  # whether each job gets its own PID/mount/IPC namespace
        self.ns_flags = 0  # unshare(2) flags for a job's namespaces
        self.entries: dict[str, Callable[[Any], Any]] = {}
        self.pid = os.getpid()

    def resolve(self, entry: str) -> Callable[[Any], Any]:
        """The trusted function named "module:function", imported in the worker once."""
        fn = self.entries.get(entry)
        if fn is None:
            module_name, _, attr = entry.partition(":")
            if not module_name or not attr:
                raise ValueError(f"entry {entry!r} is not of the form 'module:function'")
            fn = getattr(importlib.import_module(module_name), attr)
            self.entries[entry] = fn
        return fn
