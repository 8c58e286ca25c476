"""The analysis of a session, and the comparison of several, as frozen dataclasses whose
`to_json()` is the report's JSON key for key (see the README's report schema)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from troop.engine.analytics.backtest import Backtest
from troop.engine.analytics.fits import LAW_NAMES
from troop.engine.analytics.results_cost import Cost
from troop.engine.analytics.results_curves import (
    BetaBinomialFit,
    Coverage,
    CoverageRefused,
    LawFit,
    PassAtK,
    PowerLawFit,
    SolvedVsSpent,
    TemperatureCurve,
)
from troop.engine.analytics.results_selection import FalsePositives, Selection
from troop.engine.storage.config import (
    BackendConfig,
    ModelIdentity,
    ProblemSetConfig,
    PromptFormatSetting,
    SamplingConfig,
)
from troop.engine.storage.queries import RunRecord

#: Version of the JSON that `to_json()` writes.
SCHEMA = 1


@dataclass(frozen=True)
class Refused:
    """A section the analysis could not compute, in its place: why not."""

    reason: str  # one line for a person: what is missing or why it does not apply

    def to_json(self) -> dict[str, Any]:
        return {"refused": self.reason}


def measured(cov: Coverage) -> PassAtK | Refused:
    """The pass@k curve a section builds on (backtest, selection), or why there is none."""
    if isinstance(cov, SolvedVsSpent):
        return Refused("coverage-only session: its budget followed the verdicts")
    if isinstance(cov, CoverageRefused):
        return Refused(cov.reason)
    return cov if cov.k else Refused("no verified samples yet")


# --- the session -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifierRef:
    """The verifier whose verdicts count, as the session names it."""

    name: str  # its registered name, e.g. python-tests
    version: str  # its version: verdicts of other versions are stale

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class SessionInfo:
    """Where a session's numbers come from: its file, model, settings, verifier and runs."""

    path: str  # the session file, as it was opened
    created_at: float | None  # unix time, seconds
    troop_version: str | None  # troop that created the file
    budget: int | None  # samples per problem asked for
    policy: str  # name of the budget policy (fixed, until-solved, ...)
    policy_settings: Any  # the policy as stored: its name and settings (JSON), or a bare name
    coverage_only: bool  # the budget followed the verdicts, so only solved-vs-spent is shown
    model: ModelIdentity  # the model's facts as stored (name, file, GGUF shape)
    backend: BackendConfig  # what sampled: as stored, or llama.cpp where the file names none
    problem_set: ProblemSetConfig  # the problem set as stored (name, format, source)
    sampling: SamplingConfig  # sampling settings as stored (temperatures, top-k, ...)
    seed: int | None  # the session's base seed
    prompt_format: PromptFormatSetting  # how prompts were built; the JSON leaves the template out
    verifier: VerifierRef | None  # whose verdicts count; None: nothing has judged the session
    tier: str | None  # the sandbox tier most of those verdicts ran in
    runs: tuple[RunRecord, ...]  # sampling runs, in start order
    samples: int  # samples stored
    verified: int  # of those, judged by the verifier

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "created_at": self.created_at,
            "troop_version": self.troop_version,
            "budget": self.budget,
            "policy": self.policy,
            "policy_settings": self.policy_settings,
            "coverage_only": self.coverage_only,
            "model": self.model.to_json(),
            "backend": self.backend.to_json(),
            "problem_set": self.problem_set.to_json(),
            "sampling": self.sampling.to_json(),
            "seed": self.seed,
            "prompt_format": self.prompt_format.to_json(template=False),
            "verifier": self.verifier.to_json() if self.verifier is not None else None,
            "tier": self.tier,
            "runs": [
                {
                    "run_id": r.run_id,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "status": r.status,
                    "settings": r.settings,
                }
                for r in self.runs
            ],
            "samples": self.samples,
            "verified": self.verified,
        }


# --- per problem -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judged:
    """Samples of one problem at one temperature that the verifier judged."""

    n: int  # samples judged
    correct: int  # of those, passed

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "correct": self.correct}


