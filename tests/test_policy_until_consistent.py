"""The until-consistent policy: the Beta stopping rule on the majority answer, and problems
stopped once their majority is settled."""

from __future__ import annotations

from collections import Counter
from math import comb

import pytest
from scipy import integrate, stats

from tests.policy_helpers import IDS, record
from troop.engine.policy import (
    PolicySpec,
    UntilConsistent,
    majority_confidence,
    make_allocation,
    top_two,
)

# -- until-consistent --------------------------------------------------------------------------


def beta_tail(v1: int, v2: int) -> float:
    """P(X > 1/2) for X ~ Beta(v1+1, v2+1), for whole counts: P(Binomial(v1+v2+1, 1/2) <= v1)."""
    n = v1 + v2 + 1
    return sum(comb(n, j) for j in range(v1 + 1)) / 2**n


def test_beta_stopping_rule_against_hand_computed_values() -> None:
    assert majority_confidence(0, 0) == pytest.approx(0.5)
    assert majority_confidence(5, 5) == pytest.approx(0.5)
    assert majority_confidence(1, 0) == pytest.approx(0.75)  # 1 - 0.5^2
    assert majority_confidence(3, 0) == pytest.approx(0.9375)  # 1 - 0.5^4: not yet at 0.95
    assert majority_confidence(4, 0) == pytest.approx(0.96875)  # 1 - 0.5^5: settled
    assert majority_confidence(3, 1) == pytest.approx(26 / 32)
    assert majority_confidence(6, 2) == pytest.approx(466 / 512)
    assert majority_confidence(6, 1) == pytest.approx(1 - 9 / 256)


@pytest.mark.parametrize("v1", range(0, 30, 3))
@pytest.mark.parametrize("v2", range(0, 12, 2))
def test_beta_stopping_rule_matches_scipy_stats_and_the_integral(v1: int, v2: int) -> None:
    expected = stats.beta(v1 + 1, v2 + 1).sf(0.5)
    assert majority_confidence(v1, v2) == pytest.approx(expected, abs=1e-12)
    assert majority_confidence(v1, v2) == pytest.approx(beta_tail(v1, v2), abs=1e-12)
    density = stats.beta(v1 + 1, v2 + 1).pdf
    assert majority_confidence(v1, v2) == pytest.approx(
        integrate.quad(density, 0.5, 1)[0], abs=1e-8
    )


def test_top_two() -> None:
    assert top_two(Counter()) == (0, 0)
    assert top_two(Counter(a=3)) == (3, 0)
    assert top_two(Counter(a=1, b=4, c=2)) == (4, 2)


def test_until_consistent_stops_when_the_majority_is_settled() -> None:
    spec = PolicySpec("until-consistent")
    allocation = make_allocation(spec, IDS, set(), dict.fromkeys(IDS, "arithmetic"))
    assert isinstance(allocation, UntilConsistent)
    # p0: four agreeing answers settle it (0.969 >= 0.95); three do not (0.9375).
    for i in range(3):
        allocation.observe(record("p0", i, "So 4 + 9 = 13. The answer is 13."))
    assert "p0" not in allocation.stopped
    allocation.observe(record("p0", 3, "The answer is 13.00"))  # normalised: the same vote
    assert allocation.stopped == {"p0"}
    # p1: a dissenting vote and samples with no answer delay it: (5, 1) is 0.9375, (6, 1) 0.965.
    texts = ["The answer is 7", "I don't know", "The answer is 8"] + ["The answer is 7"] * 4
    for i, text in enumerate(texts):
        allocation.observe(record("p1", i, text))
    assert allocation.votes("p1") == {"7": 5, "8": 1}
    assert "p1" not in allocation.stopped
    allocation.observe(record("p1", 7, "The answer is 7"))
    assert "p1" in allocation.stopped


def test_min_votes_holds_a_low_threshold_back() -> None:
    spec = PolicySpec("until-consistent", threshold=0.7, min_votes=3)
    allocation = make_allocation(spec, IDS, set(), dict.fromkeys(IDS, "gsm8k"))
    assert allocation is not None
    allocation.observe(record("p2", 0, "#### 12"))  # 0.75 >= 0.7 already, but one vote
    allocation.observe(record("p2", 1, "#### 12"))
    assert not allocation.stopped
    allocation.observe(record("p2", 2, "#### 12"))
    assert allocation.stopped == {"p2"}
