"""The sample browser steps through real session files: failures, filters, marks, copies, diffs."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input, Select

from tests.conftest import troop
from troop.engine.events import SampleRecord
from troop.engine.storage import session as session_file
from troop.engine.storage.rows import StoredVerdict
from troop.engine.storage.session import Session, StoredProblem
from troop.errors import SessionError
from troop.tui.screens.browser import FAILED, SampleBrowser
from troop.tui.screens.browser_dialogs import MarkDialog
from troop.tui.screens.sample_text import inert, verdict_text
from troop.verifiers.base import Status, Verdict

SIZE = (120, 36)
HOSTILE = "print('[bold red]x[/]')\n\x1b[2J\x1b]0;title\x07 done\r\n"

PROMPT = 'def add(a, b):\n    """Return a + b."""\n'
GOOD = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\n"
BAD = "Sure!\n```python\ndef add(a, b):\n    return a - b\n```\nThis adds them."
SLOW = "```python\ndef add(a, b):\n    while True:\n        pass\n```"
TRACEBACK = (
    'Traceback (most recent call last):\n  File "check.py", line 3, in check\n'
    "    assert add(2, 3) == 5\nAssertionError"
)


class Host(App[None]):
    """A bare app that opens the browser on one session, as the live app pushes it."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__()
        self.path = path
        self.kwargs = kwargs

    def on_mount(self) -> None:
        self.push_screen(SampleBrowser(self.path, **self.kwargs))


def browser(app: App[Any]) -> SampleBrowser:
    screen = app.screen
    assert isinstance(screen, SampleBrowser)
    return screen


