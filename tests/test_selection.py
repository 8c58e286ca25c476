"""Selection without a verifier: majority vote, best-of-k and Best-of-Majority on cases whose
values are known exactly, a brute-force cross-check, the guessing baseline, false positives."""

from __future__ import annotations

import math
from collections import Counter
from itertools import combinations

import numpy as np
import pytest

from troop.engine.analytics.results_selection import ProblemFalsePositives, SelectionCurves
from troop.engine.analytics.selection import (
    ProblemAnswers,
    _permutations,
    answers_for,
    false_positive_rate,
    guessing_baseline,
    selection_curves,
)


def problem(
    answers: list[str | None],
    correct: list[bool],
    score: list[float] | None = None,
    reference: str | None = None,
    pid: str = "p/0",
) -> ProblemAnswers:
    score = score if score is not None else [0.0] * len(answers)
    return ProblemAnswers(pid, answers, np.array(correct), np.array(score), reference)


def curves(
    p: ProblemAnswers | list[ProblemAnswers], ks: list[int], **kw: object
) -> SelectionCurves:
    return selection_curves(p if isinstance(p, list) else [p], ks, **kw)  # type: ignore[arg-type]


# --- exact values ----------------------------------------------------------------------------


def test_all_samples_the_same_answer() -> None:
    right = problem(["7"] * 6, [True] * 6)
    wrong = problem(["8"] * 6, [False] * 6, pid="p/1")
    out = curves([right, wrong], [1, 2, 6])
    for key in ("majority", "best_of_k", "best_of_majority"):
        assert getattr(out, key) == (0.5, 0.5, 0.5)
    assert out.coverage == (0.5, 0.5, 0.5)
    assert out.inconsistent == ()


def test_the_whole_set_is_deterministic() -> None:
    # k = n: the subset is every sample, whatever the replicate.
    p = problem(["a", "a", "a", "b"], [True, True, True, False], score=[-2, -2, -1, -0.5])
    out = curves(p, [4], replicates=7)
    assert out.majority == (1.0,)  # "a" has 3 votes
    assert out.best_of_k == (0.0,)  # "b" scores best and is wrong
    # "b" has 1 vote, under half of 3: Best-of-Majority keeps only "a" and picks its best.
    assert out.best_of_majority == (1.0,)
    loose = curves(p, [4], replicates=7, bom_share=0.3)  # 1 >= 0.3 * 3: "b" stays in
    assert loose.best_of_majority == (0.0,)


def test_a_tie_scores_the_share_of_tied_answers_that_are_correct() -> None:
    p = problem(["a", "b", "c", "c", "d", "d"], [True, False, False, False, True, True])
    out = curves(p, [6])
    assert out.majority == (0.5,)  # "c" and "d" tie at 2 votes; "d" is right
    two = curves(problem(["a", "b"], [True, False]), [2])
    assert two.majority == (0.5,)


def test_samples_without_an_answer_do_not_vote() -> None:
    p = problem(
        [None, None, None, "a", "b", "b"],
        [False, False, False, True, False, False],
        score=[9, 9, 9, 1, 0, 0],
    )
    out = curves(p, [6])
    assert out.majority == (0.0,)  # "b" wins 2 to 1; the three None do not count
    assert out.best_of_k == (1.0,)  # the best-scoring *answered* sample is "a"
    nothing = curves(problem([None, None], [False, False]), [1, 2])
    assert nothing.majority == nothing.best_of_k == nothing.best_of_majority == (0, 0)


def test_maj_at_1_is_mean_correctness() -> None:
    # At k=1 every selector returns the one sample: the expectation is the mean verdict, and
    # with many replicates the estimate lands close to it.
    rng = np.random.default_rng(3)
    answers = [str(a) for a in rng.integers(0, 5, 40)]
    correct = [a == "0" for a in answers]
    out = curves(problem(answers, correct, score=list(rng.normal(size=40))), [1], replicates=20_000)
    mean = float(np.mean(correct))
    for key in ("majority", "best_of_k", "best_of_majority", "coverage"):
        assert getattr(out, key)[0] == pytest.approx(mean, abs=0.01)


def test_an_inconsistent_answer_counts_as_the_share_that_passed() -> None:
    p = problem(["5", "5", "5", "5"], [True, True, False, True], pid="p/7")
    out = curves(p, [4])
    assert out.majority == (0.75,)
    assert out.inconsistent == ("p/7",)


def test_coverage_column_is_the_shared_estimator() -> None:
    p = problem(["1", "2", "3", "4"], [True, False, False, False])
    out = curves(p, [1, 2, 4])
    assert out.coverage == pytest.approx([0.25, 0.5, 1.0], abs=1e-15)


# --- the Monte-Carlo estimate against brute force --------------------------------------------


