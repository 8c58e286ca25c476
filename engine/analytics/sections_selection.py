"""The analysis's selection sections: picking one answer per problem without a verifier, and
the cheap visible verifier's false positives."""

from __future__ import annotations

import numpy as np

from troop.engine.analytics import selection
from troop.engine.analytics.problem_samples import ProblemSamples
from troop.engine.analytics.results import Refused, VerifierRef, measured
from troop.engine.analytics.results_curves import Coverage
from troop.engine.analytics.results_selection import FalsePositives, Selection
from troop.engine.formats import ANSWER_FORMATS
from troop.engine.storage import queries
from troop.engine.storage.session import Session, tests_digest
from troop.verifiers.answers import normalize

#: The cheap verifier that runs only the examples a prompt shows (HumanEval's docstrings).
VISIBLE_VERIFIER = "python-examples"


def selection_section(
    problems: list[ProblemSamples], cov: Coverage, *, replicates: int, seed: int
) -> Selection | Refused:
    """maj@k, best-of-k by mean token log-probability, Best-of-Majority and the guessing
    baseline, next to coverage, for answer-style problems (those end in a final answer)."""
    formats = {p.format for p in problems}
    if not formats <= set(ANSWER_FORMATS):
        return Refused(
            "selection without a verifier needs answer-style problems "
            f"({', '.join(ANSWER_FORMATS)}), not {', '.join(sorted(formats))}"
        )
    curve = measured(cov)
    if isinstance(curve, Refused):
        return curve
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
    ks = np.asarray(curve.k, dtype=np.int64)
    return Selection(
        curves=selection.selection_curves(chosen, ks, replicates=replicates, seed=seed),
        guessing=selection.guessing_baseline(chosen, ks),
    )


def false_positive_section(
    session: Session, problems: list[ProblemSamples], verifier: VerifierRef | None
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
