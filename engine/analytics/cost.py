"""What coverage costs: tokens, wall time, FLOPs from the GGUF's shape, API dollars, electricity."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from troop.engine.analytics.results_cost import CostAxes
from troop.errors import TroopError

FloatArray = NDArray[np.float64]

#: Illustrative API price tiers, USD per million tokens. They are not any provider's price
#: list: pass --prices FILE with your provider's current numbers.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "small-api": {"input": 0.10, "output": 0.40},
    "mid-api": {"input": 1.00, "output": 4.00},
    "large-api": {"input": 5.00, "output": 15.00},
}
DEFAULT_WATTS = 65.0  # a workstation CPU package under load, W
DEFAULT_KWH_USD = 0.30  # electricity, USD per kWh


def load_prices(path: Path) -> dict[str, dict[str, float]]:
    """A price table file: JSON `{"name": {"input": usd_per_M, "output": usd_per_M}, ...}`."""
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise TroopError(f"{path}: cannot read price table ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise TroopError(f"{path}:{exc.lineno}: price table is not JSON ({exc.msg})") from None
    return check_prices(raw, str(path))


def check_prices(raw: Any, where: str = "prices") -> dict[str, dict[str, float]]:
    if not isinstance(raw, dict) or not raw:
        raise TroopError(f"{where}: expected a non-empty object of name -> {{input, output}}")
    out: dict[str, dict[str, float]] = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict) or set(entry) != {"input", "output"}:
            raise TroopError(
                f"{where}: {name!r} needs exactly 'input' and 'output' USD per million tokens"
            )
        values = {k: entry[k] for k in ("input", "output")}
        for k, v in values.items():
            if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                raise TroopError(f"{where}: {name}.{k} must be a non-negative number, got {v!r}")
        out[str(name)] = {k: float(v) for k, v in values.items()}
    return out


@dataclass(frozen=True)
class Shape:
    """The model's size as the FLOP estimate needs it (from the GGUF metadata)."""

    n_params: int  # parameters
    n_layer: int  # transformer blocks
    d_model: int  # embedding width


def flops(shape: Shape, start: FloatArray, count: FloatArray) -> FloatArray:
    """FLOPs to process `count` tokens at context positions start..start+count-1: per token
    2·N_params for the weights plus 2·n_layer·n_ctx·d_model for attention over the n_ctx
    tokens before it (Kaplan et al.'s forward-pass estimate)."""
    start = np.asarray(start, dtype=np.float64)
    count = np.asarray(count, dtype=np.float64)
    positions = count * start + count * (count - 1) / 2  # sum of n_ctx over the tokens
    attention = 2.0 * shape.n_layer * shape.d_model * positions
    return np.asarray(2.0 * shape.n_params * count + attention)


@dataclass(frozen=True)
class ProblemCost:
    """Measured cost of one problem's samples."""

    prompt_tokens: int  # its prompt length, tokens (evaluated once per shared evaluation)
    samples: int  # samples drawn
    completion_tokens: float  # their total completion tokens
    completion_flops: float  # FLOPs of those completions


def usd(prices: dict[str, float], input_tokens: float, output_tokens: float) -> float:
    return (prices["input"] * input_tokens + prices["output"] * output_tokens) / 1e6


def cost_axes(
    k: NDArray[np.int64],
    problems: list[ProblemCost],
    shape: Shape | None,
    wall_per_round: float,
    prices: dict[str, float],
) -> CostAxes:
    """The cost of drawing k samples for every problem, per axis: each problem's mean cost
    per sample measured so far, times k, plus its prompt once (API billing: once per sample,
    since each sample is its own request)."""
    kf = np.asarray(k, dtype=np.float64)
    prompt = sum(p.prompt_tokens for p in problems)
    per_sample_tokens = sum(p.completion_tokens / p.samples for p in problems if p.samples)
    per_sample_flops = sum(p.completion_flops / p.samples for p in problems if p.samples)
    usd = (prices["input"] * kf * prompt + prices["output"] * kf * per_sample_tokens) / 1e6
    flops_at_k: tuple[float | None, ...]
    if shape is not None:
        prompt_flops = sum(
            float(flops(shape, np.zeros(1), np.array([p.prompt_tokens]))[0]) for p in problems
        )
        flops_at_k = _floats(prompt_flops + kf * per_sample_flops)
    else:
        flops_at_k = (None,) * len(kf)  # unknown model shape (e.g. a remote server)
    return CostAxes(
        samples=_floats(kf),
        tokens=_floats(prompt + kf * per_sample_tokens),
        wall_s=_floats(kf * wall_per_round),
        usd=_floats(usd),
        flops=flops_at_k,
    )


def _floats(values: FloatArray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)
