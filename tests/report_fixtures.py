"""Hand-built analyses for the report renderers' unit tests, made of the typed results."""

from __future__ import annotations

from troop.engine.analytics.backtest import Backtest, Forecast
from troop.engine.analytics.results import (
    Analysis,
    Fits,
    Judged,
    ProblemRow,
    Refused,
    SessionInfo,
    VerifierRef,
)
from troop.engine.analytics.results_cost import Cost, CostAxes, Electricity, PerSolved
from troop.engine.analytics.results_curves import (
    HorizonForecast,
    LawCurve,
    PassAtK,
    PowerLawFit,
    SolvedVsSpent,
    TargetBudget,
)
from troop.engine.analytics.results_selection import Guessing, Selection, SelectionCurves
from troop.engine.storage.config import (
    BackendConfig,
    ModelIdentity,
    ProblemSetConfig,
    PromptFormatSetting,
    SamplingConfig,
)
from troop.engine.storage.queries import RunRecord

#: The fake session's budget: samples per problem, and the coverage curve's k.
KS = (1, 2, 3, 4)


def fake_analysis(problem_id: str = "P/1") -> Analysis:
    """Two problems, four samples each, one solved: a band on the coverage curve, both laws
    and the backtest refused, cost axes for every k, no selection and one verifier."""
    return Analysis(
        session=_session(),
        problems=(
            ProblemRow(
                problem_id=problem_id,
                format="humaneval",
                n=4,
                verified=4,
                correct=1,
                pass_at_1=0.25,
                first_pass=2,
                status="solved",
                statuses={"pass": 1, "fail": 3},
                by_temperature={"0.8": Judged(n=4, correct=1)},
                prompt_tokens=25,
                completion_tokens=100,
                mean_logprob=-0.5,
            ),
            ProblemRow(
                problem_id="P/2",
                format="humaneval",
                n=4,
                verified=4,
                correct=0,
                pass_at_1=0.0,
                first_pass=None,
                status="unsolved",
                statuses={"timeout": 4},
                by_temperature={"0.8": Judged(n=4, correct=0)},
                prompt_tokens=25,
                completion_tokens=90,
                mean_logprob=None,
            ),
        ),
        statuses={"pass": 1, "fail": 3, "timeout": 4},
        coverage=PassAtK(
            k=KS,
            pass_at_k=(0.125, 0.25, 0.375, 0.5),
            low=(0.0, 0.0, 0.0, 0.0),
            high=(0.25, 0.5, 0.75, 1.0),
            confidence=0.95,
            n_min=4,
            n_max=4,
            problems=2,
            unverified_problems=0,
            solved=1,
        ),
        by_temperature=(),
        fit=Fits(Refused("too few points"), Refused("too few points"), better=None),
        backtest=Refused(
            "needs at least 16 verified samples per problem (a quarter of them to fit on), has 4"
        ),
        cost=_cost(),
        selection=Refused("not an answer format"),
        false_positives=Refused("one verifier only"),
    )


def _session() -> SessionInfo:
    return SessionInfo(
        path="/x/s.troop",
        created_at=1.7e9,
        troop_version="0.1.0",
        budget=4,
        policy="fixed",
        policy_settings={"name": "fixed"},
        coverage_only=False,
        model=ModelIdentity(
            name="m",
            sha256="ab" * 32,
            architecture="llama",
            general_name="M",
            file_type="3",
            description="llama Q4_1",
            n_params=134515008,
            n_layer=30,
            n_embd=576,
            n_ctx_train=8192,
            file_bytes=1000,
        ),
        backend=BackendConfig("llamacpp"),
        problem_set=ProblemSetConfig("set", "humaneval", "file"),
        sampling=SamplingConfig((0.8,), top_k=40, top_p=0.95, min_p=0.0, max_tokens=64),
        seed=0,
        prompt_format=PromptFormatSetting("chat"),
        verifier=VerifierRef(name="python-tests", version="1"),
        tier="bwrap",
        runs=(RunRecord(1, 1.7e9, 1.7e9 + 2.0, "completed", {}),),
        samples=8,
        verified=8,
    )


