"""Picking one answer without a verifier (majority vote, best-of-k, Best-of-Majority), the
guessing baseline, and the false-positive rate of a cheap verifier."""

# Brown et al. (2024), "Large Language Monkeys", compare coverage with what a selector without
# a verifier reaches from the same samples: majority vote and reward-model best-of-k plateau
# while coverage keeps rising. Here the score of best-of-k is the model's own mean token
# log-probability, the one signal every session stores.

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from troop.engine.analytics.passk import pass_at_k_curve
from troop.engine.analytics.results_selection import (
    FalsePositives,
    Guessing,
    ProblemFalsePositives,
    SelectionCurves,
)
from troop.engine.formats import final_answer
from troop.verifiers.answers import normalize

#: Best-of-Majority keeps the answers whose votes in the subset reach this share of the top
#: answer's votes. Di et al. (2025, "Best-of-Majority: Minimax-Optimal Strategy for Pass@k
#: Inference Scaling", arXiv:2510.03199) filter by frequency before ranking by reward; they
#: filter with an absolute frequency threshold and submit k answers, here one answer is
#: submitted and the threshold is relative, so it means the same at every subset size.
DEFAULT_BOM_SHARE = 0.5

# Below this subset size Best-of-Majority looks at the subset itself; above it, it walks the
# samples from the best score down, where the first eligible one turns up within a few dozen.
_SUBSET_SCAN_MAX_K = 64
_FIRST_CHUNK = 8  # candidates looked at per subset in the first step of that walk


@dataclass(frozen=True)
class ProblemAnswers:
    """One problem's samples as the selectors see them."""

    problem_id: str  # the problem's id in the session
    answers: Sequence[str | None]  # per sample, the answer it votes for (None: it gave none):
    # the canonical form its math-answer verdict recorded, so answers math-verify calls equal
    # vote together, else its normalised final answer
    correct: ArrayLike  # bool per sample: whether the verifier passed it
    score: ArrayLike  # mean token log-probability per sample, nats per token (NaN: unknown)
    reference: str | None  # reference answer, in the same form (for the guessing baseline)


def answers_for(fmt: str, texts: Iterable[str]) -> list[str | None]:
    """The normalised final answer of each sample text, None where a text gives none: what
    samples vote for when their verdicts recorded no canonical answer (verifiers other than
    math-answer). (About 16 µs a text; repeated texts are read once.)"""
    seen: dict[str, str | None] = {}
    out: list[str | None] = []
    for text in texts:
        if text not in seen:
            answer = final_answer(text, fmt)
            seen[text] = (normalize(answer) if answer is not None else "") or None
        out.append(seen[text])
    return out


