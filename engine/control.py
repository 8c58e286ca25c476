"""Thread-safe handles a UI or signal handler uses to steer a live run."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from troop.engine.work import PromptSpec


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
        # Temperatures for samples not yet started (None: the session's); each sample
        # records the temperature it was drawn at, so a change mid-run stays visible.
        self._temperatures: tuple[float, ...] | None = None
        self._added: list[PromptSpec] = []  # problems added mid-run, not yet scheduled
        # Told of every change: (what, value), what being pause, resume, cancel, budget,
        # temperatures or prompts. The llama.cpp worker's feeder forwards them at once.
        self._listeners: list[Callable[[str, Any], None]] = []

    def subscribe(self, listener: Callable[[str, Any], None]) -> Callable[[], None]:
        """Call `listener(what, value)` after every change; returns the unsubscribe."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _tell(self, what: str, value: Any = None) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(what, value)

    @property
    def budget(self) -> int:
        with self._lock:
            return self._budget

    def raise_budget(self, samples: int) -> None:
        """Aim for `samples` per problem; lowering is ignored (stored samples stay)."""
        with self._lock:
            self._budget = max(self._budget, samples)
        self._tell("budget", samples)

    @property
    def temperatures(self) -> tuple[float, ...] | None:
        """The temperatures (cycled by sample index) for samples not yet started, if changed."""
        with self._lock:
            return self._temperatures

    def set_temperatures(self, temperatures: Sequence[float] | None) -> None:
        """Draw the remaining samples at these temperatures; None goes back to the session's."""
        with self._lock:
            self._temperatures = tuple(temperatures) if temperatures else None
        self._tell("temperatures", self._temperatures)

    def add_prompts(self, prompts: Sequence[PromptSpec]) -> None:
        """Hand problems added while the run is live to its scheduler."""
        with self._lock:
            self._added.extend(prompts)
        self._tell("prompts")

    def take_prompts(self) -> list[PromptSpec]:
        """The problems added since the last call (the scheduler takes them once)."""
        with self._lock:
            added, self._added = self._added, []
        return added

    def pause(self) -> None:
        self._running.clear()
        self._tell("pause")

    def resume(self) -> None:
        self._running.set()
        self._tell("resume")

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def cancel(self) -> None:
        self._cancelled.set()
        self._running.set()  # wake a paused loop so it can see the cancellation
        self._tell("cancel")

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def wait_while_paused(self) -> None:
        while not self._running.wait(0.1):
            pass
