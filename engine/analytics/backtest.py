"""Backtesting the forecasts: fit both laws on the first m samples of every problem, forecast
coverage at the full budget n, and compare with the coverage observed at n."""

# Samples of one problem are independent draws, so the first m of them are a fair session
# with budget m: its forecast at n can be checked against what the other n - m samples show.

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special

from troop.engine.analytics import fits, passk

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Budget fractions backtested: forecasts from 1/16, 1/8 and 1/4 of the samples.
FRACTIONS = (16, 8, 4)
#: Fewest samples per problem a prefix must have: the power law needs coverage at 3 or more
#: k, and fewer samples say little about the shape of the curve.
MIN_PREFIX = 4
LAWS = ("power_law", "beta_binomial")


@dataclass(frozen=True)
class Forecast:
    """One law fitted on the first m samples per problem, forecasting coverage at n."""

    law: str  # power_law or beta_binomial
    m: int  # samples per problem the law was fitted on
    fraction: int  # m is n / fraction (rounded down)
    coverage: float | None  # forecast coverage at n; None when the fit was refused
    error: float | None  # |forecast - observed| at n, in coverage units (0..1)
    inside: bool | None  # whether the forecast lies in the observed value's interval
    refused: str | None  # why the law could not be fitted on this prefix

    def to_json(self) -> dict[str, Any]:
        return {
            "law": self.law,
            "m": self.m,
            "fraction": self.fraction,
            "coverage": self.coverage,
            "error": self.error,
            "inside": self.inside,
            "refused": self.refused,
        }


@dataclass(frozen=True)
class Backtest:
    """Every law's forecast from every prefix, against the coverage observed at n."""

    n: int  # the full budget: samples per problem (the smallest n over problems)
    observed: float  # coverage at n from all the samples
    low: float  # lower edge of its bootstrap interval
    high: float  # upper edge of its bootstrap interval
    confidence: float  # level of that interval
    forecasts: tuple[Forecast, ...]  # by m ascending, power law first

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "observed": self.observed,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "forecasts": [f.to_json() for f in self.forecasts],
        }

    def summary(self, fraction: int = 8) -> str | None:
        """One line: how far each law's forecast from 1/fraction of the budget (or the
        nearest fraction backtested) missed the observed coverage."""
        fractions = {f.fraction for f in self.forecasts}
        if not fractions:
            return None
        nearest = min(fractions, key=lambda x: (abs(x - fraction), x))
        parts: list[str] = []
        for f in (f for f in self.forecasts if f.fraction == nearest):
            name = fits.LAW_NAMES[f.law]
            if not parts:
                name += f" from 1/{nearest} of the budget"
            if f.error is None:
                parts.append(f"{name} not fitted ({f.refused})")
            else:
                missed = "by" if parts and "missed" in parts[0] else "missed by"
                parts.append(f"{name} {missed} {f.error:.2f}")
        return "; ".join(parts)


def prefixes(n: int) -> list[tuple[int, int]]:
    """(fraction, m) for each backtested prefix of a budget of n: m = n / fraction, kept where
    it has at least MIN_PREFIX samples."""
    out: list[tuple[int, int]] = []
    for fraction in FRACTIONS:
        m = n // fraction
        if m >= MIN_PREFIX and all(m != mm for _, mm in out):
            out.append((fraction, m))
    return out


def refusal(n: int) -> str | None:
    """Why a budget of n samples per problem is too small to backtest, or None."""
    if not prefixes(n):
        return (
            f"needs at least {MIN_PREFIX * FRACTIONS[-1]} verified samples per problem "
            f"(a quarter of them to fit on), has {n}"
        )
    return None


def prefix_passes(pass_positions: Sequence[IntArray], ms: Sequence[int]) -> IntArray:
    """Passes among each problem's first m judged samples (len(ms) x problems), from the
    positions (0-based, in sample-index order among its judged samples) of its passes."""
    out = np.zeros((len(ms), len(pass_positions)), dtype=np.int64)
    limits = np.asarray(ms, dtype=np.int64)
    for j, positions in enumerate(pass_positions):
        out[:, j] = np.searchsorted(positions, limits, side="left")
    return out


def prefix_coverage(m: int, c: IntArray, ks: IntArray) -> FloatArray:
    """Coverage at each k in ks of problems that all have m samples, c passes each: the mean of
    pass@k = 1 - C(m-c, k) / C(m, k). Log-gamma differences give the ratio at the fit's k alone
    (the product form of engine/analytics/passk.py walks every k up to m); at m = 10,000 they
    are exact to about 1e-11, far below what a fit notices."""
    values, counts = np.unique(np.asarray(c, dtype=np.int64), return_counts=True)
    keep = values > 0
    values, counts = values[keep].astype(np.float64), counts[keep]
    k = np.asarray(ks, dtype=np.float64)[None, :]
    v = values[:, None]
    lg = special.gammaln
    with np.errstate(invalid="ignore"):
        log_miss = lg(m - v + 1) - lg(m - v - k + 1) - lg(m + 1) + lg(m - k + 1)
    # Beyond k = m - c every k-subset holds a pass (gammaln of a non-positive integer is inf).
    covered = np.where(k <= m - v, -np.expm1(log_miss), 1.0)
    return np.asarray(counts @ covered / len(c), dtype=np.float64)


def backtest(
    n: int,
    passes: IntArray,
    ms: Sequence[tuple[int, int]],
    observed: float,
    low: float,
    high: float,
    confidence: float,
) -> Backtest:
    """Fit both laws on each prefix (`passes[i]`: every problem's passes in its first
    `ms[i][1]` samples) and compare their forecasts at n with the observed coverage. Fits
    are point fits: the interval that matters is the observed value's, already computed."""
    out: list[Forecast] = []
    for (fraction, m), c in zip(ms, passes, strict=True):
        nm = np.full(len(c), m, dtype=np.int64)
        ks = passk.k_grid(m)
        curve = prefix_coverage(m, c, ks)
        empty = np.empty((0, len(ks)))
        for law in LAWS:
            try:
                model: fits.PowerLaw | fits.BetaBinomial = (
                    fits.fit_power_law(ks, curve, empty)
                    if law == "power_law"
                    else fits.fit_beta_binomial(nm, c, ks, curve, np.empty((0, len(c))))
                )
            except fits.FitRefused as exc:
                out.append(Forecast(law, m, fraction, None, None, None, str(exc)))
                continue
            value = float(model.predict(np.array([float(n)]))[0])
            out.append(
                Forecast(
                    law, m, fraction, value, abs(value - observed), bool(low <= value <= high), None
                )
            )
    out.sort(key=lambda f: (f.m, LAWS.index(f.law)))
    return Backtest(n, observed, low, high, confidence, tuple(out))