def brute(p: ProblemAnswers, ks: list[int], share: float, orders: np.ndarray) -> np.ndarray:
    """The three selectors, one subset at a time, in plain Python, on the same subsets."""
    correct = np.asarray(p.correct, bool)
    score = np.where(np.isnan(p.score), -np.inf, p.score)
    groups: dict[str, list[bool]] = {}
    for a, c in zip(p.answers, correct, strict=True):
        if a is not None:
            groups.setdefault(a, []).append(bool(c))
    value = {a: float(np.mean(v)) for a, v in groups.items()}
    out = np.zeros((3, len(ks)))
    for row in orders:
        for g, k in enumerate(ks):
            subset = [int(i) for i in row[:k] if p.answers[i] is not None]
            if not subset:
                continue
            votes = Counter(p.answers[i] for i in subset)
            top = max(votes.values())
            out[0, g] += np.mean([value[a] for a, v in votes.items() if v == top])
            best = max(subset, key=lambda i: (score[i], -i))  # ties: lower index
            out[1, g] += correct[best]
            need = max(math.ceil(share * top - 1e-9), 1)
            kept = [i for i in subset if votes[p.answers[i]] >= need]
            out[2, g] += correct[max(kept, key=lambda i: (score[i], -i))]
    return out / len(orders)


@pytest.mark.parametrize("seed", range(12))
def test_the_vectorised_estimate_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 260))
    kinds = int(rng.integers(1, 30))
    answers = [None if rng.random() < 0.15 else str(int(rng.integers(0, kinds))) for _ in range(n)]
    correct = [a == "0" or (a == "1" and seed % 2 == 0 and rng.random() < 0.5) for a in answers]
    score = rng.normal(size=n)
    if seed % 3 == 0:
        score = np.round(score)  # many ties in score
    score[rng.random(n) < 0.1] = np.nan
    p = problem(answers, correct, score=list(score))
    ks = sorted({1, n, *rng.integers(1, n + 1, 10).tolist()})
    share = [0.3, 0.5, 1.0][seed % 3]
    out = curves(p, ks, replicates=19, seed=seed, bom_share=share)
    expected = brute(p, ks, share, _permutations(n, 19, seed)[0])
    got = np.array([out.majority, out.best_of_k, out.best_of_majority])
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_exact_expectation_over_all_subsets() -> None:
    # Small enough to enumerate every 3-subset: the estimate converges to the true value.
    answers = ["a", "a", "b", "b", "b", "c"]
    correct = [True, True, False, False, False, False]
    score = [0.1, -1.0, 0.5, -0.2, -0.3, 0.9]
    p = problem(answers, correct, score=score)
    exact = np.zeros(3)
    subsets = list(combinations(range(6), 3))
    for s in subsets:
        exact += brute(p, [3], 0.5, np.array([list(s)]))[:, 0]
    exact /= len(subsets)
    out = curves(p, [3], replicates=40_000)
    got = [out.majority[0], out.best_of_k[0], out.best_of_majority[0]]
    assert got == pytest.approx(exact.tolist(), abs=0.01)


def test_same_seed_same_curves_other_seed_other_estimate() -> None:
    rng = np.random.default_rng(0)
    answers = [str(a) for a in rng.integers(0, 6, 300)]
    p = problem(answers, [a in ("0", "1") for a in answers], score=list(rng.normal(size=300)))
    ks = [1, 3, 10, 40, 100, 300]
    assert curves(p, ks, seed=5) == curves(p, ks, seed=5)
    assert curves(p, ks, seed=5).majority != curves(p, ks, seed=6).majority


def test_problems_of_different_sizes_average_their_own_curves() -> None:
    rng = np.random.default_rng(4)
    problems = []
    for i, n in enumerate((30, 80, 30)):
        answers = [str(a) for a in rng.integers(0, 4, n)]
        problems.append(
            problem(
                answers, [a == "0" for a in answers], score=list(rng.normal(size=n)), pid=f"p/{i}"
            )
        )
    ks = [1, 4, 30]
    together = curves(problems, ks, replicates=50)
    alone = [curves(p, ks, replicates=50) for p in problems]
    for key in ("majority", "best_of_k", "best_of_majority", "coverage"):
        mean = np.mean([getattr(a, key) for a in alone], axis=0)
        assert getattr(together, key) == pytest.approx(mean.tolist())
    assert together.problems == 3


def test_k_order_and_duplicates_are_kept_and_bad_k_refused() -> None:
    rng = np.random.default_rng(1)
    answers = [str(a) for a in rng.integers(0, 4, 50)]
    p = problem(answers, [a == "0" for a in answers], score=list(rng.normal(size=50)))
    sorted_out = curves(p, [1, 5, 50])
    mixed = curves(p, [50, 1, 5, 5])
    assert mixed.k == (50, 1, 5, 5)
    assert mixed.majority == tuple(sorted_out.majority[i] for i in (2, 0, 1, 1))
    for bad in ([0], [51], []):
        with pytest.raises(ValueError, match="1..50"):
            curves(p, bad)
    with pytest.raises(ValueError):
        selection_curves([], [1])