def screen_text(app: App[Any]) -> str:
    """What the terminal would show, as text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def panel_text(app: App[Any], name: str) -> str:
    """What the terminal shows inside one panel (its border and title included)."""
    region = app.screen.query_one(f"#{name}-panel").region
    strips = app.screen._compositor.render_strips()[region.y : region.bottom]
    return "\n".join(strip.crop(region.x, region.right).text.rstrip() for strip in strips)


def run(scenario: Any) -> None:
    asyncio.run(scenario)


# -- a synthetic session: known texts and verdicts, for pictures and edge cases -----------


def record(pid: str, i: int, text: str, temperature: float) -> SampleRecord:
    return SampleRecord(
        pid,
        i,
        7000 + i,
        temperature,
        40,
        0.95,
        0.0,
        64,
        text,
        tuple(range(len(text) // 4)),
        18,
        "eos",
        None,
        0.25,
        -12.5,
        1,
    )


def verdict(status: Status, detail: str, output: str = "") -> Verdict:
    return Verdict(status, "python-tests", "3", 0.5, output, detail=detail, tier="bwrap")


def synthetic(path: Path) -> Path:
    """Problem add/0 has a pass (0), a fail (1), a timeout (2), a hostile text (3) and an
    unverified sample (4); add/1 only fails. Temperatures alternate 0.2 / 0.8."""
    s = Session.create(path, {"budget": 5, "config": {"model": {"name": "synthetic"}}})
    data = {"prompt": PROMPT, "entry_point": "add", "test": "assert add(2, 3) == 5"}
    problems = [StoredProblem(f"add/{i}", i, "humaneval", PROMPT, 20, (), data) for i in range(2)]
    s.add_problems(problems)
    s.begin_run({"parallel": 1})
    s.set_meta("verifier", {"name": "python-tests", "version": "3"})
    digest = session_file.tests_digest(data)
    rows = [
        ("add/0", GOOD, verdict(Status.PASS, "all tests passed")),
        ("add/0", BAD, verdict(Status.FAIL, "AssertionError in check()", TRACEBACK)),
        ("add/0", SLOW, verdict(Status.TIMEOUT, "wall time limit 3 s")),
        (
            "add/0",
            HOSTILE,
            verdict(Status.INVALID, "no code block", "[red]boom[/red] \x1b[31mred\x1b[0m\x07"),
        ),
        ("add/0", "def add(a, b): return b + a", None),
        ("add/1", BAD, verdict(Status.FAIL, "AssertionError in check()", TRACEBACK)),
    ]
    counts: dict[str, int] = {}
    for pid, text, v in rows:
        i = counts[pid] = counts.get(pid, -1) + 1
        s.add_sample(record(pid, i, text, 0.2 if i % 2 == 0 else 0.8))
        if v is not None:
            s.add_verdict(pid, i, digest, v)
    s.close()
    return path


# -- marks in the session file ------------------------------------------------------------


def test_marks_are_stored_in_the_session_and_survive_reopening(tmp_path: Path) -> None:
    path = synthetic(tmp_path / "s.troop")
    with Session.open(path) as s:
        s.add_mark("add/0", 1, "false positive", "passes with other inputs")
        s.add_mark("add/0", 1, "flaky test")
        s.add_mark("add/0", 1, "false positive", "edited")  # same label: note replaced
        with pytest.raises(SessionError, match="no sample 9"):
            s.add_mark("add/0", 9, "flaky test")
        with pytest.raises(SessionError, match="needs a label"):
            s.add_mark("add/0", 1, "  ")
    with Session.open(path) as s:
        assert sorted((m.problem_id, m.sample_index, m.label, m.note) for m in s.marks()) == [
            ("add/0", 1, "false positive", "edited"),
            ("add/0", 1, "flaky test", ""),
        ]
        assert s.marks("add/1") == []
        assert s.remove_mark("add/0", 1, "flaky test") is True
        assert s.remove_mark("add/0", 1, "flaky test") is False
    con = sqlite3.connect(path)
    assert con.execute("SELECT label, note FROM marks").fetchall() == [("false positive", "edited")]
    con.close()


def test_an_older_session_file_gains_the_marks_table_on_open(tmp_path: Path) -> None:
    path = synthetic(tmp_path / "old.troop")
    con = sqlite3.connect(path)
    con.execute("DROP TABLE marks")  # as written by a troop from before marks existed
    con.commit()
    con.close()
    with Session.open(path) as s:
        s.add_mark("add/1", 0, "interesting")
        assert [m.label for m in s.marks("add/1")] == ["interesting"]


# -- inert model text ---------------------------------------------------------------------


def test_inert_leaves_no_control_character() -> None:
    shown = inert(HOSTILE + "\x9b31m\u202eevil\u2066")
    assert "[bold red]x[/]" in shown and "␛[2J" in shown and "␛]0;title␇" in shown
    assert all(ch in "\n\t" or (ord(ch) >= 0x20 and not 0x7F <= ord(ch) < 0xA0) for ch in shown)
    assert "\u202e" not in shown and "<U+202E>" in shown and "\u2066" not in shown


def test_markup_and_escape_sequences_in_a_sample_show_literally(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = Host(synthetic(tmp_path / "s.troop"), problem_id="add/0")
        async with app.run_test(size=SIZE) as pilot:
            b = browser(app)
            while b.current is not None and b.current.sample_index != 3:
                await pilot.press("j")
            text = screen_text(app)
            assert "print('[bold red]x[/]')" in text  # markup shown, not applied
            assert "␛[2J␛]0;title␇ done␍" in text  # escapes shown as symbols
            assert "[red]boom[/red] ␛[31mred␛[0m␇" in text  # verifier output too
            assert "\x1b" not in text and "\x07" not in text
            strips = app.screen._compositor.render_strips()
            assert not any(seg.control for strip in strips for seg in strip)
            assert app.title == "Host"

    run(scenario())


# -- navigation, filters, diff, marks, copies on the synthetic session --------------------


def test_steps_through_failures_and_diffs_against_a_pass(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = Host(synthetic(tmp_path / "s.troop"))
        async with app.run_test(size=SIZE) as pilot:
            b = browser(app)
            assert b.current is not None and b.current.key == ("add/0", 1)  # first failure
            seen = []
            for _ in range(4):
                assert b.current is not None
                seen.append(b.current.key)
                await pilot.press("n")
            # Pass (0), unverified (4) are skipped; it wraps around after add/1.
            assert seen == [("add/0", 1), ("add/0", 2), ("add/0", 3), ("add/1", 0)]
            assert b.current is not None and b.current.key == ("add/0", 1)
            await pilot.press("p")
            assert b.current is not None and b.current.key == ("add/1", 0)
            await pilot.press("p", "p", "p")
            assert b.current is not None and b.current.key == ("add/0", 1)
            assert "AssertionError" in panel_text(app, "verdict")
            assert "return a - b" in panel_text(app, "code")
            diff = panel_text(app, "diff")
            assert "-    return a + b" in diff and "+    return a - b" in diff
            assert "passing sample 0" in str(app.screen.query_one("#diff-panel").border_title)
            assert app.screen.query_one("#verdict-panel").has_class("-failed")

    run(scenario())


def test_filters_by_status_problem_and_temperature(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = Host(synthetic(tmp_path / "s.troop"), status=FAILED)
        async with app.run_test(size=SIZE) as pilot:
            b = browser(app)
            assert [e.key for e in b.shown] == [
                ("add/0", 1),
                ("add/0", 2),
                ("add/0", 3),
                ("add/1", 0),
            ]
            app.screen.query_one("#status-filter", Select).value = "timeout"
            await pilot.pause()
            assert [e.key for e in b.shown] == [("add/0", 2)]
            b.set_filters(status="all", problem="add/0")
            assert [e.sample_index for e in b.shown] == [0, 1, 2, 3, 4]
            app.screen.query_one("#temperature-filter", Select).value = "0.8"
            await pilot.pause()
            assert [e.key for e in b.shown] == [("add/0", 1), ("add/0", 3)]
            b.set_filters(status="unverified", temperature="all")
            assert [e.key for e in b.shown] == [("add/0", 4)]
            assert "not verified" in panel_text(app, "verdict")
            b.set_filters(status="pass", problem="add/1")
            assert b.shown == [] and b.current is None
            assert "no samples match" in screen_text(app)

    run(scenario())


def test_picks_up_samples_written_by_another_connection(tmp_path: Path) -> None:
    path = synthetic(tmp_path / "s.troop")

    async def scenario() -> None:
        app = Host(path)
        async with app.run_test(size=SIZE) as pilot:
            b = browser(app)
            before = len(b.entries)
            # A sampling run writing meanwhile through its own connection (WAL).
            with Session.open(path) as writer:
                writer.add_sample(record("add/1", 1, "def add(a, b):\n    return a + b", 0.8))
            b._poll()  # what the 2 s timer does: a re-read in a thread worker
            for _ in range(100):
                if len(b.entries) > before:
                    break
                await pilot.pause(0.05)
            assert len(b.entries) == before + 1
            assert b.current is not None and b.current.key == ("add/0", 1)  # view kept

    run(scenario())


def test_mark_with_a_note_and_copy_to_a_file(tmp_path: Path) -> None:
    path = synthetic(tmp_path / "s.troop")

    async def scenario() -> None:
        app = Host(path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("m")
            assert isinstance(app.screen, MarkDialog)
            app.screen.query_one("#mark-label", Input).value = "flaky test"
            await pilot.press("enter")  # to the note
            await pilot.press(*"[b]fails", "space", *"once")
            await pilot.press("enter")
            b = browser(app)
            assert "flaky test: [b]fails once" in screen_text(app)
            await pilot.press("m", "escape")  # cancelled: nothing stored
            await pilot.press("c")
            await pilot.pause()
            copied = tmp_path / "s-add_0-1.txt"
            assert copied.read_text(encoding="utf-8") == BAD
            assert b.current is not None and b.current.key == ("add/0", 1)
            await pilot.press("escape")
            assert not isinstance(app.screen, SampleBrowser)
        with Session.open(path) as s:
            assert [(m.sample_index, m.label, m.note) for m in s.marks("add/0")] == [
                (1, "flaky test", "[b]fails once")
            ]

    run(scenario())


def test_copy_to_a_chosen_path(tmp_path: Path) -> None:
    path = synthetic(tmp_path / "s.troop")
    target = tmp_path / "out" / "picked.py"
    target.parent.mkdir()

    async def scenario() -> None:
        app = Host(path, problem_id="add/0", status="pass")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("C")
            app.screen.query_one("#copy-path", Input).value = str(target)
            await pilot.press("enter")
            await pilot.pause()
        assert target.read_text(encoding="utf-8") == GOOD

    run(scenario())


# -- pictures -----------------------------------------------------------------------------


def test_snapshot_browser_on_a_failed_sample(snap_compare: Any, tmp_path: Path) -> None:
    """A correct picture: the filter bar reads "status: all", "problem: all", "temperature:
    all" and "add/0 #1 · fail · 2 of 6 shown · 4 failed"; the sample panel shows the
    highlighted markdown answer with `return a - b`; "extracted code" shows just the function;
    the verifier panel has a red border with "fail · AssertionError in check()" and the
    traceback; the diff panel compares against passing sample 0 with `-    return a + b` and
    `+    return a - b`; the marks line says there are no marks."""
    assert snap_compare(Host(synthetic(tmp_path / "s.troop")), terminal_size=SIZE)


def test_snapshot_hostile_sample_is_inert(snap_compare: Any, tmp_path: Path) -> None:
    """A correct picture: sample 3 of add/0 shows `print('[bold red]x[/]')` in plain
    brackets, then `␛[2J␛]0;title␇ done␍` as visible symbols (the screen is not cleared,
    the title is still "Host"); the verifier panel shows "invalid · no code block" and
    `[red]boom[/red] ␛[31mred␛[0m␇` literally, not in red."""
    app = Host(synthetic(tmp_path / "s.troop"), problem_id="add/0", status="invalid")
    assert snap_compare(app, terminal_size=SIZE)


def test_snapshot_mark_dialog(snap_compare: Any, tmp_path: Path) -> None:
    """A correct picture: a centred dialog over the browser titled "mark sample 1 of add/0"
    with the label "false positive" filled in, an empty note field and the hint "enter:
    store · escape: cancel"."""

    async def still_cursor(pilot: Pilot[None]) -> None:
        await pilot.press("m")
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False

    assert snap_compare(
        Host(synthetic(tmp_path / "s.troop")), terminal_size=SIZE, run_before=still_cursor
    )