# --- majority vote, best-of-k, Best-of-Majority ----------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    """One problem's samples as integer arrays: answers become labels sorted by answer, so
    the samples of one answer form one block in a label sort."""

    n: int  # samples
    m: int  # distinct answers; label m stands for "no answer"
    label: NDArray[np.signedinteger[Any]]  # answer label per sample (int16 or int32)
    size: NDArray[np.int64]  # samples per label (m + 1 entries)
    start: NDArray[np.int64]  # first column of each label's block in a label sort
    occurrence: NDArray[np.int32]  # per column of a label sort: 1-based occurrence number
    # of its answer (0 for the no-answer block)
    answer_correct: NDArray[np.float64]  # per label: share of its samples that passed (0 for m)
    priority: NDArray[np.int32]  # per sample: rank by score among answered samples, highest
    # best (ties: lower sample index first); -1 for no answer
    correct_by_priority: NDArray[np.float64]  # whether the sample of each priority passed,
    # then a 0 that priority -1 (no pick) reads
    by_priority: NDArray[np.int64]  # sample index of each priority, best first
    inconsistent: bool  # samples with the same normalised answer got different verdicts


def _prepare(problem: ProblemAnswers) -> _Prepared:
    n = len(problem.answers)
    correct = np.asarray(problem.correct, dtype=bool).reshape(-1)
    score = np.asarray(problem.score, dtype=np.float64).reshape(-1)
    if correct.size != n or score.size != n:
        raise ValueError(f"{problem.problem_id}: answers, correct and score differ in length")
    ids = {a: i for i, a in enumerate(sorted({a for a in problem.answers if a is not None}))}
    m = len(ids)
    label: NDArray[np.signedinteger[Any]] = np.array(
        [m if a is None else ids[a] for a in problem.answers], dtype=np.int32
    )
    if m < np.iinfo(np.int16).max:
        label = label.astype(np.int16)  # the label sort is a radix sort on 16 bits
    size = np.bincount(label, minlength=m + 1).astype(np.int64)
    start = np.concatenate(([0], np.cumsum(size)[:-1])).astype(np.int64)
    occurrence = (np.arange(n) - np.repeat(start, size) + 1).astype(np.int32)
    occurrence[start[m] :] = 0
    passed = np.bincount(label, weights=correct.astype(np.float64), minlength=m + 1)
    answer_correct = passed / np.maximum(size, 1)
    answer_correct[m] = 0.0
    share = answer_correct[:m]
    inconsistent = bool(np.any((share > 0) & (share < 1)))
    answered = np.flatnonzero(label < m)
    key = np.where(np.isnan(score[answered]), -np.inf, score[answered])
    best_first = answered[np.lexsort((answered, -key))]
    priority = np.full(n, -1, dtype=np.int32)
    priority[best_first] = np.arange(best_first.size, dtype=np.int32)[::-1]
    correct_by_priority = np.append(correct[best_first[::-1]].astype(np.float64), 0.0)
    return _Prepared(
        n,
        m,
        label,
        size,
        start,
        occurrence,
        answer_correct,
        priority,
        correct_by_priority,
        best_first,
        inconsistent,
    )


def _permutations(
    n: int, replicates: int, seed: int
) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """`replicates` uniform random orders of n samples (position -> sample) and their
    inverses (sample -> position). Seeded by (seed, n) alone: problems with the same n share
    them, which keeps every problem's estimate unbiased and saves drawing one set each."""
    rng = np.random.default_rng([seed, n])
    order = rng.permuted(np.tile(np.arange(n, dtype=np.int32), (replicates, 1)), axis=1)
    inverse = np.empty_like(order)
    rows = np.arange(replicates)[:, None]
    inverse[rows, order] = np.arange(n, dtype=np.int32)[None, :]
    return order, inverse


