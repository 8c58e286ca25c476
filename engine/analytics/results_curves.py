"""Coverage curves and the laws fitted on them, as frozen dataclasses whose `to_json()` is
the analysis' JSON key for key."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

# --- coverage ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PassAtK:
    """Coverage against k: the mean over problems of the unbiased pass@k, with its band."""

    k: tuple[int, ...]  # samples per problem, up to the fewest any verified problem has
    pass_at_k: tuple[float, ...]  # coverage at each k (fraction of problems)
    low: tuple[float, ...]  # lower edge of the bootstrap band at each k
    high: tuple[float, ...]  # upper edge of the bootstrap band at each k
    confidence: float  # level of that band
    n_min: int  # fewest verified samples of any verified problem
    n_max: int  # most verified samples of any problem
    problems: int  # problems with a verified sample, the ones averaged over
    unverified_problems: int  # problems without one, left out
    solved: int  # problems with a passing sample

    def to_json(self) -> dict[str, Any]:
        return {
            "k": list(self.k),
            "pass_at_k": list(self.pass_at_k),
            "low": list(self.low),
            "high": list(self.high),
            "confidence": self.confidence,
            "n_min": self.n_min,
            "n_max": self.n_max,
            "problems": self.problems,
            "unverified_problems": self.unverified_problems,
            "solved": self.solved,
            "coverage_only": False,
        }


@dataclass(frozen=True)
class SolvedVsSpent:
    """A coverage-only session's curve: share of problems solved against samples spent per
    problem, in the order they were drawn (pass@k for k > 1 would be biased there)."""

    UNIT = "samples spent per problem"
    NOTE = (
        "budget followed the verdicts: pass@k for k > 1 would be biased, so only "
        "solved-vs-samples-spent is shown"
    )

    k: tuple[float, ...]  # samples spent so far, per problem (thinned to ~400 points)
    pass_at_k: tuple[float, ...]  # share of problems solved by then
    problems: int  # problems in the session
    solved: int  # problems with a passing sample
    n_min: int  # fewest samples of any problem
    n_max: int  # most samples of any problem

    @property
    def low(self) -> tuple[float, ...]:
        """No band: the curve is counted, not estimated."""
        return self.pass_at_k

    @property
    def high(self) -> tuple[float, ...]:
        return self.pass_at_k

    def to_json(self) -> dict[str, Any]:
        return {
            "k": list(self.k),
            "pass_at_k": list(self.pass_at_k),
            "low": list(self.low),
            "high": list(self.high),
            "k_unit": self.UNIT,
            "coverage_only": True,
            "problems": self.problems,
            "solved": self.solved,
            "n_min": self.n_min,
            "n_max": self.n_max,
            "confidence": None,
            "note": self.NOTE,
        }


@dataclass(frozen=True)
class CoverageRefused:
    """No coverage yet (nothing verified): why, with empty curves for the presenters."""

    reason: str  # one line for a person
    problems: int  # problems in the session

    def to_json(self) -> dict[str, Any]:
        return {
            "refused": self.reason,
            "k": [],
            "pass_at_k": [],
            "low": [],
            "high": [],
            "coverage_only": False,
            "problems": self.problems,
        }


Coverage = PassAtK | SolvedVsSpent | CoverageRefused


@dataclass(frozen=True)
class TemperatureCurve:
    """Coverage of the samples drawn at one temperature."""

    temperature: float  # sampling temperature
    k: tuple[int, ...]  # samples per problem, up to the fewest judged at this temperature
    pass_at_k: tuple[float, ...]  # coverage at each k (fraction of problems)
    problems: int  # problems with a judged sample at this temperature
    solved: tuple[str, ...]  # ids of the problems solved at this temperature

    def to_json(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "k": list(self.k),
            "pass_at_k": list(self.pass_at_k),
            "problems": self.problems,
            "solved": list(self.solved),
        }


# --- fitted laws -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HorizonForecast:
    """A fitted law's coverage at a multiple of the budget drawn, with its bootstrap interval."""

    k: float  # samples per problem
    horizon: int  # k as a multiple of the budget drawn
    coverage: float  # the law's coverage at k (fraction of problems)
    low: float | None  # lower edge of the interval; None: too few refits converged
    high: float | None  # upper edge of the interval; None likewise

    def to_json(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "horizon": self.horizon,
            "coverage": self.coverage,
            "low": self.low,
            "high": self.high,
        }


@dataclass(frozen=True)
class LawCurve:
    """A fitted law drawn from k = 1 to the farthest horizon, with its bootstrap band."""

    k: tuple[float, ...]  # samples per problem, log-spaced
    coverage: tuple[float, ...]  # the law's coverage at each k
    low: tuple[float | None, ...]  # lower edge of the band at each k; None: unknown
    high: tuple[float | None, ...]  # upper edge of the band at each k; None: unknown

    def to_json(self) -> dict[str, Any]:
        return {
            "k": list(self.k),
            "coverage": list(self.coverage),
            "low": list(self.low),
            "high": list(self.high),
        }


@dataclass(frozen=True)
class TargetBudget:
    """The budget a fitted law says a target coverage needs, with its bootstrap interval."""

    target: float  # the coverage aimed at (fraction of problems)
    k: float | None  # samples per problem; None: the law never reaches the target
    low: float | None  # lower edge of the interval; None: unknown
    high: float | None  # upper edge of the interval; None: unknown

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "k": self.k, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class LawFit(ABC):
    """What both fitted laws report: their error, their forecasts and their curve."""

    rmse: float  # error against the observed coverage at the points fitted on
    rmse_curve: float  # error at the power law's fit points, the same k for both laws
    k_from: int  # smallest k of those points
    k_to: int  # largest k of those points
    replicates: int  # bootstrap refits that converged
    forecast: tuple[HorizonForecast, ...]  # coverage at 10x and 100x the budget drawn
    curve: LawCurve  # the law from k = 1 to the farthest horizon
    budget_for: tuple[TargetBudget, ...]  # samples needed for each target coverage

    @abstractmethod
    def parameters(self) -> dict[str, float]:
        """The law's parameters by name, as the JSON lists them first."""

    def to_json(self) -> dict[str, Any]:
        return {
            **self.parameters(),
            "rmse": self.rmse,
            "rmse_curve": self.rmse_curve,
            "k_from": self.k_from,
            "k_to": self.k_to,
            "replicates": self.replicates,
            "forecast": [f.to_json() for f in self.forecast],
            "curve": self.curve.to_json(),
            "budget_for": [b.to_json() for b in self.budget_for],
        }


@dataclass(frozen=True)
class PowerLawFit(LawFit):
    """log coverage(k) = a * k**b, fitted on the coverage curve (engine/analytics/fits.py)."""

    a: float  # log-coverage scale: log coverage(1) = a
    b: float  # exponent: how fast -log coverage falls with k

    def parameters(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b}


@dataclass(frozen=True)
class BetaBinomialFit(LawFit):
    """Per-problem success rates drawn from Beta(alpha, beta), fitted on the verdict counts."""

    alpha: float  # Beta shape for successes: small means most problems are rarely solved
    beta: float  # Beta shape for failures

    def parameters(self) -> dict[str, float]:
        return {"alpha": self.alpha, "beta": self.beta}