# -- a real session: the model's own failures ---------------------------------------------


@pytest.fixture(scope="module")
def real_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browse") / "real.troop"
    result = troop(
        "run",
        "--headless",
        "--problems",
        "arithmetic:3",
        "--samples",
        "4",
        "--parallel",
        "4",
        "--max-tokens",
        "48",
        "--session",
        str(path),
    )
    assert result.returncode == 0, result.stderr
    return path


@pytest.mark.model
def test_browses_the_failures_of_a_real_run(real_session: Path, tmp_path: Path) -> None:
    path = tmp_path / "real.troop"
    shutil.copy(real_session, path)
    con = sqlite3.connect(path)
    rows = con.execute(
        "SELECT v.problem_id, v.sample_index, v.status, v.detail, s.text FROM verdicts v"
        " JOIN samples s USING (problem_id, sample_index) JOIN problems p USING (problem_id)"
        " ORDER BY p.position, v.sample_index"
    ).fetchall()
    con.close()
    failed = [r for r in rows if r[2] not in ("pass", "infra_error")]
    assert len(rows) == 12 and failed, "the small model fails some arithmetic"

    async def scenario() -> None:
        app = Host(path)
        async with app.run_test(size=SIZE) as pilot:
            b = browser(app)
            order = []
            for _ in failed:
                assert b.current is not None
                order.append(b.current.key)
                assert b.current.status == next(r[2] for r in rows if r[:2] == b.current.key)
                await pilot.press("n")
            assert order == [(r[0], r[1]) for r in failed]
            first = failed[0]
            assert b.current is not None and b.current.key == first[:2]  # wrapped around
            assert first[3] in panel_text(app, "verdict")
            shown = panel_text(app, "sample")
            assert all(line[:40].strip() in shown for line in inert(first[4]).splitlines()[:3])
            await pilot.press("m")
            app.screen.query_one("#mark-label", Input).value = "wrong reference"
            await pilot.press("enter", *"checked", "enter", "c")
            await pilot.pause()
            safe = first[0].replace("/", "_")
            assert (tmp_path / f"real-{safe}-{first[1]}.txt").read_text() == first[4]
        with Session.open(path) as s:
            assert [(m.problem_id, m.sample_index, m.label, m.note) for m in s.marks()] == [
                (first[0], first[1], "wrong reference", "checked")
            ]

    run(scenario())


def test_the_verdict_panel_shows_partial_credit() -> None:
    row = StoredVerdict(
        problem_id="add/0",
        sample_index=0,
        verifier="python-tests",
        version="1",
        tests_digest="",
        status="fail",
        detail="AssertionError at test line 10",
        duration_s=0.05,
        tier="rlimits",
        output="",
        truncated=False,
        extra={"outcome": "returned", "tests_passed": 3, "tests_run": 7},
    )
    shown = verdict_text(row).plain
    assert "3 of 7 tests passed · 0.05 s · sandbox rlimits" in shown
    older = verdict_text(replace(row, extra={"outcome": "returned"})).plain
    assert "tests passed" not in older and "0.05 s · sandbox rlimits" in older