def _cost() -> Cost:
    return Cost(
        prompt_tokens=50,
        completion_tokens=190,
        billed_input_tokens=200,
        samples=8,
        wall_s=2.0,
        samples_per_s=4.0,
        tokens_per_s=95.0,
        flops=1e11,
        usd_api={"small-api": 0.0001},
        axis_price="small-api",
        prices={"small-api": {"input": 0.1, "output": 0.4}},
        electricity=Electricity(watts=65.0, kwh=3.6e-5, kwh_usd=0.3, usd=1e-5),
        solved=1,
        per_solved=PerSolved(
            samples=8.0, tokens=240.0, wall_s=2.0, flops=1e11, usd=0.0001, kwh=3.6e-5
        ),
        axes=CostAxes(
            samples=tuple(float(k) for k in KS),
            tokens=(70.0, 120.0, 170.0, 240.0),
            wall_s=(0.5, 1.0, 1.5, 2.0),
            usd=(1e-5, 2e-5, 3e-5, 4e-5),
            flops=(1e10, 2e10, 3e10, 4e10),
        ),
    )


def selection() -> Selection:
    """Majority vote, best-of-k and Best-of-Majority below coverage; guessing never right."""
    return Selection(
        curves=SelectionCurves(
            k=KS,
            coverage=(0.125, 0.25, 0.375, 0.5),
            majority=(0.125, 0.125, 0.25, 0.25),
            best_of_k=(0.125, 0.2, 0.25, 0.25),
            best_of_majority=(0.125, 0.15, 0.25, 0.3),
            bom_share=0.5,
            replicates=100,
            seed=0,
            problems=2,
            inconsistent=(),
        ),
        guessing=Guessing(
            k=KS, coverage=(0.0, 0.0, 0.0, 0.0), problems=2, no_reference=0, distinct_answers=5
        ),
    )


def solved_vs_spent() -> SolvedVsSpent:
    """A coverage-only session's curve: the share solved as samples are spent."""
    return SolvedVsSpent(
        k=(0.5, 1.0, 2.0, 4.0),
        pass_at_k=(0.125, 0.25, 0.375, 0.5),
        problems=2,
        solved=1,
        n_min=4,
        n_max=4,
    )


def backtest() -> Backtest:
    """Both laws fitted on 1/8 of a budget of 64, the power law refused on 1/4."""
    return Backtest(
        n=64,
        observed=0.5,
        low=0.4,
        high=0.6,
        confidence=0.95,
        forecasts=(
            Forecast("power_law", 8, 8, 0.46, 0.04, True, None),
            Forecast("beta_binomial", 8, 8, 0.51, 0.01, True, None),
            Forecast("power_law", 16, 4, None, None, None, "no problem solved yet"),
        ),
    )


def power_law() -> PowerLawFit:
    """log coverage(k) = -1.6 k^-0.45 to 100x the budget of 4, with a band, forecasts at 10x
    and 100x, and target budgets: one reachable, one whose interval has no upper end, one the
    law never reaches."""
    curve_k = (1.0, 4.0, 40.0, 400.0)
    return PowerLawFit(
        rmse=0.012,
        rmse_curve=0.013,
        k_from=1,
        k_to=4,
        replicates=200,
        forecast=(
            HorizonForecast(k=40.0, horizon=10, coverage=0.74, low=0.6, high=0.8),
            HorizonForecast(k=400.0, horizon=100, coverage=0.9, low=None, high=None),
        ),
        curve=LawCurve(
            k=curve_k,
            coverage=(0.2, 0.42, 0.74, 0.9),
            low=(0.1, 0.3, 0.6, None),
            high=(0.3, 0.5, 0.8, None),
        ),
        budget_for=(
            TargetBudget(target=0.5, k=6.4, low=4.0, high=11.0),
            TargetBudget(target=0.9, k=420.0, low=150.0, high=None),
            TargetBudget(target=0.99, k=None, low=None, high=None),
        ),
        a=-1.6,
        b=-0.45,
    )
