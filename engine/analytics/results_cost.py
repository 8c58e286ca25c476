"""What a session's coverage cost, in tokens, time, FLOPs, dollars and energy, as typed values
whose `to_json()` is the report's JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CostAxes:
    """The cost of drawing k samples for every problem, one value per coverage k, on each axis
    a plot can put coverage against."""

    samples: tuple[float, ...]  # samples per problem
    tokens: tuple[float, ...]  # prompt and completion tokens over all problems
    wall_s: tuple[float, ...]  # wall time, seconds
    usd: tuple[float | None, ...]  # API dollars at the axis price tier
    flops: tuple[float | None, ...]  # FLOPs; None where the model's shape is unknown
    # True: the session's totals scaled by samples spent (a coverage-only session, whose k is
    # samples spent per problem); False: each problem's measured cost per sample times k.
    # The JSON has always listed the two kinds' axes in different orders.
    from_totals: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "samples": list(self.samples),
            "tokens": list(self.tokens),
            "wall_s": list(self.wall_s),
        }
        money, compute = ("usd", list(self.usd)), ("flops", list(self.flops))
        out.update((compute, money) if self.from_totals else (money, compute))
        return out


@dataclass(frozen=True)
class Electricity:
    """The energy sampling drew and its price."""

    watts: float  # power drawn while sampling, W (an option, not a measurement)
    kwh: float  # energy over the runs' wall time, kWh
    kwh_usd: float  # electricity price, USD per kWh
    usd: float  # kwh x kwh_usd, USD

    def to_json(self) -> dict[str, Any]:
        return {"watts": self.watts, "kwh": self.kwh, "kwh_usd": self.kwh_usd, "usd": self.usd}


@dataclass(frozen=True)
class PerSolved:
    """The session's totals divided by the problems it solved; None where nothing is solved
    or the total is unknown."""

    samples: float | None  # samples drawn per problem solved
    tokens: float | None  # prompt (once per evaluation) and completion tokens per problem solved
    wall_s: float | None  # wall seconds per problem solved
    flops: float | None  # FLOPs per problem solved
    usd: float | None  # API dollars at the first price tier per problem solved
    kwh: float | None  # energy per problem solved, kWh

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "tokens": self.tokens,
            "wall_s": self.wall_s,
            "flops": self.flops,
            "usd": self.usd,
            "kwh": self.kwh,
        }


@dataclass(frozen=True)
class Cost:
    """The analysis' cost section: what the samples drawn so far cost, and the cost axes."""

    prompt_tokens: int  # prompt tokens evaluated, once per shared evaluation
    completion_tokens: int  # tokens generated over all samples
    billed_input_tokens: int  # prompt tokens an API would bill: once per sample (request)
    samples: int  # samples drawn
    wall_s: float  # the runs' wall time, seconds
    samples_per_s: float | None  # samples per wall second; None without wall time
    tokens_per_s: float | None  # completion tokens per wall second; None likewise
    flops: float | None  # FLOPs of prompts and completions; None: the model's shape is unknown
    usd_api: Mapping[str, float]  # API dollars for these tokens, by price tier name
    axis_price: str  # the price tier the "usd" axis and per-solved dollars use
    prices: Mapping[str, Mapping[str, float]]  # USD per million input/output tokens, by tier
    electricity: Electricity  # energy drawn while sampling and its price
    solved: int  # problems with a passing sample
    per_solved: PerSolved  # totals per problem solved
    axes: CostAxes | None  # cost at each coverage k; None until coverage has a k

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "billed_input_tokens": self.billed_input_tokens,
            "samples": self.samples,
            "wall_s": self.wall_s,
            "samples_per_s": self.samples_per_s,
            "tokens_per_s": self.tokens_per_s,
            "flops": self.flops,
            "usd_api": dict(self.usd_api),
            "axis_price": self.axis_price,
            "prices": {name: dict(price) for name, price in self.prices.items()},
            "electricity": self.electricity.to_json(),
            "solved": self.solved,
            "per_solved": self.per_solved.to_json(),
            "axes": self.axes.to_json() if self.axes is not None else {},
        }
