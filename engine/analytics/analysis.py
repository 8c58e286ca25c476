"""Every number troop shows about a session, computed from the session store in one place:
the TUI, `troop report` and the exports all read the `Analysis` that `analyse()` returns."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

from troop.engine.analytics import backtest, cost, fits, passk, selection
from troop.engine.analytics.backtest import Backtest
from troop.engine.analytics.results import (
    Analysis,
    Comparison,
    Fits,
    Judged,
    ProblemRow,
    Refused,
    SessionInfo,
    VerifierRef,
)
from troop.engine.analytics.results_cost import Cost, CostAxes, Electricity, PerSolved
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
from troop.engine.analytics.results_selection import FalsePositives, Selection
from troop.engine.storage import queries
from troop.engine.storage.session import Session, tests_digest
from troop.verifiers.answers import normalize

#: Formats whose samples end in a final answer, so selection without a verifier applies.
ANSWER_FORMATS = ("arithmetic", "gsm8k", "math")
#: The cheap verifier that runs only the examples a prompt shows (HumanEval's docstrings).
VISIBLE_VERIFIER = "python-examples"
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


@dataclass
class _Problem:
    """One problem's samples and verdicts, as the analysis needs them."""

    problem_id: str
    format: str
    prompt_tokens: int
    data: dict[str, Any]
    indices: list[int] = field(default_factory=list)  # sample indices, ascending
    temperatures: list[float] = field(default_factory=list)  # per sample
    completion_tokens: list[int] = field(default_factory=list)  # per sample
    logprobs: list[float] = field(default_factory=list)  # per sample, summed nats
    texts: list[str] = field(default_factory=list)  # per sample completion
    statuses: list[str | None] = field(default_factory=list)  # per sample; None: unverified
    # Per sample: the canonical answer its verdict recorded (math-answer's `key`, by which
    # answers math-verify calls equal vote together); None: no verdict or none recorded.
    keys: list[str | None] = field(default_factory=list)
    reference_key: str | None = None  # the expected answer's canonical form, when recorded


def _load(session: Session, verifier: VerifierRef | None) -> list[_Problem]:
    problems = {
        p.problem_id: _Problem(p.problem_id, p.format, p.prompt_tokens, p.data)
        for p in session.problems()
    }
    digests = {pid: tests_digest(p.data) for pid, p in problems.items()}
    statuses: dict[tuple[str, int], str] = {}
    keys: dict[tuple[str, int], str | None] = {}
    with session.lock:  # verdicts and samples read together, between the run's writes
        if verifier is not None:
            rows = queries.verdict_rows(session, verifier.name, verifier.version)
            current = [v for v in rows if digests.get(v.problem_id) == v.tests_digest]
            statuses = {(v.problem_id, v.sample_index): v.status for v in current}
            keys = {(v.problem_id, v.sample_index): v.key for v in current}
            for v in current:
                if v.expected_key is not None:
                    problems[v.problem_id].reference_key = v.expected_key
        samples = queries.sample_briefs(session)
    for sample in samples:
        p = problems[sample.problem_id]
        p.indices.append(sample.sample_index)
        p.temperatures.append(sample.temperature)
        p.completion_tokens.append(sample.completion_tokens)
        p.logprobs.append(sample.logprob)
        p.texts.append(sample.text)
        key = (sample.problem_id, sample.sample_index)
        p.statuses.append(statuses.get(key))
        p.keys.append(keys.get(key))
    return list(problems.values())


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
    problems = _load(session, verifier)
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
        cost=_cost_section(session, problems, info, coverage, options),
        selection=_selection_section(problems, coverage, options),
        false_positives=_false_positive_section(session, problems, verifier),
    )


def _session_info(
    session: Session,
    verifier: VerifierRef | None,
    problems: list[_Problem],
    coverage_only: bool,
) -> SessionInfo:
    config: dict[str, Any] = session.meta("config") or {}
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
        model=config.get("model", {}),
        backend=config.get("backend", {"name": "llamacpp"}),
        problem_set=config.get("problem_set", {}),
        sampling=config.get("sampling", {}),
        seed=config.get("seed"),
        prompt_format={k: v for k, v in config.get("prompt_format", {}).items() if k != "template"},
        verifier=verifier,
        tier=tiers[0].tier if tiers else None,
        runs=tuple(runs),
        samples=sum(len(p.indices) for p in problems),
        verified=sum(s is not None for p in problems for s in p.statuses),
    )


def _problem_row(p: _Problem) -> ProblemRow:
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


