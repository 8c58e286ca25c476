"""Every number troop shows about a session, computed from the session store in one place:
the TUI, `troop report` and the exports all read the `Analysis` that `analyse()` returns."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

import numpy as np

from troop.engine.analytics import backtest, cost, fits, passk
from troop.engine.analytics.backtest import Backtest
from troop.engine.analytics.problem_samples import ProblemSamples, load_problems
from troop.engine.analytics.results import (
    Analysis,
    Comparison,
    Fits,
    Judged,
    ProblemRow,
    Refused,
    SessionInfo,
    VerifierRef,
    measured,
)
from troop.engine.analytics.results_curves import (
    BetaBinomialFit,
    Coverage,
    CoverageRefused,
    HorizonForecast,
    LawCurve,
    PassAtK,
    PowerLawFit,
    SolvedVsSpent,
    TargetBudget,
    TemperatureCurve,
)
from troop.engine.analytics.sections_cost import cost_section
from troop.engine.analytics.sections_selection import false_positive_section, selection_section
from troop.engine.storage import queries
from troop.engine.storage.session import Session

#: Forecast horizons, as multiples of the current budget.
HORIZONS = (10, 100)


@dataclass(frozen=True)
class AnalysisOptions:
    """What the analysis is asked for; the defaults are what the TUI and reports use."""

    verifier: str | None = None  # verifier whose verdicts count; None: the session's own
    confidence: float = 0.95  # level of bootstrap bands and intervals
    bootstrap: int = 1000  # bootstrap replicates for the coverage band (resampling problems)
    fit_bootstrap: int = 200  # of those, how many are refitted for forecast intervals
    seed: int = 0  # seeds the bootstrap and subset draws: same session, same numbers
    prices: dict[str, dict[str, float]] = field(default_factory=lambda: dict(cost.DEFAULT_PRICES))
    # USD per million input/output tokens, by name; the first one prices the "usd" axis
    watts: float = cost.DEFAULT_WATTS  # power drawn while sampling, W
    kwh_usd: float = cost.DEFAULT_KWH_USD  # electricity price, USD per kWh
    targets: tuple[float, ...] = (0.5, 0.9)  # coverages whose required budget is forecast
    selection_replicates: int = 200  # random subsets per k for maj@k and best-of-k


def _verifier_of(session: Session, options: AnalysisOptions) -> VerifierRef | None:
    """The verifier (name, version) whose verdicts count."""
    meta: dict[str, str] | None = session.meta("verifier")
    if options.verifier is None or (meta and meta["name"] == options.verifier):
        return VerifierRef(meta["name"], meta["version"]) if meta else None
    version = queries.leading_version(session, options.verifier)
    return None if version is None else VerifierRef(options.verifier, version)


def analyse_path(path: Path, options: AnalysisOptions | None = None) -> Analysis:
    with Session.open(path) as session:
        return analyse(session, options)


def analyse(session: Session, options: AnalysisOptions | None = None) -> Analysis:
    """The whole analysis of a session; its `to_json()` is the report's JSON (see the
    README's report schema)."""
    options = options or AnalysisOptions()
    verifier = _verifier_of(session, options)
    problems = load_problems(session, verifier)
    coverage_only = bool(session.meta("coverage_only", False))
    info = _session_info(session, verifier, problems, coverage_only)
    verified = [p for p in problems if any(s is not None for s in p.statuses)]
    n = np.array([sum(s is not None for s in p.statuses) for p in verified], dtype=np.int64)
    c = np.array([sum(s == "pass" for s in p.statuses) for p in verified], dtype=np.int64)
    coverage: Coverage
    if coverage_only:
        coverage, boot = _solved_vs_spent(session, problems), None
    else:
        coverage, boot = _coverage_section(n, c, len(problems), options)
    return Analysis(
        session=info,
        problems=tuple(_problem_row(p) for p in problems),
        statuses=dict(Counter(s for p in problems for s in p.statuses if s is not None)),
        coverage=coverage,
        by_temperature=_by_temperature(problems, coverage_only),
        fit=_fit_section(n, c, coverage, boot, options, coverage_only),
        backtest=_backtest_section(verified, coverage),
        cost=cost_section(
            session,
            problems,
            info,
            coverage,
            prices=options.prices,
            watts=options.watts,
            kwh_usd=options.kwh_usd,
        ),
        selection=selection_section(
            problems, coverage, replicates=options.selection_replicates, seed=options.seed
        ),
        false_positives=false_positive_section(session, problems, verifier),
    )


