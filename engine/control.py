"""Thread-safe handles a UI or signal handler uses to steer a live run."""

from __future__ import annotations

import threading


class RunControl:
    """Pause, resume, cancel and raise the budget of a run from any thread.

    The sampling loop polls it between decode steps, so every request takes effect within
    one step (tens of milliseconds on a CPU).
    """

    def __init__(self, budget: int) -> None:
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._running.set()
        self._cancelled = threading.Event()
        self._budget = budget  # samples per problem the run aims at

    @property
    def budget(self) -> int:
        with self._lock:
            return self._budget

    def raise_budget(self, samples: int) -> None:
        """Aim for `samples` per problem; lowering is ignored (stored samples stay)."""
        with self._lock:
            self._budget = max(self._budget, samples)

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def cancel(self) -> None:
        self._cancelled.set()
        self._running.set()  # wake a paused loop so it can see the cancellation

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def wait_while_paused(self) -> None:
        while not self._running.wait(0.1):
            pass
