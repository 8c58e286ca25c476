"""What selectors without a verifier, the guessing baseline and a cheap verifier make of a
session's samples, as typed values whose `to_json()` is the report's JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SelectionCurves:
    """Expected accuracy of the selectors that need no verifier at each subset size k, next
    to coverage, averaged over problems (engine/analytics/selection.py's `selection_curves`)."""

    k: tuple[int, ...]  # subset sizes, samples per problem
    coverage: tuple[float, ...]  # pass@k at each k (fraction of problems)
    majority: tuple[float, ...]  # maj@k: the most frequent answer of a random k-subset
    best_of_k: tuple[float, ...]  # the k-subset's sample of highest mean token log-probability
    best_of_majority: tuple[float, ...]  # the best-scored sample among the frequent answers
    bom_share: float  # Best-of-Majority's vote threshold, as a share of the top answer's votes
    replicates: int  # random subsets per k
    seed: int  # seed of those subsets
    problems: int  # problems averaged over
    inconsistent: tuple[str, ...]  # problems where samples of one answer got different verdicts

    def to_json(self) -> dict[str, Any]:
        return {
            "k": list(self.k),
            "coverage": list(self.coverage),
            "majority": list(self.majority),
            "best_of_k": list(self.best_of_k),
            "best_of_majority": list(self.best_of_majority),
            "bom_share": self.bom_share,
            "replicates": self.replicates,
            "seed": self.seed,
            "problems": self.problems,
            "inconsistent": list(self.inconsistent),
        }


@dataclass(frozen=True)
class Guessing:
    """Coverage reached by guessing the k answers seen most often on the other problems
    (engine/analytics/selection.py's `guessing_baseline`, after Yona et al. 2024)."""

    k: tuple[int, ...]  # guesses per problem
    coverage: tuple[float, ...]  # share of problems whose reference is among the k guesses
    problems: int  # problems with a reference answer, the ones scored
    no_reference: int  # problems without one, left out
    distinct_answers: int  # distinct answers over all samples

    def to_json(self) -> dict[str, Any]:
        return {
            "k": list(self.k),
            "coverage": list(self.coverage),
            "problems": self.problems,
            "no_reference": self.no_reference,
            "distinct_answers": self.distinct_answers,
        }


@dataclass(frozen=True)
class Selection:
    """The analysis' selection section: the selectors' curves and the guessing baseline."""

    curves: SelectionCurves  # majority, best-of-k and Best-of-Majority beside coverage
    guessing: Guessing  # the baseline that never looks at the problem

    def to_json(self) -> dict[str, Any]:
        return {**self.curves.to_json(), "guessing": self.guessing.to_json()}


@dataclass(frozen=True)
class ProblemFalsePositives:
    """One problem's samples as both verifiers judged them (counts of samples)."""

    problem_id: str  # the problem's id in the session
    samples: int  # samples both verifiers judged (infrastructure errors left out)
    visible_pass: int  # of those, passed by the cheap verifier
    hidden_pass: int  # passed by the full tests
    false_positive: int  # passed by the cheap verifier, failed by the full tests
    false_negative: int  # failed by the cheap verifier, passed by the full tests

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.problem_id,
            "samples": self.samples,
            "visible_pass": self.visible_pass,
            "hidden_pass": self.hidden_pass,
            "false_positive": self.false_positive,
            "false_negative": self.false_negative,
        }


@dataclass(frozen=True)
class FalsePositives:
    """How often a cheap verifier passes a sample the full tests fail (`false_positive_rate`
    in engine/analytics/selection.py), with the reverse for context."""

    visible: str  # the cheap verifier's name (a prompt's own examples)
    hidden: str  # the full verifier's name
    samples: int  # samples both judged, infrastructure errors left out
    visible_pass: int  # of those, passed by the cheap verifier
    hidden_fail_of_visible_pass: int  # of those, failed by the full tests (false positives)
    rate: float | None  # false positives / visible passes; None without a visible pass
    hidden_pass: int  # samples the full tests passed
    visible_fail_of_hidden_pass: int  # of those, failed by the cheap verifier
    reverse_rate: float | None  # that count / hidden passes; None without a hidden pass
    problems_with_false_positive: int  # problems with at least one false positive
    problems_falsely_solved: int  # problems the cheap verifier solves and the tests never pass
    infra_error_pairs: int  # samples left out because either verdict is an infrastructure error
    unpaired: int  # samples only one of the two verifiers judged
    by_problem: tuple[ProblemFalsePositives, ...]  # per problem, in natural id order

    def to_json(self) -> dict[str, Any]:
        return {
            "visible": self.visible,
            "hidden": self.hidden,
            "samples": self.samples,
            "visible_pass": self.visible_pass,
            "hidden_fail_of_visible_pass": self.hidden_fail_of_visible_pass,
            "rate": self.rate,
            "hidden_pass": self.hidden_pass,
            "visible_fail_of_hidden_pass": self.visible_fail_of_hidden_pass,
            "reverse_rate": self.reverse_rate,
            "problems_with_false_positive": self.problems_with_false_positive,
            "problems_falsely_solved": self.problems_falsely_solved,
            "infra_error_pairs": self.infra_error_pairs,
            "unpaired": self.unpaired,
            "by_problem": [p.to_json() for p in self.by_problem],
        }
