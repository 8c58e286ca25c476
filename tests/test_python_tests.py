"""The python-tests verifier: HumanEval's canonical solutions pass, wrong and forged ones fail."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox_helpers import TIERS, _leftovers
from troop.engine.events import Recorder, SampleRecord
from troop.engine.formats.loading import load_problem_set
from troop.engine.storage.session import Session, StoredProblem
from troop.engine.verify import verify_session
from troop.verifiers.base import Check, Status, Verdict, Verifier, partial_credit
from troop.verifiers.python_tests import PythonTests
from troop.verifiers.sample_calls import decode_plain, encode_plain
from troop.verifiers.sandbox import Limits, Sandbox

HUMANEVAL = [asdict(p) for p in load_problem_set("humaneval").problems]
BY_ID = {p["id"]: p for p in HUMANEVAL}
FAST = PythonTests(Limits(wall_s=3.0, cpu_s=2.0))


@pytest.fixture(scope="module", params=TIERS)
def warm_box(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with Sandbox(2, tier=request.param) as sandbox:
        yield sandbox


@pytest.fixture
def box(warm_box: Sandbox) -> Iterator[Sandbox]:
    """The module's sandbox; after the test, nothing a sample started may still run."""
    yield warm_box
    assert _leftovers(warm_box) == []


def fenced(code: str) -> str:
    return f"Here is the solution:\n\n```python\n{code}\n```\n"


def verify_all(box: Sandbox, checks: list[Check], verifier: Verifier = FAST) -> list[Verdict]:
    with ThreadPoolExecutor(box.workers) as pool:
        return list(pool.map(lambda c: verifier.verify(c, box), checks))


def he(task: int, code: str, verifier: Verifier = FAST, *, box: Sandbox) -> Verdict:
    return verifier.verify(Check(fenced(code), BY_ID[f"HumanEval/{task}"]), box)


def test_the_verifier_plugs_in() -> None:
    verifier = PythonTests()
    assert isinstance(verifier, Verifier)
    assert verifier.name == "python-tests" and verifier.version
    assert verifier.applies_to("humaneval") and verifier.applies_to("mbpp")
    assert not verifier.applies_to("gsm8k")


def test_all_canonical_solutions_pass(box: Sandbox) -> None:
    checks = [Check(fenced(p["prompt"] + p["reference"]), p) for p in HUMANEVAL]
    start = time.monotonic()
    verdicts = verify_all(box, checks)
    rate = len(checks) / (time.monotonic() - start)
    failed = [
        (p["id"], v.status, v.detail)
        for p, v in zip(HUMANEVAL, verdicts, strict=True)
        if not v.passed
    ]
    assert failed == []
    assert all(v.tier == box.tier and v.verifier == "python-tests" for v in verdicts)
    print(f"\n{box.tier}: {rate:.0f} verifications/s with {box.workers} workers")


def test_completions_that_continue_the_prompt_pass(box: Sandbox) -> None:
    problems = HUMANEVAL[:12]
    verdicts = verify_all(box, [Check(p["reference"], p) for p in problems])
    assert [v.status for v in verdicts] == [Status.PASS] * len(problems)


def test_every_body_replaced_by_pass_fails(box: Sandbox) -> None:
    checks = [Check(fenced(p["prompt"] + "    pass\n"), p) for p in HUMANEVAL]
    verdicts = verify_all(box, checks)
    passed = [
        p["id"] for p, v in zip(HUMANEVAL, verdicts, strict=True) if v.status is not Status.FAIL
    ]
    assert passed == []
    assert all(v.detail for v in verdicts)


WRONG = "def has_close_elements(numbers, threshold):\n    return False\n"
RIGHT = BY_ID["HumanEval/0"]["prompt"] + BY_ID["HumanEval/0"]["reference"]


