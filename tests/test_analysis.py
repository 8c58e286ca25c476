"""analyse(): every section computed from a real session file, synthetic and sampled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import troop
from troop.engine.analytics import passk
from troop.engine.analytics.analysis import AnalysisOptions, analyse, analyse_path, compare
from troop.engine.analytics.results import Refused
from troop.engine.analytics.results_curves import CoverageRefused, PassAtK, SolvedVsSpent
from troop.engine.events import SampleRecord
from troop.engine.storage.session import Session, StoredProblem
from troop.engine.storage.session import tests_digest as digest_of
from troop.verifiers.base import Status, Verdict

MODEL = {"name": "tiny", "n_params": 1_000_000, "n_layer": 4, "n_embd": 64}


def _make_session(
    path: Path,
    outcomes: dict[str, list[str | None]],
    *,
    temps: tuple[float, ...] = (0.8,),
    meta: dict[str, Any] | None = None,
) -> Path:
    """A session whose samples have the given verdict statuses (None: not verified)."""
    config = {
        "model": MODEL,
        "problem_set": {"name": "synthetic"},
        "sampling": {"temperatures": list(temps)},
        "seed": 0,
        "prompt_format": {"kind": "raw", "template": None},
    }
    with Session.create(path, {"config": config, "budget": 0, **(meta or {})}) as s:
        problems = [
            StoredProblem(pid, i, "arithmetic", f"q{i}", 10 + i, (), {"id": pid, "answer": str(i)})
            for i, pid in enumerate(outcomes)
        ]
        s.add_problems(problems)
        s.set_meta("verifier", {"name": "exact", "version": "1"})
        run = s.begin_run({"parallel": 1})
        for p in problems:
            s.add_prompt_eval(run, p.problem_id, p.prompt_tokens, 0.01)
            for i, status in enumerate(outcomes[p.problem_id]):
                s.add_sample(
                    SampleRecord(
                        problem_id=p.problem_id,
                        sample_index=i,
                        seed=i,
                        temperature=temps[i % len(temps)],
                        top_k=40,
                        top_p=0.95,
                        min_p=0.0,
                        max_tokens=16,
                        text=f"answer {i}",
                        tokens=(1, 2, 3),
                        prompt_tokens=p.prompt_tokens,
                        finish_reason="eos",
                        stop=None,
                        wall_s=0.1,
                        logprob=-3.0,
                        run_id=run,
                    )
                )
                if status is not None:
                    s.add_verdict(
                        p.problem_id,
                        i,
                        digest_of(p.data),
                        Verdict(Status(status), "exact", "1", 0.01, "", tier="bwrap"),
                    )
        s.finish_run(run, "completed")
    return path


def test_coverage_is_the_mean_unbiased_estimator(tmp_path: Path) -> None:
    outcomes = {
        "a": ["fail", "pass", "fail", "fail", "fail", "fail", "fail", "pass"],
        "b": ["fail"] * 8,
        "c": ["pass"] * 8,
        "d": ["fail", "fail", "timeout", "crash", "fail", "fail", "fail", "pass"],
    }
    result = analyse_path(_make_session(tmp_path / "s.troop", outcomes))
    cov = result.coverage
    assert isinstance(cov, PassAtK)
    assert cov.k == tuple(range(1, 9))
    expected = [np.mean([passk.pass_at_k(8, c, k) for c in (2, 0, 8, 1)]) for k in range(1, 9)]
    assert cov.pass_at_k == pytest.approx(expected, abs=1e-14)
    assert cov.solved == 3 and cov.n_min == 8
    rows = {p.problem_id: p for p in result.problems}
    assert rows["a"].correct == 2 and rows["a"].first_pass == 1
    assert rows["a"].pass_at_1 == 0.25 and rows["a"].status == "solved"
    assert rows["b"].status == "unsolved" and rows["b"].first_pass is None
    assert rows["d"].statuses == {"fail": 5, "timeout": 1, "crash": 1, "pass": 1}
    assert result.statuses == {"fail": 19, "pass": 11, "timeout": 1, "crash": 1}
    assert result.session.tier == "bwrap"
    json.dumps(result.to_json(), allow_nan=False)  # strict JSON: no NaN anywhere


def test_unverified_samples_do_not_count_as_failures(tmp_path: Path) -> None:
    outcomes = {"a": ["pass", "fail", None, None], "b": ["fail", "fail", "fail", None]}
    result = analyse_path(_make_session(tmp_path / "s.troop", outcomes))
    assert isinstance(result.coverage, PassAtK)
    assert result.coverage.n_min == 2  # a has 2 verified, b 3
    rows = {p.problem_id: p for p in result.problems}
    assert rows["a"].n == 4 and rows["a"].verified == 2 and rows["a"].pass_at_1 == 0.5


def test_nothing_verified_is_a_refusal_not_a_zero(tmp_path: Path) -> None:
    result = analyse_path(_make_session(tmp_path / "s.troop", {"a": [None, None]}))
    assert result.coverage == CoverageRefused("no verified samples yet", problems=1)
    assert result.fit.power_law == Refused("no verified samples yet")


def test_fits_are_refused_until_something_is_solved(tmp_path: Path) -> None:
    result = analyse_path(
        _make_session(tmp_path / "s.troop", {"a": ["fail"] * 6, "b": ["fail"] * 6})
    )
    assert result.fit.power_law == Refused("no problem solved yet")
    assert result.fit.beta_binomial == Refused("no problem solved yet")
    assert result.fit.better is None


def test_forecasts_bootstrap_and_are_reproducible(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rates = rng.beta(0.4, 2.0, 40)
    outcomes = {
        f"p{i:02}": ["pass" if rng.random() < r else "fail" for _ in range(32)]
        for i, r in enumerate(rates)
    }
    path = _make_session(tmp_path / "s.troop", outcomes)
    first = analyse_path(path, AnalysisOptions(seed=3))
    again = analyse_path(path, AnalysisOptions(seed=3))
    assert first == again
    for fit in (first.fit.power_law, first.fit.beta_binomial):
        assert not isinstance(fit, Refused), fit
        assert fit.replicates >= 150
        at10, at100 = fit.forecast
        assert at10.k == 320 and at100.k == 3200
        assert at10.low is not None and at10.high is not None
        assert at10.low <= at10.coverage <= at10.high
        assert at10.coverage <= at100.coverage <= 1
        observed = first.coverage.pass_at_k[-1]
        assert at10.coverage >= observed - 0.05
        for target in fit.budget_for:
            assert target.k is not None and target.k > 0
    assert first.fit.better in ("power_law", "beta_binomial")


def test_temperatures_are_faceted(tmp_path: Path) -> None:
    # Even indices drawn at 0.2 never pass; odd ones at 1.0 pass on problem a only.
    outcomes = {"a": ["fail", "pass"] * 4, "b": ["fail"] * 8}
    path = _make_session(tmp_path / "s.troop", outcomes, temps=(0.2, 1.0))
    facets = {f.temperature: f for f in analyse_path(path).by_temperature}
    assert set(facets) == {0.2, 1.0}
    assert facets[0.2].solved == () and facets[1.0].solved == ("a",)
    assert facets[1.0].pass_at_k[0] == 0.5
    assert facets[0.2].pass_at_k[-1] == 0.0


def test_cost_counts_prompts_once_and_prices_tokens(tmp_path: Path) -> None:
    outcomes = {"a": ["pass", "fail"], "b": ["fail", "fail"]}
    path = _make_session(tmp_path / "s.troop", outcomes)
    options = AnalysisOptions(prices={"mine": {"input": 2.0, "output": 10.0}}, watts=100.0)
    c = analyse_path(path, options).cost
    assert c.prompt_tokens == 10 + 11  # once per prompt evaluation
    assert c.completion_tokens == 4 * 3
    assert c.billed_input_tokens == 2 * 10 + 2 * 11  # an API bills the prompt per request
    assert c.usd_api["mine"] == pytest.approx((2.0 * 42 + 10.0 * 12) / 1e6)
    assert c.electricity.kwh == pytest.approx(100.0 * c.wall_s / 3.6e6)
    assert c.flops is not None and c.flops > 2 * MODEL["n_params"] * (21 + 12)
    assert c.per_solved.tokens == 21 + 12  # one problem solved
    assert c.axes is not None
    assert c.axes.samples == (1.0, 2.0)
    assert c.axes.tokens == (21 + 6, 21 + 12)


def test_coverage_only_sessions_show_solved_against_spent(tmp_path: Path) -> None:
    outcomes = {"a": ["fail", "pass"], "b": ["fail", "fail", "fail"]}
    path = _make_session(
        tmp_path / "s.troop",
        outcomes,
        meta={"coverage_only": True, "policy": {"name": "until-solved"}},
    )
    result = analyse_path(path)
    cov = result.coverage
    assert isinstance(cov, SolvedVsSpent) and cov.solved == 1
    assert cov.pass_at_k[-1] == 0.5 and cov.k[-1] == 2.5
    assert isinstance(result.fit.power_law, Refused)
    assert result.session.policy == "until-solved"


def test_compare_lists_what_each_session_solves(tmp_path: Path) -> None:
    one = analyse_path(_make_session(tmp_path / "1.troop", {"a": ["pass"], "b": ["fail"]}))
    two = analyse_path(_make_session(tmp_path / "2.troop", {"a": ["fail"], "b": ["pass"]}))
    both = compare([one, two])
    assert both.same_problems and both.solved_only_by == (("a",), ("b",))


@pytest.mark.model
def test_real_session_analysis_matches_its_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "real.troop"
    done = troop(
        "run",
        "--headless",
        "--problems",
        "arithmetic:3",
        "--samples",
        "6",
        "--parallel",
        "6",
        "--max-tokens",
        "48",
        "--session",
        str(path),
    )
    assert done.returncode == 0, done.stderr
    with Session.open(path) as s:
        result = analyse(s)
        verifier = s.meta("verifier")
        verdicts = s.current_verdicts(verifier["name"], verifier["version"])
    passes = sum(v.status == "pass" for v in verdicts.values())
    assert sum(p.correct for p in result.problems) == passes
    assert result.session.samples == 18 and result.session.verified == 18
    assert result.coverage.k == tuple(range(1, 7))
    assert result.cost.completion_tokens > 0
    assert result.cost.flops is not None and result.cost.flops > 0
    assert result.session.model.name == "smollm2-135m"
    json.dumps(result.to_json(), allow_nan=False)


def test_selection_sits_beside_coverage_for_answer_problems(tmp_path: Path) -> None:
    # Sample i answers "i" (its text is "answer i"); problem j's reference is "j".
    outcomes = {"a": ["fail", "pass", "fail", "fail"], "b": ["fail"] * 4}
    path = _make_session(tmp_path / "s.troop", outcomes)
    result = analyse_path(path)
    sel = result.selection
    assert not isinstance(sel, Refused), sel
    assert sel.curves.k == (1, 2, 3, 4)
    assert sel.curves.coverage == pytest.approx(result.coverage.pass_at_k)
    # Every answer in a problem is distinct: at k = n all four tie, and a tie scores the share
    # of tied answers that are right (1/4 on a, 0 on b). At k = 1 every selector is one random
    # sample: pass@1, up to the Monte-Carlo error of 200 subsets.
    assert sel.curves.majority[-1] == pytest.approx(0.125, abs=1e-12)
    for curve in (sel.curves.majority, sel.curves.best_of_k, sel.curves.best_of_majority):
        assert curve[0] == pytest.approx(0.125, abs=0.1)
    assert sel.guessing.k == (1, 2, 3, 4)


def test_selection_is_refused_for_code_problems(tmp_path: Path) -> None:
    path = _make_session(tmp_path / "s.troop", {"a": ["pass"]})
    with Session.open(path) as s, s.lock, s.conn:
        s.conn.execute("UPDATE problems SET format = 'humaneval'")
    sel = analyse_path(path).selection
    assert isinstance(sel, Refused) and "answer-style" in sel.reason


def test_false_positives_of_the_visible_examples(tmp_path: Path) -> None:
    outcomes = {"a": ["pass", "fail", "fail"], "b": ["fail", "fail", "pass"]}
    path = _make_session(tmp_path / "s.troop", outcomes)
    before = analyse_path(path).false_positives
    assert isinstance(before, Refused) and "python-examples" in before.reason
    visible = {
        ("a", 0): "pass",
        ("a", 1): "pass",
        ("a", 2): "fail",
        ("b", 0): "pass",
        ("b", 1): "fail",
        ("b", 2): "fail",
    }
    with Session.open(path) as s:
        data = {p.problem_id: p.data for p in s.problems()}
        for (pid, i), status in visible.items():
            s.add_verdict(
                pid,
                i,
                digest_of(data[pid]),
                Verdict(Status(status), "python-examples", "1", 0.01, ""),
            )
    result = analyse_path(path)
    fp = result.false_positives
    assert not isinstance(fp, Refused), fp
    assert fp.visible_pass == 3 and fp.hidden_fail_of_visible_pass == 2
    assert fp.rate == pytest.approx(2 / 3)
    assert fp.visible_fail_of_hidden_pass == 1
    # Coverage still counts the session's own verifier, not the cheap one.
    assert result.session.verifier is not None and result.session.verifier.name == "exact"
    assert isinstance(result.coverage, PassAtK) and result.coverage.solved == 2


def test_unknown_model_shape_leaves_flops_empty_not_nan(tmp_path: Path) -> None:
    path = _make_session(tmp_path / "s.troop", {"a": ["pass", "fail"]})
    with Session.open(path) as s:
        config = s.meta("config")
        config["model"] = {"name": "served-model"}  # a server: no GGUF shape
        s.set_meta("config", config)
    result = analyse_path(path)
    assert result.cost.flops is None
    assert result.cost.axes is not None and result.cost.axes.flops == (None, None)
    json.dumps(result.to_json(), allow_nan=False)


def _math_session(path: Path, problems: dict[str, tuple[str, list[str]]]) -> Path:
    """A MATH session whose samples box the given answers, judged by an old math-answer
    version only (the one troop's own LaTeX parser gave)."""
    config = {
        "model": MODEL,
        "problem_set": {"name": "synthetic"},
        "sampling": {"temperatures": [0.8]},
        "seed": 0,
        "prompt_format": {"kind": "raw", "template": None},
    }
    with Session.create(path, {"config": config, "budget": 0}) as s:
        stored = [
            StoredProblem(
                pid, i, "math", "?", 10, (), {"id": pid, "format": "math", "answer": gold}
            )
            for i, (pid, (gold, _)) in enumerate(problems.items())
        ]
        s.add_problems(stored)
        s.set_meta("verifier", {"name": "math-answer", "version": "1"})
        run = s.begin_run({"parallel": 1})
        for p in stored:
            s.add_prompt_eval(run, p.problem_id, p.prompt_tokens, 0.01)
            for i, answer in enumerate(problems[p.problem_id][1]):
                s.add_sample(
                    SampleRecord(
                        problem_id=p.problem_id,
                        sample_index=i,
                        seed=i,
                        temperature=0.8,
                        top_k=40,
                        top_p=0.95,
                        min_p=0.0,
                        max_tokens=16,
                        text=f"So $\\boxed{{{answer}}}$.",
                        tokens=(1, 2, 3),
                        prompt_tokens=10,
                        finish_reason="eos",
                        stop=None,
                        wall_s=0.1,
                        logprob=-3.0 - i,
                        run_id=run,
                    )
                )
                s.add_verdict(
                    p.problem_id,
                    i,
                    digest_of(p.data),
                    Verdict(Status.FAIL, "math-answer", "1", 0.01, "", tier="rlimits"),
                )
        s.finish_run(run, "completed")
    return path


def test_selection_votes_by_math_verify_equivalence(tmp_path: Path) -> None:
    # Three ways of writing one half: as strings they are three answers of one vote each, so
    # the two 3s win on "a" and five answers tie on "b" (majority 0 + 1/5); as math-verify
    # reads them they are one answer of three votes, right on "a" and wrong on "b".
    problems = {
        "a": ("\\frac{1}{2}", ["0.5", "\\dfrac{1}{2}", "\\frac{2}{4}", "3", "3"]),
        "b": ("3", ["0.5", "\\dfrac{1}{2}", "\\frac{2}{4}", "3", "7"]),
    }
    path = _math_session(tmp_path / "s.troop", problems)
    # The old verdicts are of another version: `troop verify` judges every sample anew.
    done = troop("verify", str(path), "--verify-workers", "1")
    assert done.returncode == 0, done.stderr
    result = analyse_path(path)
    assert result.session.verifier is not None
    assert result.session.verifier.version.startswith("2+math-verify")
    rows = {p.problem_id: p for p in result.problems}
    assert rows["a"].correct == 3 and rows["b"].correct == 1
    sel = result.selection
    assert not isinstance(sel, Refused), sel
    assert sel.curves.majority[-1] == pytest.approx(0.5, abs=1e-12)  # a right, b wrong
    # Guessing from the other problem's answers: one half (three votes) is a's reference and
    # not b's; as strings a's would tie five ways (1/5) and b's be guessed (0.6 in all).
    assert sel.guessing.coverage[0] == pytest.approx(0.5)
    assert sel.guessing.distinct_answers == 3  # one half, 3 and 7
