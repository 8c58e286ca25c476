"""The analysis's cost section: what a session's samples cost in tokens, time, FLOPs and money."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from troop.engine.analytics import cost
from troop.engine.analytics.problem_samples import ProblemSamples
from troop.engine.analytics.results import SessionInfo
from troop.engine.analytics.results_cost import Cost, CostAxes, Electricity, PerSolved
from troop.engine.analytics.results_curves import Coverage, PassAtK, SolvedVsSpent
from troop.engine.storage import queries
from troop.engine.storage.session import Session


def cost_section(
    session: Session,
    problems: list[ProblemSamples],
    info: SessionInfo,
    cov: Coverage,
    *,
    prices: dict[str, dict[str, float]],
    watts: float,
    kwh_usd: float,
) -> Cost:
    """Tokens, wall time, FLOPs and money of the session: in total, per solved problem and
    along the coverage curve (`prices`: USD per million input/output tokens by name, the first
    pricing the curve; `watts`: W drawn while sampling; `kwh_usd`: USD per kWh)."""
    model = info.model
    shape = (
        cost.Shape(model.n_params, model.n_layer, model.n_embd)
        if model.n_params and model.n_layer and model.n_embd
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
    api = {name: cost.usd(price, billed_input, completion) for name, price in prices.items()}
    kwh = watts * wall / 3.6e6
    solved = sum(1 for p in problems if "pass" in p.statuses)
    tokens = prompt_tokens + completion
    flops = total_flops if shape else None
    usd = next(iter(api.values()), None)
    axis_price = next(iter(prices))
    mean_n = samples / len(problems) if problems else 0
    axes: CostAxes | None = None
    if isinstance(cov, PassAtK) and cov.k:
        axes = cost.cost_axes(
            np.asarray(cov.k, dtype=np.int64),
            costs,
            shape,
            wall / mean_n if mean_n else 0.0,
            prices[axis_price],
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
        prices=prices,
        electricity=Electricity(watts=watts, kwh=kwh, kwh_usd=kwh_usd, usd=kwh * kwh_usd),
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