def _curves(
    prep: _Prepared,
    ks: NDArray[np.int64],
    order: NDArray[np.int32],
    inverse: NDArray[np.int32],
    share: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Majority, best-of-k and Best-of-Majority accuracy at each k, averaged over the rows of
    `order` (each row's first k samples are one uniform random subset of size k)."""
    reps, n = order.shape
    q = ks - 1  # last position of each subset
    rows = np.arange(reps)[:, None]
    labels = prep.label[order]  # answer label at each position
    # Column c of `blocks` holds the position of occurrence `occurrence[c]` of its answer.
    # (A stable sort of small integers is a radix sort.)
    blocks = np.argsort(labels, axis=1, kind="stable")
    votes = np.empty((reps, n), dtype=np.int32)  # votes the answer at a position has so far
    flat = blocks + (np.arange(reps, dtype=np.int64) * n)[:, None]
    votes.reshape(-1)[flat.reshape(-1)] = np.broadcast_to(prep.occurrence, (reps, n)).reshape(-1)

    # Majority: the top vote count T at k is the running maximum of `votes`; the answers tied
    # at T are the positions before k whose votes equal T, all at or after the first position
    # where the maximum reached T. A tie scores the share of tied answers that are correct.
    top = np.maximum.accumulate(votes, axis=1)
    leads = votes == top
    leads &= votes > 0
    tied = np.zeros((reps, n + 1), dtype=np.int32)
    np.cumsum(leads, axis=1, dtype=np.int32, out=tied[:, 1:])
    right: NDArray[Any]
    if prep.inconsistent:
        right = np.zeros((reps, n + 1), dtype=np.float64)
        np.cumsum(np.where(leads, prep.answer_correct[labels], 0.0), axis=1, out=right[:, 1:])
    else:  # every answer wholly right or wrong: count in integers, which is much cheaper
        right = np.zeros((reps, n + 1), dtype=np.int32)
        np.cumsum(
            leads & (prep.answer_correct == 1.0)[labels], axis=1, dtype=np.int32, out=right[:, 1:]
        )
    top_k = top[:, q]
    # `top` rises along each row, so `top + row * (n + 1)` is sorted as one flat array.
    offsets = (np.arange(reps, dtype=np.int64) * (n + 1))[:, None]
    first = np.searchsorted((top + offsets).reshape(-1), top_k + offsets) - rows * n
    count = tied[rows, q + 1] - tied[rows, first]
    majority = np.where(
        top_k > 0, (right[rows, q + 1] - right[rows, first]) / np.maximum(count, 1), 0.0
    )

    # Best-of-k: the highest-priority answered sample of the subset.
    segments = np.concatenate(([0], ks[:-1]))
    best = np.maximum.accumulate(
        np.maximum.reduceat(prep.priority[order[:, : ks[-1]]], segments, axis=1), axis=1
    )
    best_of_k = prep.correct_by_priority[best]

    # Best-of-Majority: the highest-priority sample whose answer has at least `need` votes.
    need = np.maximum(np.ceil(share * top_k - 1e-9), 1).astype(np.int64)
    picked = np.full(top_k.shape, -1, dtype=np.int64)
    small = ks <= _SUBSET_SCAN_MAX_K
    if small.any():
        picked[:, small] = _bom_in_subsets(prep, labels, order, blocks, need[:, small], ks[small])
    if not small.all():
        picked[:, ~small] = _bom_by_score(prep, inverse, blocks, need[:, ~small], ks[~small])
    bom = np.where(top_k > 0, prep.correct_by_priority[picked], 0.0)
    return majority.mean(axis=0), best_of_k.mean(axis=0), bom.mean(axis=0)


def _eligible(
    prep: _Prepared,
    blocks: NDArray[np.int64],
    rows: NDArray[np.int64],
    label: NDArray[np.signedinteger[Any]],
    need: NDArray[np.int64],
    k: NDArray[np.int64],
) -> NDArray[np.bool_]:
    """Whether `label` (broadcast with `rows`, `need` and `k`) has at least `need` votes among
    the first k positions of row `rows` of `blocks`: its need-th occurrence sits before k."""
    column = prep.start[label] + need - 1
    enough = (prep.size[label] >= need) & (label < prep.m)
    at = blocks[rows, np.minimum(column, prep.n - 1)]
    result: NDArray[np.bool_] = enough & (at < k)
    return result


def _bom_in_subsets(
    prep: _Prepared,
    labels: NDArray[np.signedinteger[Any]],
    order: NDArray[np.int32],
    blocks: NDArray[np.int64],
    need: NDArray[np.int64],
    ks: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Best-of-Majority's pick (a priority, -1 for none) per row and small k, looking at the
    samples of each subset: the subsets of all ks side by side, one column per sample."""
    grid = np.repeat(np.arange(ks.size), ks)  # which k each column belongs to
    at = np.arange(grid.size) - np.repeat(np.cumsum(ks) - ks, ks)  # position in the subset
    rows = np.arange(order.shape[0])[:, None]
    ok = _eligible(prep, blocks, rows, labels[:, at], need[:, grid], ks[grid][None, :])
    priority = np.where(ok, prep.priority[order[:, at]], -1)
    picked: NDArray[np.int64] = np.maximum.reduceat(priority, np.cumsum(ks) - ks, axis=1)
    return picked


def _bom_by_score(
    prep: _Prepared,
    inverse: NDArray[np.int32],
    blocks: NDArray[np.int64],
    need: NDArray[np.int64],
    ks: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Best-of-Majority's pick per row and large k: walk the samples from the highest
    priority down, in growing chunks, until each (row, k) finds one inside its subset whose
    answer is eligible. Samples whose answer has too few samples in all to be eligible
    anywhere are skipped up front."""
    reps = inverse.shape[0]
    picked = np.full((reps, ks.size), -1, dtype=np.int64)
    row, col = (a.ravel() for a in np.indices((reps, ks.size)))
    walk = prep.by_priority[prep.size[prep.label[prep.by_priority]] >= need.min()]
    done, chunk = 0, _FIRST_CHUNK
    while row.size and done < walk.size:
        candidates = walk[done : done + chunk]
        k = ks[col][:, None]
        ok = _eligible(
            prep, blocks, row[:, None], prep.label[candidates][None, :], need[row, col][:, None], k
        )
        ok &= inverse[row[:, None], candidates[None, :]] < k
        hit = ok.any(axis=1)
        picked[row[hit], col[hit]] = prep.priority[candidates[ok[hit].argmax(axis=1)]]
        row, col = row[~hit], col[~hit]
        done += candidates.size
        chunk *= 2
    return picked


def selection_curves(
    problems: Sequence[ProblemAnswers],
    ks: ArrayLike,
    *,
    replicates: int = 200,
    seed: int = 0,
    bom_share: float = DEFAULT_BOM_SHARE,
) -> SelectionCurves:
    """Expected accuracy at each subset size k of three selectors that need no verifier, next
    to coverage (pass@k), averaged over problems.

    - majority (maj@k): the most frequent normalised answer of a uniformly random k-subset;
      samples without an answer do not vote; a tie scores the share of tied answers that are
      correct (the expected value of breaking it at random).
    - best_of_k: the subset's answered sample with the highest mean token log-probability
      (ties: the lower sample index), judged by its own verdict.
    - best_of_majority: among answers with at least `bom_share` x the top answer's votes, the
      sample with the highest score, judged by its own verdict (see DEFAULT_BOM_SHARE).

    An answer is correct as its samples' verdicts say; where samples of one answer disagree
    (an equivalence the normalisation misses, a flaky test) it counts as the share that
    passed, and the problem is listed in `inconsistent`. Each k is estimated over
    `replicates` seeded random subsets, the first k samples of random orders shared by every
    k; k must be at most the smallest problem's sample count.
    """
    grid = np.asarray(ks, dtype=np.int64).reshape(-1)
    if not problems:
        raise ValueError("no problems")
    if replicates < 1:
        raise ValueError("replicates must be at least 1")
    if not 0 < bom_share <= 1:
        raise ValueError("bom_share must be in (0, 1]")
    n_min = min(len(p.answers) for p in problems)
    if grid.size == 0 or grid.min() < 1 or grid.max() > n_min:
        raise ValueError(f"every k must be in 1..{n_min} (the fewest samples of any problem)")
    grid, back = np.unique(grid, return_inverse=True)  # the work wants rising distinct ks
    sums = np.zeros((4, grid.size))
    inconsistent = []
    drawn: tuple[int, NDArray[np.int32], NDArray[np.int32]] | None = None
    # Problems with the same sample count share their random orders: go by sample count, so
    # only one set of orders is held at a time.
    for problem in sorted(problems, key=lambda p: len(p.answers)):
        prep = _prepare(problem)
        if drawn is None or drawn[0] != prep.n:
            drawn = (prep.n, *_permutations(prep.n, replicates, seed))
        majority, best_of_k, bom = _curves(prep, grid, drawn[1], drawn[2], bom_share)
        sums[0] += majority
        sums[1] += best_of_k
        sums[2] += bom
        correct = int(np.asarray(problem.correct, dtype=bool).sum())
        sums[3] += pass_at_k_curve(prep.n, correct, int(grid.max()))[grid - 1]
        if prep.inconsistent:
            inconsistent.append(problem.problem_id)
    means = sums[:, back] / len(problems)
    return SelectionCurves(
        k=tuple(grid[back].tolist()),
        coverage=tuple(means[3].tolist()),
        majority=tuple(means[0].tolist()),
        best_of_k=tuple(means[1].tolist()),
        best_of_majority=tuple(means[2].tolist()),
        bom_share=bom_share,
        replicates=replicates,
        seed=seed,
        problems=len(problems),
        inconsistent=tuple(sorted(inconsistent, key=_natural_key)),
    )


# --- the guessing baseline ---------------------------------------------------------------------


def guessing_baseline(problems: Sequence[ProblemAnswers], ks: ArrayLike) -> Guessing:
    """Coverage reached without looking at a problem: guess the k answers seen most often on
    the *other* problems of the set, after Yona et al. (2024), "Keep Guessing? When
    Considering Inference Scaling, Mind the Baselines".

    Their baseline enumerates the most common answers of a training set; a session has none,
    so each problem is left out in turn (its own samples would leak its answer) and the
    answers of all other problems' samples are counted. coverage@k is the share of problems
    (with a reference answer) whose reference is among the top k guesses; guesses tied in
    frequency at the cut are taken at random, in expectation. Problems without a reference
    are left out and counted in `no_reference`.
    """
    grid = np.asarray(ks, dtype=np.int64).reshape(-1)
    if grid.size and grid.min() < 1:
        raise ValueError("every k must be at least 1")
    own = [Counter(a for a in p.answers if a is not None) for p in problems]
    total: Counter[str] = Counter()
    for counts in own:
        total.update(counts)
    ordered = np.sort(np.fromiter(total.values(), dtype=np.int64, count=len(total)))
    scored = [
        (p, counts) for p, counts in zip(problems, own, strict=True) if p.reference is not None
    ]
    covered = np.zeros(grid.size)
    for problem, counts in scored:
        reference = problem.reference
        assert reference is not None
        freq = total[reference] - counts[reference]  # the reference's frequency elsewhere
        if freq <= 0:
            continue  # never seen on another problem: no guess list reaches it
        above = _count_above(ordered, freq) - int(total[reference] > freq)
        ties = _count_equal(ordered, freq) - int(total[reference] == freq)
        # This problem's own answers move from `total[a]` to `total[a] - counts[a]`.
        for answer, c in counts.items():
            if answer == reference:
                continue
            before, after = total[answer], total[answer] - c
            above += int(after > freq) - int(before > freq)
            ties += int(after == freq) - int(before == freq)
        # The reference plus `ties` others share ranks above+1 .. above+ties+1.
        covered += np.clip((grid - above) / (ties + 1), 0.0, 1.0)
    share = covered / len(scored) if scored else covered
    return Guessing(
        k=tuple(grid.tolist()),
        coverage=tuple(share.tolist()),
        problems=len(scored),
        no_reference=len(problems) - len(scored),
        distinct_answers=len(total),
    )


def _count_above(ordered: NDArray[np.int64], value: int) -> int:
    return int(ordered.size - np.searchsorted(ordered, value, side="right"))


def _count_equal(ordered: NDArray[np.int64], value: int) -> int:
    return int(
        np.searchsorted(ordered, value, side="right") - np.searchsorted(ordered, value, side="left")
    )


# --- false positives of a cheap verifier -------------------------------------------------------


def false_positive_rate(
    visible: Mapping[tuple[str, int], str],
    hidden: Mapping[tuple[str, int], str],
    *,
    visible_name: str = "python-examples",
    hidden_name: str = "python-tests",
) -> FalsePositives:
    """How often a cheap verifier (e.g. a HumanEval docstring's examples) passes a sample that
    the full, hidden tests fail: such samples cap what resampling with the cheap verifier can
    reach. Statuses are keyed by (problem, sample index), as `Session.current_verdicts` keys
    its rows ({key: row["status"]}); only samples both judged count, and pairs where either
    verdict is an infrastructure error are left out. The reverse (hidden passes the cheap
    verifier fails) is reported for context."""
    pairs = [(key, visible[key], hidden[key]) for key in visible.keys() & hidden.keys()]
    infra = sum(1 for _, v, h in pairs if "infra_error" in (v, h))
    pairs = [p for p in pairs if "infra_error" not in (p[1], p[2])]
    # Per problem: samples, visible passes, hidden passes, false positives, false negatives.
    per: dict[str, list[int]] = {}
    for (problem_id, _), v, h in pairs:
        counts = per.setdefault(problem_id, [0, 0, 0, 0, 0])
        counts[0] += 1
        counts[1] += v == "pass"
        counts[2] += h == "pass"
        counts[3] += v == "pass" and h != "pass"
        counts[4] += h == "pass" and v != "pass"
    by_problem = tuple(
        ProblemFalsePositives(pid, *per[pid]) for pid in sorted(per, key=_natural_key)
    )
    visible_pass = sum(r.visible_pass for r in by_problem)
    hidden_pass = sum(r.hidden_pass for r in by_problem)
    fp = sum(r.false_positive for r in by_problem)
    fn = sum(r.false_negative for r in by_problem)
    return FalsePositives(
        visible=visible_name,
        hidden=hidden_name,
        samples=len(pairs),
        visible_pass=visible_pass,
        hidden_fail_of_visible_pass=fp,
        rate=fp / visible_pass if visible_pass else None,
        hidden_pass=hidden_pass,
        visible_fail_of_hidden_pass=fn,
        reverse_rate=fn / hidden_pass if hidden_pass else None,
        problems_with_false_positive=sum(1 for r in by_problem if r.false_positive),
        # Problems the cheap verifier calls solved that the hidden tests never pass.
        problems_falsely_solved=sum(1 for r in by_problem if r.visible_pass and not r.hidden_pass),
        infra_error_pairs=infra,
        unpaired=len(visible.keys() ^ hidden.keys()),
        by_problem=by_problem,
    )


def _natural_key(problem_id: str) -> tuple[Any, ...]:
    """ "HumanEval/10" after "HumanEval/9"."""
    head, _, tail = problem_id.rpartition("/")
    return (head, int(tail), "") if tail.isdigit() else (problem_id, math.inf, problem_id)