def _session_info(
    session: Session,
    verifier: VerifierRef | None,
    problems: list[ProblemSamples],
    coverage_only: bool,
) -> SessionInfo:
    config = session.config()
    with session.lock:
        runs = queries.runs(session)
        tiers = queries.tier_counts(session, verifier.name if verifier else "")
    policy = session.meta("policy") or {"name": "fixed"}
    return SessionInfo(
        path=str(session.path),
        created_at=session.meta("created_at"),
        troop_version=session.meta("troop_version"),
        budget=session.meta("budget"),
        policy=policy.get("name", "fixed") if isinstance(policy, dict) else str(policy),
        policy_settings=policy,
        coverage_only=coverage_only,
        model=config.model,
        backend=config.sampled_by,
        problem_set=config.problem_set,
        sampling=config.sampling,
        seed=config.seed,
        prompt_format=config.prompt_format,
        verifier=verifier,
        tier=tiers[0].tier if tiers else None,
        runs=tuple(runs),
        samples=sum(len(p.indices) for p in problems),
        verified=sum(s is not None for p in problems for s in p.statuses),
    )


def _problem_row(p: ProblemSamples) -> ProblemRow:
    judged = [(i, s) for i, s in zip(p.indices, p.statuses, strict=True) if s is not None]
    correct = sum(s == "pass" for _, s in judged)
    first = min((i for i, s in judged if s == "pass"), default=None)
    by_temp: dict[str, list[int]] = {}  # temperature -> [judged, passed]
    for t, s in zip(p.temperatures, p.statuses, strict=True):
        if s is not None:
            slot = by_temp.setdefault(_temp_key(t), [0, 0])
            slot[0] += 1
            slot[1] += s == "pass"
    means = [lp / nt for lp, nt in zip(p.logprobs, p.completion_tokens, strict=True) if nt > 0]
    return ProblemRow(
        problem_id=p.problem_id,
        format=p.format,
        n=len(p.indices),
        verified=len(judged),
        correct=correct,
        pass_at_1=correct / len(judged) if judged else None,
        first_pass=first,
        status="unverified" if not judged else ("solved" if correct else "unsolved"),
        statuses=dict(Counter(s for _, s in judged)),
        by_temperature={t: Judged(n, passed) for t, (n, passed) in by_temp.items()},
        prompt_tokens=p.prompt_tokens,
        completion_tokens=int(sum(p.completion_tokens)),
        mean_logprob=float(np.mean(means)) if means else None,
    )


def _temp_key(t: float) -> str:
    return f"{t:g}"


def _coverage_section(
    n: np.ndarray, c: np.ndarray, total_problems: int, options: AnalysisOptions
) -> tuple[PassAtK | CoverageRefused, passk.Coverage | None]:
    if len(n) == 0 or n.min() == 0:
        return CoverageRefused("no verified samples yet", total_problems), None
    ks = passk.k_grid(int(n.min()))
    cov = passk.coverage(
        n, c, ks, confidence=options.confidence, replicates=options.bootstrap, seed=options.seed
    )
    section = PassAtK(
        k=tuple(ks.tolist()),
        pass_at_k=tuple(cov.pass_at_k.tolist()),
        low=tuple(cov.low.tolist()),
        high=tuple(cov.high.tolist()),
        confidence=options.confidence,
        n_min=int(n.min()),
        n_max=int(n.max()),
        problems=len(n),
        unverified_problems=total_problems - len(n),
        solved=int((c > 0).sum()),
    )
    return section, cov


