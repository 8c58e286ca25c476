"""The HTML and Markdown renderers on hand-built analyses: untrusted text stays text, and every
section shows its numbers or the reason it has none."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from tests import report_fixtures
from tests.report_fixtures import fake_analysis
from tests.report_pages import _Checker, parse_html, render_markdown
from troop.engine.analytics.results import Analysis, Fits, Refused
from troop.engine.analytics.results_curves import CoverageRefused, PassAtK
from troop.engine.numbers import fraction
from troop.reports import html, markdown, tables
from troop.reports.document import session_document
from troop.reports.samples import Example
from troop.reports.tables import headline_indices

HOSTILE = '<script>alert("x")</script> ![img](http://evil.example/x.png) [a](b) | ``` & *em*'


def page_of(analysis: Analysis) -> _Checker:
    """The analysis' HTML report (no failure examples) as a reader's browser sees it."""
    return parse_html(html.render(session_document(analysis, {}), "t"))


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