@pytest.mark.parametrize(
    ("name", "code", "detail"),
    [
        (
            "forged success line",
            'print("All tests passed!")\nprint("PASS")\n' + WRONG,
            "AssertionError at test line",
        ),
        (
            "os._exit(0) before the tests",
            "import os\n" + WRONG + "os._exit(0)\n",
            "exited before the tests finished",
        ),
        (
            "os._exit(0) in the call",
            "import os\ndef has_close_elements(numbers, threshold):\n    os._exit(0)\n",
            "exited before the tests finished",
        ),
        ("sys.exit(0) before the tests", "import sys\n" + WRONG + "sys.exit(0)\n", "sys.exit(0)"),
        (
            "sys.exit(0) in the call",
            "import sys\ndef has_close_elements(numbers, threshold):\n    sys.exit(0)\n",
            "SystemExit",
        ),
        (
            "an object equal to everything",
            "class Yes:\n    def __eq__(self, other):\n        return True\n"
            "    __hash__ = object.__hash__\n"
            "def has_close_elements(numbers, threshold):\n    return Yes()\n",
            "not plain data",
        ),
        (
            "a bool subclass equal to everything",
            "class Yes(int):\n    def __eq__(self, other):\n        return True\n"
            "def has_close_elements(numbers, threshold):\n    return Yes(1)\n",
            "not plain data",
        ),
        (
            "a forged answer on the channel",
            "import os, json, struct\n"
            "msg = json.dumps({'names': ['has_close_elements']}).encode()\n"
            "os.write(3, struct.pack('>I', len(msg)) + msg)\n" + WRONG,
            "",
        ),
    ],
)
def test_cheating_samples_fail(box: Sandbox, name: str, code: str, detail: str) -> None:
    verdict = he(0, code, box=box)
    assert verdict.status is Status.FAIL, (name, verdict)
    assert detail in verdict.detail, verdict.detail


def test_forged_output_is_kept_but_never_judged(box: Sandbox) -> None:
    verdict = he(0, 'print("All tests passed!")\n' + WRONG, box=box)
    assert verdict.status is Status.FAIL
    assert "All tests passed!" in verdict.output


def test_killing_the_checker_never_passes(box: Sandbox) -> None:
    code = "import os\ntry:\n    os.kill(os.getppid(), 9)\nexcept OSError:\n    pass\n" + WRONG
    assert he(0, code, box=box).status in (Status.FAIL, Status.CRASH)
    right = "import os\ntry:\n    os.kill(os.getppid(), 9)\nexcept OSError:\n    pass\n" + RIGHT
    verdict = he(0, right, box=box)
    if box.tier == "bwrap" and "PID namespace" in box.tier_note:
        assert verdict.status is Status.PASS  # the checker is PID 1: the signal cannot kill it
    else:
        assert verdict.status in (Status.PASS, Status.CRASH)


def test_details_name_the_failure(box: Sandbox) -> None:
    name_error = he(
        0, "def has_close_elements(numbers, threshold):\n    return helper()\n", box=box
    )
    assert name_error.status is Status.FAIL
    assert name_error.detail == "NameError: name 'helper' is not defined"
    missing = he(0, "def close(numbers, threshold):\n    return True\n", box=box)
    assert missing.status is Status.FAIL
    assert missing.detail == "the sample does not define has_close_elements()"
    syntax = he(0, "def has_close_elements(numbers, threshold):\n    return (\n", box=box)
    assert syntax.status is Status.FAIL and syntax.detail.startswith("SyntaxError")
    wrong = he(0, WRONG, box=box)
    assert wrong.detail.startswith("AssertionError at test line ")
    assert "assert candidate(" in wrong.detail


def test_no_code_is_invalid_without_running_anything(box: Sandbox) -> None:
    verdict = FAST.verify(Check("I do not know.", BY_ID["HumanEval/0"]), box)
    assert verdict.status is Status.INVALID and verdict.detail == "no code block"
    assert verdict.tier == ""