def test_answers_for_reads_final_answers() -> None:
    texts = ["3 + 4 = 7. The answer is 7.", "I think it is $1,200.", "no idea"]
    assert answers_for("arithmetic", texts) == ["7", "1200", None]
    assert answers_for("math", ["so \\boxed{\\dfrac{1}{2}}"]) == ["\\frac{1}{2}"]


# --- the guessing baseline --------------------------------------------------------------------


def test_guessing_baseline_on_a_constructed_set() -> None:
    problems = [
        problem(["4", "4", "5"], [True, True, False], reference="4", pid="p/1"),
        problem(["5", "7"], [True, False], reference="5", pid="p/2"),
        problem(["4", "9"], [True, False], reference="4", pid="p/3"),
        problem(["11"], [True], reference="11", pid="p/4"),  # 11 is seen nowhere else
        problem(["4"], [False], reference=None, pid="p/5"),  # no reference: left out
    ]
    out = guessing_baseline(problems, [1, 2, 3, 4, 10])
    # Left out in turn, the others' answer counts are:
    #   p/1: 4:2 (p/3, p/5) 5:1 7:1 9:1 11:1     -> "4" first:            1, 1, 1, 1
    #   p/2: 4:4 5:1 9:1 11:1                    -> "5" ties 3 at rank 2: 0, 1/3, 2/3, 1
    #   p/3: 4:3 5:2 7:1 11:1                    -> "4" first:            1, 1, 1, 1
    #   p/4: "11" nowhere else                   -> never:                0, 0, 0, 0
    expected = [(1 + 0 + 1 + 0) / 4, (1 + 1 / 3 + 1) / 4, (1 + 2 / 3 + 1) / 4, 3 / 4, 3 / 4]
    assert out.coverage == pytest.approx(expected)
    assert out.problems == 4 and out.no_reference == 1


def test_guessing_baseline_matches_expected_rank_by_brute_force() -> None:
    rng = np.random.default_rng(2)
    problems = []
    for i in range(30):
        answers = [str(int(a)) for a in rng.integers(0, 12, int(rng.integers(1, 20)))]
        problems.append(
            problem(
                answers,
                [False] * len(answers),
                pid=f"p/{i}",
                reference=str(int(rng.integers(0, 14))),
            )
        )
    ks = [1, 2, 3, 5, 8, 13]
    out = guessing_baseline(problems, ks)
    expected = np.zeros(len(ks))
    for i, p in enumerate(problems):
        others = Counter(a for j, q in enumerate(problems) if j != i for a in q.answers)
        f = others.get(p.reference, 0)  # type: ignore[arg-type]
        if f == 0:
            continue
        above = sum(1 for a, c in others.items() if c > f)
        tied = sum(1 for a, c in others.items() if c == f)  # the reference included
        expected += [min(max((k - above) / tied, 0), 1) for k in ks]
    assert out.coverage == pytest.approx((expected / len(problems)).tolist())


# --- false positives of a cheap verifier --------------------------------------------------------


def test_false_positive_rate_counts() -> None:
    visible = {
        ("A/1", 0): "pass",
        ("A/1", 1): "pass",
        ("A/1", 2): "fail",
        ("A/2", 0): "pass",
        ("A/2", 1): "invalid",
        ("A/10", 0): "pass",
        ("A/10", 1): "infra_error",
        ("A/3", 0): "pass",
    }
    hidden = {
        ("A/1", 0): "pass",
        ("A/1", 1): "fail",
        ("A/1", 2): "fail",
        ("A/2", 0): "timeout",
        ("A/2", 1): "pass",
        ("A/10", 0): "pass",
        ("A/10", 1): "pass",
    }
    out = false_positive_rate(visible, hidden)
    assert out.visible == "python-examples" and out.hidden == "python-tests"
    assert out.samples == 6  # ("A/10", 1) is an infra error, ("A/3", 0) unpaired
    assert out.infra_error_pairs == 1 and out.unpaired == 1
    assert out.visible_pass == 4
    assert out.hidden_fail_of_visible_pass == 2  # A/1#1 and A/2#0
    assert out.rate == 0.5
    assert out.hidden_pass == 3 and out.visible_fail_of_hidden_pass == 1  # A/2#1
    assert out.reverse_rate == pytest.approx(1 / 3)
    assert out.problems_with_false_positive == 2
    assert out.problems_falsely_solved == 0  # A/2's hidden tests pass another sample
    assert [r.problem_id for r in out.by_problem] == ["A/1", "A/2", "A/10"]
    assert out.by_problem[1] == ProblemFalsePositives(
        problem_id="A/2",
        samples=2,
        visible_pass=1,
        hidden_pass=1,
        false_positive=1,
        false_negative=1,
    )
    empty = false_positive_rate({}, {})
    assert empty.rate is None and empty.visible_pass == 0
