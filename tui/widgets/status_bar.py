"""The status bar: live rates and progress from the observer, spend from the analysis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.content import Content
from textual.widgets import Static

from troop.engine.numbers import MISSING, count, dollars, duration, rate, si
from troop.tui.observer import Snapshot

if TYPE_CHECKING:
    from troop.engine.analytics.results import Analysis


@dataclass(frozen=True)
class RunState:
    """What the live screen knows about the run, beyond the observer's counters."""

    phase: str  # loading, sampling, paused, stopping, completed, cancelled, failed, browsing,
    # following (another process samples the session; the screen follows its rows)
    tier: str | None = None  # sandbox tier verifying samples; None: not verifying
    temperatures: tuple[float, ...] | None = None  # temperatures for the remaining samples
    stored: int = 0  # samples in the session (from the analysis when not sampling)
    target: int = 0  # samples the budget asks for (budget x problems)


PHASE_COLOUR = {
    "sampling": "$success",
    "paused": "$warning",
    "stopping": "$warning",
    "failed": "$error",
    "cancelled": "$warning",
    "loading": "$accent",
    "following": "$accent",
}


class StatusBar(Static):
    """One line: phase, tokens/s, samples/s, done / budget, ETA, tokens, FLOPs, dollars, tier.

    Rates, progress and ETA are live counts of engine events; tokens, FLOPs and dollars are the
    analysis' cost section (the one implementation of every cost), refreshed with the plot.
    Dollars are the analysis' axis price (`cost.axis_price`, an API price per token).
    """

    _shown: Content | None = None  # what the bar shows now

    def render_status(
        self, state: RunState, snap: Snapshot | None, analysis: Analysis | None
    ) -> None:
        cost = analysis.cost if analysis is not None else None
        tokens = flops = usd = None
        if cost is not None:
            tokens = cost.prompt_tokens + cost.completion_tokens
            flops = cost.flops
            # The price tier the plot's dollar axis uses; usd_api is keyed by tier name.
            usd = cost.usd_api.get(cost.axis_price) if cost.axis_price else None
        live = snap is not None and state.phase in ("sampling", "paused", "stopping")
        done = state.stored
        target = state.target
        if live and snap is not None:
            done = snap.stored
            target = snap.budget * snap.problems or target
        colour = PHASE_COLOUR.get(state.phase, "$foreground")
        shown = snap if live else None  # rates and ETA only mean something while sampling
        rates = (
            f"{rate(shown.tokens_per_s if shown else None, 'tok/s')} · "
            f"{rate(shown.samples_per_s if shown else None, 'samples/s')}"
        )
        eta = duration(shown.eta_s) if shown else MISSING
        parts = [
            Content.from_markup(f"[bold {colour}]$phase[/]", phase=state.phase),
            Content(rates),
            Content(f"{count(done)}/{count(target)} samples · ETA {eta}"),
            Content(f"{count(tokens)} tok · {si(flops)} FLOPs · {dollars(usd)}"),
            Content(f"sandbox {state.tier or 'off'}"),
        ]
        if state.temperatures:
            parts.append(Content("T " + ",".join(f"{t:g}" for t in state.temperatures)))
        content = Content(" │ ").join(parts)
        if content != self._shown:  # one line of fixed height: no layout pass needed
            self._shown = content
            self.update(content, layout=False)