def test_limits_give_timeout_and_resource(box: Sandbox) -> None:
    loop = he(
        0, "def has_close_elements(numbers, threshold):\n    while True:\n        pass\n", box=box
    )
    assert loop.status is Status.TIMEOUT, loop
    at_load = he(0, "while True:\n    pass\n" + WRONG, box=box)
    assert at_load.status is Status.TIMEOUT, at_load
    small = PythonTests(Limits(wall_s=5.0, memory_bytes=512 << 20))
    hog = he(
        0,
        "def has_close_elements(numbers, threshold):\n    return len(bytearray(1 << 32))\n",
        small,
        box=box,
    )
    assert hog.status is Status.RESOURCE, hog


def test_output_is_captured_and_capped(box: Sandbox) -> None:
    capped = PythonTests(Limits(output_bytes=1000))
    code = 'print("\\x1b[31m[bold]hi[/bold]")\nprint("y" * 5000)\n' + RIGHT
    verdict = he(0, code, capped, box=box)
    assert verdict.status is Status.PASS
    assert verdict.output.startswith("\x1b[31m[bold]hi[/bold]\n")
    assert verdict.truncated and len(verdict.output) == 1000


def _mbpp(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    record = {
        "task_id": 7,
        "text": "Write a function to add two numbers.",
        "code": "def add(a, b):\n    return a + b",
        "test_list": [
            "assert add(1, 2) == 3",
            "assert add(-1, 1) == 0",
            "assert add(2.5, 0.5) == 3.0",
        ],
        "test_setup_code": "",
    } | fields
    path = tmp_path / "mbpp.jsonl"
    path.write_text(json.dumps(record) + "\n")
    (problem,) = load_problem_set(str(path)).problems
    return asdict(problem)


def test_mbpp_right_and_wrong(box: Sandbox, tmp_path: Path) -> None:
    problem = _mbpp(tmp_path)
    assert problem["format"] == "mbpp" and problem["entry_point"] == "add"
    right = FAST.verify(Check(fenced("def add(a, b):\n    return a + b\n"), problem), box)
    assert right.status is Status.PASS, right
    wrong = FAST.verify(Check(fenced("def add(a, b):\n    return a - b\n"), problem), box)
    assert wrong.status is Status.FAIL
    assert wrong.detail == "AssertionError: assert add(1, 2) == 3"


def test_mbpp_setup_code_runs_before_the_asserts(box: Sandbox, tmp_path: Path) -> None:
    problem = _mbpp(
        tmp_path,
        test_setup_code="import math\nTAU = 2 * math.pi",
        test_list=["assert abs(add(TAU, 1) - (2 * math.pi + 1)) < 1e-9"],
    )
    verdict = FAST.verify(Check(fenced("def add(a, b):\n    return a + b\n"), problem), box)
    assert verdict.status is Status.PASS, verdict


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(10**30),
        2.5,
        float("inf"),
        -0.0,
        1 + 2j,
        "ü\udc80",
        b"\x00\xff",
        [1, [2, (3, {4: frozenset({5})})]],
        {"a": {1, 2}},
        (),
        {(1, 2): [None]},
    ],
)
def test_plain_data_round_trips(value: Any) -> None:
    assert decode_plain(json.loads(json.dumps(encode_plain(value)))) == value


def test_nan_round_trips_and_objects_are_refused() -> None:
    nan = decode_plain(json.loads(json.dumps(encode_plain(float("nan")))))
    assert nan != nan
    for value in (object(), True.__class__.__mro__, range(3), [iter([])]):
        with pytest.raises(TypeError):
            encode_plain(value)
    for data in ({"x": 1}, {"t": 5}, {"s": [[1]]}, {"d": [[1]]}):
        with pytest.raises(ValueError):
            decode_plain(data)


def test_numpy_scalars_count_as_the_numbers_they_hold(box: Sandbox) -> None:
    pytest.importorskip("numpy")
    code = (
        "import numpy as np\n"
        "def has_close_elements(numbers, threshold):\n"
        "    a = np.array(sorted(numbers))\n"
        "    return bool(len(a) > 1) and np.any(np.diff(a) < threshold)\n"
    )
    verdict = he(0, code, PythonTests(Limits(wall_s=10.0)), box=box)
    assert verdict.status is Status.PASS, verdict