def _solved_vs_spent(session: Session, problems: list[_Problem]) -> SolvedVsSpent:
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


def _by_temperature(problems: list[_Problem], coverage_only: bool) -> tuple[TemperatureCurve, ...]:
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


def _backtest_section(verified: list[_Problem], cov: Coverage) -> Backtest | Refused:
    """Both laws fitted on the first n/16, n/8 and n/4 samples of every problem, forecasting
    the coverage observed at n (engine/analytics/backtest.py)."""
    if isinstance(cov, SolvedVsSpent):
        return Refused("coverage-only session: its budget followed the verdicts")
    if isinstance(cov, CoverageRefused):
        return Refused(cov.reason)
    if not cov.k:
        return Refused("no verified samples yet")
    n = cov.n_min
    why = backtest.refusal(n)
    if why:
        return Refused(why)
    ms = backtest.prefixes(n)
    passes = backtest.prefix_passes([_pass_positions(p) for p in verified], [m for _, m in ms])
    return backtest.backtest(
        n,
        passes,
        ms,
        float(cov.pass_at_k[-1]),
        float(cov.low[-1]),
        float(cov.high[-1]),
        float(cov.confidence),
    )


def _pass_positions(p: _Problem) -> np.ndarray:
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


def _cost_section(
    session: Session,
    problems: list[_Problem],
    info: SessionInfo,
    cov: Coverage,
    options: AnalysisOptions,
) -> Cost:
    model = info.model
    shape = (
        cost.Shape(int(model["n_params"]), int(model["n_layer"]), int(model["n_embd"]))
        if all(model.get(k) for k in ("n_params", "n_layer", "n_embd"))
        else None
    )
    with session.lock:  # one moment's counts, between the run's writes
        evals = queries.prompt_eval_tokens(session)
        rows = queries.sample_tokens(session)
        spans = queries.run_spans(session)
    prompt_tokens = sum(evals)
    wall = float(sum(max(0.0, s.ended_at - s.started_at) for s in spans))
    completion = int(sum(r.completion_tokens for r in rows))
    billed_input = int(sum(r.prompt_tokens for r in rows))
    samples = len(rows)
    per_problem: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in rows:
        per_problem[r.problem_id].append((r.prompt_tokens, r.completion_tokens))
    costs = []
    total_flops = 0.0
    for p in problems:
        pairs = per_problem.get(p.problem_id, [])
        starts = np.array([a for a, _ in pairs], dtype=np.float64)
        counts = np.array([b for _, b in pairs], dtype=np.float64)
        comp_flops = float(cost.flops(shape, starts, counts).sum()) if shape and pairs else 0.0
        costs.append(cost.ProblemCost(p.prompt_tokens, len(pairs), float(counts.sum()), comp_flops))
        total_flops += comp_flops
    if shape is not None:
        # Prompts are evaluated once per shared evaluation, at context positions 0..len-1.
        lengths = np.array(evals, dtype=np.float64)
        total_flops += float(cost.flops(shape, np.zeros(len(lengths)), lengths).sum())
    api = {
        name: cost.usd(price, billed_input, completion) for name, price in options.prices.items()
    }
    kwh = options.watts * wall / 3.6e6
    solved = sum(1 for p in problems if "pass" in p.statuses)
    tokens = prompt_tokens + completion
    flops = total_flops if shape else None
    usd = next(iter(api.values()), None)
    axis_price = next(iter(options.prices))
    mean_n = samples / len(problems) if problems else 0
    axes: CostAxes | None = None
    if isinstance(cov, PassAtK) and cov.k:
        axes = cost.cost_axes(
            np.asarray(cov.k, dtype=np.int64),
            costs,
            shape,
            wall / mean_n if mean_n else 0.0,
            options.prices[axis_price],
        )
    elif isinstance(cov, SolvedVsSpent) and cov.k:
        # Samples spent per problem: the session's totals, scaled to each point's spending.
        scale = np.asarray(cov.k, dtype=np.float64) / max(mean_n, 1e-12)

        def scaled(total: float | None) -> tuple[float | None, ...]:
            return tuple(float(total * s) if total is not None else None for s in scale)

        axes = CostAxes(
            samples=cov.k,
            tokens=tuple(float(tokens * s) for s in scale),
            wall_s=tuple(float(wall * s) for s in scale),
            usd=scaled(usd),
            flops=scaled(flops),
            from_totals=True,
        )

    def per_solved(total: float | None) -> float | None:
        return total / solved if solved and total is not None else None

    return Cost(
        prompt_tokens=int(prompt_tokens),
        completion_tokens=completion,
        billed_input_tokens=billed_input,
        samples=samples,
        wall_s=wall,
        samples_per_s=samples / wall if wall else None,
        tokens_per_s=completion / wall if wall else None,
        flops=flops,
        usd_api=api,
        axis_price=axis_price,
        prices=options.prices,
        electricity=Electricity(
            watts=options.watts, kwh=kwh, kwh_usd=options.kwh_usd, usd=kwh * options.kwh_usd
        ),
        solved=solved,
        per_solved=PerSolved(
            samples=per_solved(samples),
            tokens=per_solved(tokens),
            wall_s=per_solved(wall),
            flops=per_solved(flops),
            usd=per_solved(usd),
            kwh=per_solved(kwh),
        ),
        axes=axes,
    )


