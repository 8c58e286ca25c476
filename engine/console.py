"""The headless observer: rich progress bars while sampling, a summary table at the end."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
)
from rich.table import Table
from rich.text import Text

from troop.engine.events import (
    Event,
    RunFinished,
    RunStarted,
    SampleFinished,
    SampleVerified,
    TokensDecoded,
)
from troop.engine.numbers import count, duration, rate


class DurationColumn(ProgressColumn):
    """Time elapsed, or left at the current speed, written as every other troop duration."""

    max_refresh = 0.5  # the ETA follows a noisy speed estimate: redraw it at most twice a second

    def __init__(self, remaining: bool) -> None:
        super().__init__()
        self.remaining = remaining  # True: time left at the current speed; False: time taken

    def render(self, task: Task) -> Text:
        if self.remaining:
            return Text(duration(task.time_remaining), style="progress.remaining")
        taken = task.finished_time if task.finished else task.elapsed
        return Text(duration(taken), style="progress.elapsed")


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
            DurationColumn(remaining=False),
            TextColumn("ETA"),
            DurationColumn(remaining=True),
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
            self.verify_task,
            completed=self.judged,
            total=self.expected,
            rate=f"{count(self.passed)} pass",
        )

    def _rate(self) -> str:
        dt = max(time.perf_counter() - self.t0, 1e-9)
        # Right-aligned to a fixed width, so the columns after it do not shift as it changes.
        return f"{rate(self.tokens / dt, 'tok/s'):>11}"

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
    table.add_row("samples this run", count(samples))
    table.add_row("samples stored / budget", f"{count(stored)} / {count(target)}")
    table.add_row("completion tokens", count(completion_tokens))
    table.add_row("prompt tokens (shared)", count(prompt_tokens))
    table.add_row("wall time", duration(wall_s))
    if wall_s > 0:
        table.add_row("sampling rate", rate(samples / wall_s, "samples/s"))
        table.add_row("decoding rate (completion)", rate(completion_tokens / wall_s, "tok/s"))
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(finish_reasons.items())) or "-"
    table.add_row("finish reasons", reasons)
    if solved is not None:
        n_solved, n_problems, statuses = solved
        table.add_row("problems solved (any pass)", f"{count(n_solved)} / {count(n_problems)}")
        table.add_row(
            "verdicts this run", ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) or "-"
        )
    return table