# -- partial credit ----------------------------------------------------------------------------


def test_partial_credit_counts_every_assert_and_keeps_the_first_failure(box: Sandbox) -> None:
    wrong = he(0, WRONG, box=box)  # always False: HumanEval/0 expects False 3 times out of 7
    assert wrong.status is Status.FAIL
    assert wrong.detail.startswith(
        "AssertionError at test line 10: assert candidate([1.0, 2.0, "
        "3.9, 4.0, 5.0, 2.2], 0.3) == True"
    )
    assert (wrong.extra["tests_passed"], wrong.extra["tests_run"]) == (3, 7)
    assert partial_credit(wrong.extra) == pytest.approx(3 / 7)
    right = he(0, RIGHT, box=box)
    assert right.status is Status.PASS
    assert (right.extra["tests_passed"], right.extra["tests_run"]) == (7, 7)
    raises = he(0, "def has_close_elements(numbers, threshold):\n    raise KeyError(1)\n", box=box)
    assert raises.status is Status.FAIL and raises.detail == "KeyError: '1'"
    assert (raises.extra["tests_passed"], raises.extra["tests_run"]) == (0, 7)


def test_counting_after_a_failure_never_turns_the_fail_into_a_timeout(box: Sandbox) -> None:
    # Wrong on the first assert, then loops forever: the count stops, the verdict stays fail.
    code = (
        "def has_close_elements(numbers, threshold):\n"
        "    if threshold == 0.3:\n        return False\n"
        "    while True:\n        pass\n"
    )
    t0 = time.monotonic()
    verdict = he(0, code, PythonTests(Limits(wall_s=8.0, cpu_s=8.0)), box=box)
    assert verdict.status is Status.FAIL, verdict
    assert verdict.detail.startswith("AssertionError at test line 10")
    assert (verdict.extra["tests_passed"], verdict.extra["tests_run"]) == (0, 1)
    assert time.monotonic() - t0 < 6.0  # 2 s of counting, far from the 8 s limit


def test_mbpp_partial_credit(box: Sandbox, tmp_path: Path) -> None:
    problem = _mbpp(tmp_path)
    code = "def add(a, b):\n    return 5 if a == -1 else a + b\n"  # wrong on the 2nd of 3
    verdict = FAST.verify(Check(fenced(code), problem), box)
    assert verdict.status is Status.FAIL
    assert verdict.detail == "AssertionError: assert add(-1, 1) == 0"
    assert (verdict.extra["tests_passed"], verdict.extra["tests_run"]) == (2, 3)


def test_partial_credit_is_stored_and_rejudging_recomputes_it(box: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "s.troop"
    problem = BY_ID["HumanEval/0"]
    with Session.create(path, {"config": {}, "budget": 2}) as s:
        s.add_problems([StoredProblem(problem["id"], 0, "humaneval", "p", 5, (), problem)])
        run = s.begin_run({})
        for i, code in enumerate((WRONG, RIGHT)):
            s.add_sample(
                SampleRecord(
                    problem["id"],
                    i,
                    i,
                    0.8,
                    40,
                    0.95,
                    0.0,
                    64,
                    fenced(code),
                    (1,),
                    5,
                    "eos",
                    None,
                    0.1,
                    -1.0,
                    run,
                )
            )
        verify_session(s, FAST, box, Recorder())

        def credit() -> dict[int, tuple[int, int]]:
            rows = s.current_verdicts(FAST.name, FAST.version)
            return {
                i: (r.extra["tests_passed"], r.extra["tests_run"]) for (_, i), r in rows.items()
            }

        assert credit() == {0: (3, 7), 1: (7, 7)}
        # A stale count (say, from tests since changed) is replaced when the sample is re-judged.
        with s.conn:
            s.conn.execute(
                "UPDATE verdicts SET extra = ?", (json.dumps({"tests_passed": 0, "tests_run": 1}),)
            )
        verify_session(s, FAST, box, Recorder(), force=True)
        assert credit() == {0: (3, 7), 1: (7, 7)}
