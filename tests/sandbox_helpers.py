"""The sandbox tests' harness: both tiers, a warm sandbox checked for leftovers after each
test, and ways to look for processes and files a job left behind."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox_jobs import _survivors
from troop.verifiers.sandbox import Job, JobResult, Limits, Sandbox
from troop.verifiers.sandbox import tiers as sandbox_module

ROOT = os.geteuid() == 0
HERE = "tests.sandbox_jobs"  # the module the sandbox workers import the jobs from
FAST = Limits(wall_s=3.0, cpu_s=2.0)


def _bwrap_reason() -> str:
    return sandbox_module.bwrap_problem(ROOT)


TIERS = [
    pytest.param(
        "bwrap",
        marks=pytest.mark.skipif(
            bool(_bwrap_reason()), reason=f"bwrap not usable here: {_bwrap_reason()}"
        ),
    ),
    "rlimits",
]


@pytest.fixture(name="warm_box", scope="module", params=TIERS)
def warm_box_fixture(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with Sandbox(2, tier=request.param) as box:
        assert box.tier == request.param, box.tier_note
        yield box


@pytest.fixture(name="marker")
def marker_fixture() -> str:
    """A word a job plants in the command line of every process it starts."""
    return f"troop-test-{uuid.uuid4().hex}"


@pytest.fixture(name="owned")
def owned_fixture(tmp_path: Path) -> Path:
    """A directory only the test owns, with a file in it: jobs must not change it."""
    folder = tmp_path / "owned"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    return folder


@pytest.fixture(name="sandbox")
def sandbox_fixture(warm_box: Sandbox, owned: Path, marker: str) -> Iterator[Sandbox]:
    """The test module's sandbox, checked after the test: no process the jobs started
    survived, and (where the tier protects it) neither the home folder nor `owned` changed."""
    before = _snapshot(owned, Path.home())
    yield warm_box
    # Messages of their own: pytest rewrites asserts in test modules only, not in this one.
    survivors = _survivors(marker)
    assert survivors == [], f"processes the jobs started survived: {survivors}"
    leftovers = _leftovers(warm_box)
    assert leftovers == [], f"processes left below the workers: {leftovers}"
    if _isolated_fs(warm_box.tier):
        changed = sorted(set(_snapshot(owned, Path.home())) ^ set(before))
        assert changed == [], f"files outside the job's folder changed: {changed}"


def _leftovers(box: Sandbox) -> list[int]:
    """Processes below the workers other than the workers themselves (under bwrap each
    worker is bwrap, bwrap's init, then the Python worker)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    depth = 2 if box.tier == "bwrap" else 0  # processes between troop's child and the worker
    found: list[int] = []
    for root in box.worker_pids:
        level = [root]
        for _ in range(depth):
            level = [c for pid in level for c in children.get(pid, [])]
        todo = [c for pid in level for c in children.get(pid, [])]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def _run(box: Sandbox, name: str, limits: Limits = FAST, **payload: Any) -> JobResult:
    return box.run(Job(f"{HERE}:{name}", payload, limits))


def _snapshot(*folders: Path) -> list[tuple[str, int, int]]:
    """Names, sizes and mtimes under each folder (the home folder: its listing only)."""
    seen: list[tuple[str, int, int]] = []
    for folder in folders:
        if folder == Path.home():
            seen += [(str(folder / n), 0, 0) for n in sorted(os.listdir(folder))]
            continue
        for path in sorted(folder.rglob("*")):
            st = path.lstat()
            seen.append((str(path), st.st_size, st.st_mtime_ns))
    return seen


def _isolated_fs(tier: str) -> bool:
    """Whether the file system outside the job's folder is protected: always under bwrap;
    in the rlimits tier only when troop is root (jobs then run as a uid of their own)."""
    return tier == "bwrap" or ROOT


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