@dataclass(frozen=True)
class ProblemRow:
    """One problem's samples and verdicts, summed up."""

    problem_id: str  # the problem's id in the session
    format: str  # its format (arithmetic, humaneval, math, ...)
    n: int  # samples drawn
    verified: int  # of those, judged
    correct: int  # of those, passed
    pass_at_1: float | None  # correct / verified; None when nothing is judged
    first_pass: int | None  # sample index of the first pass; None: none passed
    status: str  # solved, unsolved or unverified
    statuses: Mapping[str, int]  # judged samples by verdict status, in order of first sight
    by_temperature: Mapping[str, Judged]  # judged samples by temperature ("0.8" for 0.8)
    prompt_tokens: int  # the prompt's length, tokens
    completion_tokens: int  # tokens generated over its samples
    mean_logprob: float | None  # mean over samples of the mean token log-probability, nats

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.problem_id,
            "format": self.format,
            "n": self.n,
            "verified": self.verified,
            "correct": self.correct,
            "pass_at_1": self.pass_at_1,
            "first_pass": self.first_pass,
            "status": self.status,
            "statuses": dict(self.statuses),
            "by_temperature": {t: j.to_json() for t, j in self.by_temperature.items()},
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "mean_logprob": self.mean_logprob,
        }


# --- the fitted laws --------------------------------------------------------------------------


@dataclass(frozen=True)
class Fits:
    """Both laws fitted on the coverage curve, and which of them fits it better."""

    power_law: PowerLawFit | Refused  # the power law, or why it was not fitted
    beta_binomial: BetaBinomialFit | Refused  # the beta-binomial, or why not
    better: str | None  # "power_law" or "beta_binomial": lower rmse_curve; None: neither fitted

    def to_json(self) -> dict[str, Any]:
        return {
            "power_law": self.power_law.to_json(),
            "beta_binomial": self.beta_binomial.to_json(),
            "better": self.better,
        }

    def drawn(self) -> tuple[str, LawFit] | None:
        """The law every plot draws, with its name in prose: the one `better` names (the lower
        error over the whole coverage curve); None when neither law was fitted."""
        law = self.power_law if self.better == "power_law" else self.beta_binomial
        if self.better is None or not isinstance(law, LawFit):
            return None
        return LAW_NAMES[self.better], law


# --- the whole analysis ------------------------------------------------------------------------


def _backtest_json(section: Backtest | Refused) -> dict[str, Any]:
    if isinstance(section, Refused):
        return section.to_json()
    return {**section.to_json(), "summary": section.summary()}


@dataclass(frozen=True)
class Analysis:
    """Every number troop shows about one session (engine/analytics/analysis.py's `analyse`)."""

    session: SessionInfo  # where the numbers come from
    problems: tuple[ProblemRow, ...]  # one row per problem, in the session's order
    statuses: Mapping[str, int]  # judged samples by verdict status, in order of first sight
    coverage: Coverage  # pass@k with its band, solved-vs-spent, or why neither
    by_temperature: tuple[TemperatureCurve, ...]  # per temperature; empty with only one
    fit: Fits  # the power law and the beta-binomial with their forecasts
    backtest: Backtest | Refused  # forecasts from budget prefixes against what n showed
    cost: Cost  # tokens, time, FLOPs, dollars and energy, and the cost axes
    selection: Selection | Refused  # selectors without a verifier, for answer-style problems
    false_positives: FalsePositives | Refused  # the cheap visible verifier against the session's

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "session": self.session.to_json(),
            "problems": [p.to_json() for p in self.problems],
            "statuses": dict(self.statuses),
            "coverage": self.coverage.to_json(),
            "by_temperature": [t.to_json() for t in self.by_temperature],
            "fit": self.fit.to_json(),
            "backtest": _backtest_json(self.backtest),
            "cost": self.cost.to_json(),
            "selection": self.selection.to_json(),
            "false_positives": self.false_positives.to_json(),
        }


@dataclass(frozen=True)
class Comparison:
    """Sessions on the same problems side by side (engine/analytics/analysis.py's `compare`)."""

    sessions: tuple[str, ...]  # each session's file path
    labels: tuple[str, ...]  # each session's model name, or its path without one
    same_problems: bool  # whether every session holds the same problem ids
    common_problems: int  # problems every session holds
    solved: tuple[int, ...]  # per session: common problems it solves
    solved_only_by: tuple[tuple[str, ...], ...]  # per session: common problems only it solves
    solved_by_all: tuple[str, ...]  # common problems every session solves
    analyses: tuple[Analysis, ...]  # each session's whole analysis

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "sessions": list(self.sessions),
            "labels": list(self.labels),
            "same_problems": self.same_problems,
            "common_problems": self.common_problems,
            "solved": list(self.solved),
            "solved_only_by": [list(ids) for ids in self.solved_only_by],
            "solved_by_all": list(self.solved_by_all),
            "analyses": [a.to_json() for a in self.analyses],
        }