def _selection_section(
    problems: list[_Problem], cov: Coverage, options: AnalysisOptions
) -> Selection | Refused:
    """maj@k, best-of-k by mean token log-probability, Best-of-Majority and the guessing
    baseline, next to coverage, for answer-style problems (those end in a final answer)."""
    formats = {p.format for p in problems}
    if not formats <= set(ANSWER_FORMATS):
        return Refused(
            "selection without a verifier needs answer-style problems "
            f"({', '.join(ANSWER_FORMATS)}), not {', '.join(sorted(formats))}"
        )
    if isinstance(cov, SolvedVsSpent):
        return Refused("coverage-only session: its budget followed the verdicts")
    if isinstance(cov, CoverageRefused):
        return Refused(cov.reason)
    if not cov.k:
        return Refused("no verified samples yet")
    chosen = []
    for p in problems:
        judged = [i for i, s in enumerate(p.statuses) if s is not None]
        if not judged:
            continue
        texts = [p.texts[i] for i in judged]
        scores = np.array(
            [
                p.logprobs[i] / p.completion_tokens[i] if p.completion_tokens[i] else np.nan
                for i in judged
            ]
        )
        reference = p.data.get("answer")
        if p.reference_key is not None:
            # Verdicts that recorded canonical answers: samples vote as the verifier judged
            # them equal (math-answer: math-verify's equivalence), not by their strings.
            answers = [p.keys[i] for i in judged]
            reference = p.reference_key
        else:
            answers = selection.answers_for(p.format, texts)
            reference = normalize(str(reference)) if reference is not None else None
        chosen.append(
            selection.ProblemAnswers(
                problem_id=p.problem_id,
                answers=answers,
                correct=np.array([p.statuses[i] == "pass" for i in judged]),
                score=scores,
                reference=reference,
            )
        )
    ks = np.asarray(cov.k, dtype=np.int64)
    return Selection(
        curves=selection.selection_curves(
            chosen, ks, replicates=options.selection_replicates, seed=options.seed
        ),
        guessing=selection.guessing_baseline(chosen, ks),
    )


def _false_positive_section(
    session: Session, problems: list[_Problem], verifier: VerifierRef | None
) -> FalsePositives | Refused:
    """The cheap visible verifier (a prompt's own examples) against the session's verifier,
    when both judged the samples."""
    if verifier is None:
        return Refused("no verifier has judged this session")
    if verifier.name == VISIBLE_VERIFIER:
        return Refused(f"{VISIBLE_VERIFIER} is this session's own verifier")
    digests = {p.problem_id: tests_digest(p.data) for p in problems}

    def statuses(name: str, version: str) -> dict[tuple[str, int], str]:
        return {
            (v.problem_id, v.sample_index): v.status
            for v in queries.verdict_rows(session, name, version)
            if digests.get(v.problem_id) == v.tests_digest
        }

    visible = queries.leading_version(session, VISIBLE_VERIFIER)
    if visible is None:
        return Refused(
            f"no {VISIBLE_VERIFIER} verdicts: run `troop verify SESSION "
            f"--verifier {VISIBLE_VERIFIER}` to measure the cheap verifier"
        )
    return selection.false_positive_rate(
        statuses(VISIBLE_VERIFIER, visible),
        statuses(verifier.name, verifier.version),
        visible_name=VISIBLE_VERIFIER,
        hidden_name=verifier.name,
    )


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
        labels=tuple(a.session.model.get("name") or a.session.path for a in analyses),
        same_problems=all(x == ids[0] for x in ids),
        common_problems=len(common),
        solved=tuple(len(s & common) for s in solved),
        solved_only_by=tuple(only),
        solved_by_all=tuple(sorted(set.intersection(*solved) & common)) if solved else (),
        analyses=tuple(analyses),
    )
