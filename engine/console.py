"""The headless observer: rich progress bars while sampling, a summary table at the end."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from troop.engine.events import (
    Event,
    RunFinished,
    RunStarted,
    SampleFinished,
    SampleVerified,
    TokensDecoded,
)


class ConsoleObserver:
    """Shows samples done / planned, tokens/s and ETA on stderr, refreshed by rich's own
    thread so the sampling loop pays only for counting."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description:9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            refresh_per_second=4,
            transient=False,
        )
        self.task: TaskID | None = None
        self.verify_task: TaskID | None = None
        self.passed = 0  # samples judged pass so far
        self.judged = 0  # samples judged so far
        self.expected = 0  # verdicts to wait for: stored samples submitted for verification
        self.verifying = False  # whether finished samples are being verified
        self.tokens = 0  # completion tokens decoded so far in this run (finished or not)
        self.t0 = time.perf_counter()
        self._last_update = 0.0

    def expect_verdicts(self, n: int) -> None:
        """`n` more samples were sent for verification (e.g. left unjudged by a crash)."""
        self.verifying = True
        self.expected += n
        self._verify_bar()

    def _verify_bar(self) -> None:
        if not self.verifying or self.expected == 0:
            return
        if self.verify_task is None:
            self.verify_task = self.progress.add_task("verifying", total=None, rate="")
            self.progress.start()
        self.progress.update(
            self.verify_task, completed=self.judged, total=self.expected, rate=f"{self.passed} pass"
        )

    def _rate(self) -> str:
        dt = max(time.perf_counter() - self.t0, 1e-9)
        return f"{self.tokens / dt:7.1f} tok/s"

    def on_event(self, event: Event) -> None:
        if isinstance(event, TokensDecoded):
            self.tokens += 1
            now = time.perf_counter()
            if self.task is not None and now - self._last_update > 0.25:
                self._last_update = now
                self.progress.update(self.task, rate=self._rate())
        elif isinstance(event, SampleFinished):
            if self.task is not None:
                self.progress.update(self.task, advance=1, rate=self._rate())
            if self.verifying:
                self.expected += 1
                self._verify_bar()
        elif isinstance(event, SampleVerified):
            self.judged += 1
            self.passed += event.verdict.passed
            self._verify_bar()
        elif isinstance(event, RunStarted):
            self.t0 = time.perf_counter()
            self.progress.start()
            self.task = self.progress.add_task("sampling", total=event.planned, rate="")
        elif isinstance(event, RunFinished) and not self.verifying:
            self.progress.stop()

    def close(self) -> None:
        self.progress.stop()


def summary_table(
    *,
    status: str,
    session: str,
    samples: int,
    stored: int,
    target: int,
    wall_s: float,
    completion_tokens: int,
    prompt_tokens: int,
    finish_reasons: dict[str, int],
    solved: tuple[int, int, dict[str, int]] | None = None,
) -> Table:
    """The table `troop run --headless` prints when it ends."""
    table = Table(title=f"run {status}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("session", session)
    table.add_row("samples this run", str(samples))
    table.add_row("samples stored / budget", f"{stored} / {target}")
    table.add_row("completion tokens", str(completion_tokens))
    table.add_row("prompt tokens (shared)", str(prompt_tokens))
    table.add_row("wall time", f"{wall_s:.1f} s")
    if wall_s > 0:
        table.add_row("samples/s", f"{samples / wall_s:.2f}")
        table.add_row("tokens/s (completion)", f"{completion_tokens / wall_s:.1f}")
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(finish_reasons.items())) or "-"
    table.add_row("finish reasons", reasons)
    if solved is not None:
        n_solved, n_problems, statuses = solved
        table.add_row("problems solved (any pass)", f"{n_solved} / {n_problems}")
        table.add_row(
            "verdicts this run", ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) or "-"
        )
    return table