def _solved_vs_spent(session: Session, problems: list[ProblemSamples]) -> SolvedVsSpent:
    """For sessions whose budget followed the verdicts: share of problems solved against the
    samples spent per problem (in the order they were drawn), not pass@k."""
    passed = {
        (p.problem_id, i)
        for p in problems
        for i, s in zip(p.indices, p.statuses, strict=True)
        if s == "pass"
    }
    solved: set[str] = set()
    xs, ys = [], []
    for spent, sample in enumerate(queries.drawn_order(session), start=1):
        if (sample.problem_id, sample.sample_index) in passed:
            solved.add(sample.problem_id)
        xs.append(spent / max(1, len(problems)))
        ys.append(len(solved) / max(1, len(problems)))
    # Thin to at most ~400 points, keeping the last.
    step = max(1, len(xs) // 400)
    keep = list(range(0, len(xs), step))
    if xs and keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    return SolvedVsSpent(
        k=tuple(xs[i] for i in keep),
        pass_at_k=tuple(ys[i] for i in keep),
        problems=len(problems),
        solved=len(solved),
        n_min=min((len(p.indices) for p in problems), default=0),
        n_max=max((len(p.indices) for p in problems), default=0),
    )


def _by_temperature(
    problems: list[ProblemSamples], coverage_only: bool
) -> tuple[TemperatureCurve, ...]:
    temps = sorted({_temp_key(t) for p in problems for t in p.temperatures}, key=float)
    if len(temps) < 2 or coverage_only:
        return ()
    out = []
    for t in temps:
        ns, cs, solved = [], [], []
        for p in problems:
            judged = [
                s
                for tt, s in zip(p.temperatures, p.statuses, strict=True)
                if _temp_key(tt) == t and s is not None
            ]
            if judged:
                ns.append(len(judged))
                cs.append(sum(s == "pass" for s in judged))
                if cs[-1]:
                    solved.append(p.problem_id)
        if not ns:
            continue
        ks = passk.k_grid(min(ns))
        curve = passk.curves(np.array(ns), np.array(cs), ks).mean(axis=0)
        out.append(
            TemperatureCurve(
                temperature=float(t),
                k=tuple(ks.tolist()),
                pass_at_k=tuple(curve.tolist()),
                problems=len(ns),
                solved=tuple(solved),
            )
        )
    return tuple(out)


def _fit_section(
    n: np.ndarray,
    c: np.ndarray,
    cov: Coverage,
    boot: passk.Coverage | None,
    options: AnalysisOptions,
    coverage_only: bool,
) -> Fits:
    if coverage_only:
        reason = Refused("coverage-only session: its budget followed the verdicts")
        return Fits(reason, reason, None)
    if boot is None or not isinstance(cov, PassAtK):
        reason = Refused("no verified samples yet")
        return Fits(reason, reason, None)
    ks = np.asarray(cov.k, dtype=np.int64)
    observed = np.asarray(cov.pass_at_k)
    reps = boot.replicates[: options.fit_bootstrap]
    power_law: fits.PowerLaw | Refused
    beta_binomial: fits.BetaBinomial | Refused
    try:
        power_law = fits.fit_power_law(ks, observed, reps)
    except fits.FitRefused as exc:
        power_law = Refused(str(exc))
    try:
        # The same problem draws as the coverage band's, so band and intervals agree.
        beta_binomial = fits.fit_beta_binomial(
            n, c, ks, observed, boot.weights[: options.fit_bootstrap]
        )
    except fits.FitRefused as exc:
        beta_binomial = Refused(str(exc))
    power = (
        power_law if isinstance(power_law, Refused) else _forecast(power_law, ks, observed, options)
    )
    beta = (
        beta_binomial
        if isinstance(beta_binomial, Refused)
        else _forecast(beta_binomial, ks, observed, options)
    )
    # The lower error over the whole curve; on a tie, the power law.
    fitted = [
        (name, law.rmse_curve)
        for name, law in (("power_law", power), ("beta_binomial", beta))
        if not isinstance(law, Refused)
    ]
    better = min(fitted, key=lambda f: f[1])[0] if fitted else None
    return Fits(power, beta, better)


def _backtest_section(verified: list[ProblemSamples], cov: Coverage) -> Backtest | Refused:
    """Both laws fitted on the first n/16, n/8 and n/4 samples of every problem, forecasting
    the coverage observed at n (engine/analytics/backtest.py)."""
    curve = measured(cov)
    if isinstance(curve, Refused):
        return curve
    n = curve.n_min
    why = backtest.refusal(n)
    if why:
        return Refused(why)
    ms = backtest.prefixes(n)
    passes = backtest.prefix_passes([_pass_positions(p) for p in verified], [m for _, m in ms])
    return backtest.backtest(
        n,
        passes,
        ms,
        float(curve.pass_at_k[-1]),
        float(curve.low[-1]),
        float(curve.high[-1]),
        float(curve.confidence),
    )


def _pass_positions(p: ProblemSamples) -> np.ndarray:
    """Where the problem's passes sit among its judged samples (0-based, index order)."""
    if "pass" not in p.statuses:
        return np.empty(0, dtype=np.int64)
    judged = p.statuses if None not in p.statuses else [s for s in p.statuses if s is not None]
    return np.array([i for i, s in enumerate(judged) if s == "pass"], dtype=np.int64)


@overload
def _forecast(
    model: fits.PowerLaw, ks: np.ndarray, observed: np.ndarray, options: AnalysisOptions
) -> PowerLawFit: ...


@overload
def _forecast(
    model: fits.BetaBinomial, ks: np.ndarray, observed: np.ndarray, options: AnalysisOptions
) -> BetaBinomialFit: ...


def _forecast(
    model: fits.PowerLaw | fits.BetaBinomial,
    ks: np.ndarray,
    observed: np.ndarray,
    options: AnalysisOptions,
) -> PowerLawFit | BetaBinomialFit:
    budget = int(ks.max())
    tail = (1 - options.confidence) / 2 * 100
    # Both models are judged on the same k: the power law's log-spaced fit points.
    use = fits.fit_points(ks, observed)
    use = use if use.any() else np.ones(len(ks), dtype=bool)
    rmse_curve = float(np.sqrt(np.mean((model.predict(ks[use]) - observed[use]) ** 2)))

    def band(k: np.ndarray) -> tuple[list[float], list[float]]:
        reps = model.predict_replicates(k)
        good = ~np.isnan(reps).any(axis=1)
        if good.sum() < 10:
            return [math.nan] * len(k), [math.nan] * len(k)
        low, high = np.percentile(reps[good], [tail, 100 - tail], axis=0)
        return low.tolist(), high.tolist()

    horizons = np.array([budget * h for h in HORIZONS], dtype=np.float64)
    h_low, h_high = band(horizons)
    curve_k = np.unique(np.rint(np.logspace(0, np.log10(budget * HORIZONS[-1]), 60)))
    c_low, c_high = band(curve_k)
    targets = []
    for t in options.targets:
        reps = model.budget_replicates(t)
        good = reps[np.isfinite(reps)]
        lo, hi = (
            np.percentile(good, [tail, 100 - tail]).tolist()
            if len(good) >= 10
            else [math.nan, math.nan]
        )
        k_t = model.budget_for(t)
        targets.append(TargetBudget(t, _finite(k_t), _finite(lo), _finite(hi)))
    forecast = tuple(
        HorizonForecast(
            k=float(k),
            horizon=h,
            coverage=float(model.predict(np.array([k]))[0]),
            low=_finite(lo),
            high=_finite(hi),
        )
        for k, h, lo, hi in zip(horizons, HORIZONS, h_low, h_high, strict=True)
    )
    curve = LawCurve(
        k=tuple(curve_k.tolist()),
        coverage=tuple(model.predict(curve_k).tolist()),
        low=tuple(_finite(v) for v in c_low),
        high=tuple(_finite(v) for v in c_high),
    )
    common = (
        model.rmse,
        rmse_curve,
        int(ks[use].min()),
        int(ks[use].max()),
        int((~np.isnan(model.replicates).any(axis=1)).sum()),
        forecast,
        curve,
        tuple(targets),
    )
    if isinstance(model, fits.PowerLaw):
        return PowerLawFit(*common, a=model.a, b=model.b)
    return BetaBinomialFit(*common, alpha=model.alpha, beta=model.beta)


def _finite(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def compare(analyses: Sequence[Analysis]) -> Comparison:
    """Sessions on the same problems side by side: which problems each solves that the
    others do not, and their curves on shared axes (the curves are in each analysis)."""
    ids = [{p.problem_id for p in a.problems} for a in analyses]
    common = set.intersection(*ids) if ids else set()
    solved = [{p.problem_id for p in a.problems if p.status == "solved"} for a in analyses]
    only = []
    for i, s in enumerate(solved):
        others = set().union(*(solved[j] for j in range(len(solved)) if j != i))
        only.append(tuple(sorted((s - others) & common)))
    return Comparison(
        sessions=tuple(a.session.path for a in analyses),
        labels=tuple(a.session.model.name or a.session.path for a in analyses),
        same_problems=all(x == ids[0] for x in ids),
        common_problems=len(common),
        solved=tuple(len(s & common) for s in solved),
        solved_only_by=tuple(only),
        solved_by_all=tuple(sorted(set.intersection(*solved) & common)) if solved else (),
        analyses=tuple(analyses),
    )
