"""A session's report as blocks: configuration, headline figures, plots, tables, failures."""

# Every number shown comes from the analysis (troop.engine.analytics.analysis), formatted,
# never recomputed: the report, the TUI and `--format json` cannot disagree.

from __future__ import annotations

import datetime as dt

from troop.engine.analytics.results import Analysis, Refused
from troop.engine.analytics.results_curves import CoverageRefused, PassAtK, SolvedVsSpent
from troop.engine.numbers import (
    MISSING,
    count,
    dollars,
    duration,
    fraction,
    interval,
    number,
    rate,
    si,
)
from troop.engine.storage.config import ModelIdentity
from troop.reports import plots
from troop.reports.blocks import Block, Code, Document, Heading, Image, Para, Table
from troop.reports.forecasts import backtest_section, law_tables
from troop.reports.samples import Example
from troop.reports.tables import PROBLEM_COLUMNS, PROBLEM_NUMERIC, headline_indices, problem_rows

_TEXT_CHARS = 2000  # longest sample text or verifier output quoted in a report, characters
# GGUF `general.file_type` codes (llama.cpp's llama_ftype), for the quantisation line.
_FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
}


def _when(ts: float | None) -> str:
    if not isinstance(ts, (int, float)):
        return "–"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def quantisation(model: ModelIdentity) -> str:
    code = model.file_type
    if code is None:
        return MISSING
    try:
        return _FILE_TYPES.get(int(code), f"file type {code}")
    except ValueError:  # not llama.cpp's number: shown as the file has it
        return code


def shown(value: object, missing: str = MISSING) -> str:
    """A stored setting as text; `missing` where the session's file lacks it."""
    return missing if value is None else str(value)


def _clip(text: str) -> str:
    if len(text) <= _TEXT_CHARS:
        return text
    return text[:_TEXT_CHARS] + f"\n… ({count(len(text) - _TEXT_CHARS)} more characters)"


def title(analysis: Analysis) -> str:
    s = analysis.session
    return f"troop report: {shown(s.model.name, '?')} on {shown(s.problem_set.name, '?')}"


def configuration(analysis: Analysis) -> Table:
    s = analysis.session
    # The model, sampling and problem set are as the session's file has them: any of their
    # facts may be missing (an older troop's file, a served model).
    m, samp, ps = s.model, s.sampling, s.problem_set
    temps = ", ".join(f"{t:g}" for t in samp.temperatures or ())
    rows = [
        ("model", shown(m.name)),
        (
            "model identity",
            f"{m.general_name or MISSING} ({m.architecture or '?'}, "
            f"{count(m.n_params) if m.n_params else '?'} parameters, "
            f"{shown(m.n_layer, '?')} layers, trained context "
            f"{count(m.n_ctx_train) if m.n_ctx_train else '?'} tokens)",
        ),
        ("model file sha256", shown(m.sha256)),
        (
            "quantisation",
            f"{quantisation(m)} ({shown(m.description)}, "
            f"{count(m.file_bytes or m.size_bytes)} bytes)",
        ),
        ("prompt format", shown(s.prompt_format.kind)),
        (
            "sampling",
            f"temperature {temps or MISSING}; top-k {shown(samp.top_k)}; "
            f"top-p {shown(samp.top_p)}; min-p {shown(samp.min_p)}; "
            f"max tokens {shown(samp.max_tokens)}; seed {s.seed}",
        ),
        (
            "problem set",
            f"{shown(ps.name)} ({shown(ps.format)}; "
            f"{shown(ps.source)}), {count(len(analysis.problems))} problems",
        ),
        (
            "budget",
            f"{count(s.budget)} samples per problem ({s.policy} "
            f"policy); {count(s.samples)} samples stored, "
            f"{count(s.verified)} verified",
        ),
        ("verifier", verifier_name(analysis)),
        ("sandbox tier", str(s.tier or "–")),
        ("troop version", str(s.troop_version)),
        (
            "session",
            f"{s.path} (created {_when(s.created_at)}, {plural(len(s.runs), 'run')})",
        ),
    ]
    return Table(("setting", "value"), tuple(rows), caption="Configuration")


def verifier_name(analysis: Analysis) -> str:
    """The verifier whose verdicts count, with its version, or "none"."""
    v = analysis.session.verifier
    return "none" if v is None else f"{v.name} {v.version}"


def headline(analysis: Analysis) -> list[Block]:
    cov = analysis.coverage
    if isinstance(cov, CoverageRefused):
        return [Para(f"Coverage is not available: {cov.reason}.")]
    if isinstance(cov, SolvedVsSpent):
        return _headline_coverage_only(cov)
    conf = round(100 * cov.confidence)
    idx = headline_indices(cov.k, cov.n_min)
    label = "k (samples per problem)"
    rows = tuple(
        (count(cov.k[i]), fraction(cov.pass_at_k[i]), interval(cov.low[i], cov.high[i]))
        for i in idx
    )
    blocks: list[Block] = [
        Table(
            (label, "coverage (pass@k)", f"{conf}% interval"),
            rows,
            (True, True, True),
            caption=f"Coverage at 1, 10, 100 … {count(cov.n_min)} samples per problem "
            f"({count(cov.solved)} of {count(cov.problems)} problems solved by at least "
            "one sample)",
        )
    ]
    if cov.n_min != cov.n_max:
        blocks.append(
            Para(
                f"Problems have between {count(cov.n_min)} and {count(cov.n_max)} samples; "
                f"the curve stops at the smallest.",
                note=True,
            )
        )
    return blocks


def _headline_coverage_only(cov: SolvedVsSpent) -> list[Block]:
    """A session whose budget followed the verdicts: solved against samples spent, quoted
    where the spending first reaches 1, 10, 100 … per problem, and at its end."""
    ks = cov.k
    idx = sorted(
        {
            next(i for i, k in enumerate(ks) if k >= 10**p)
            for p in range(12)
            if ks and ks[-1] >= 10**p
        }
        | ({len(ks) - 1} if ks else set())
    )
    rows = tuple((number(ks[i]), fraction(cov.pass_at_k[i])) for i in idx)
    return [
        Table(
            ("samples spent per problem", "fraction of problems solved"),
            rows,
            (True, True),
            caption=f"Problems solved against samples spent "
            f"({count(cov.solved)} of {count(cov.problems)} solved)",
        ),
        Para(f"Coverage-only session: {cov.NOTE}.", note=True),
    ]


def coverage_section(analysis: Analysis) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Coverage")]
    png = plots.coverage(analysis)
    cov = analysis.coverage
    if png and isinstance(cov, SolvedVsSpent):
        blocks.append(
            Image(
                "coverage",
                png,
                "Fraction of problems solved against samples spent per problem, log axis.",
                "Problems solved against samples "
                "spent per problem (log scale), in the order they were drawn.",
            )
        )
    elif png and isinstance(cov, PassAtK):
        blocks.append(
            Image(
                "coverage",
                png,
                "Coverage (pass@k) against samples per problem "
                "on a log axis, with bootstrap band, fitted law and forecast.",
                f"Coverage against samples per problem (log scale). Band: "
                f"{round(100 * cov.confidence)}% bootstrap over problems. "
                "Dashed: the better-fitting law, continued to 100× the budget.",
            )
        )
    return [*blocks, *law_tables(analysis.fit), *backtest_section(analysis)]


def cost_section(analysis: Analysis) -> list[Block]:
    c = analysis.cost
    el = c.electricity
    rows = [
        ("prompt tokens (evaluated)", count(c.prompt_tokens)),
        ("completion tokens", count(c.completion_tokens)),
        ("wall time", duration(c.wall_s)),
        ("sampling rate", rate(c.samples_per_s, "samples/s")),
        ("decoding rate (completion)", rate(c.tokens_per_s, "tok/s")),
        ("compute (estimate)", f"{si(c.flops)} FLOPs"),
        (
            "electricity",
            f"{number(el.kwh)} kWh at {number(el.watts)} W: {dollars(el.usd)}",
        ),
    ]
    rows += [(f"at API price '{name}'", dollars(v)) for name, v in c.usd_api.items()]
    # Per solved problem these are means: samples and tokens are magnitudes, not exact counts.
    per = c.per_solved
    per_rows = (
        ("samples", number(per.samples)),
        ("tokens (prompt + completion)", number(per.tokens)),
        ("wall time", duration(per.wall_s)),
        ("compute, FLOPs", si(per.flops)),
        ("API price (the first price list)", dollars(per.usd)),
        ("electricity, kWh", number(per.kwh)),
    )
    blocks: list[Block] = [
        Heading(2, "Cost"),
        Table(("measure", "value"), tuple(rows), caption="Whole session"),
        Table(("measure", "per solved problem"), per_rows, caption="Per solved problem"),
    ]
    png = plots.cost(analysis)
    if png:
        blocks.append(
            Image(
                "cost",
                png,
                "Coverage against tokens, FLOPs, dollars and wall time per problem, log axes.",
                "Coverage against the cost of drawing k samples per problem (log scales).",
            )
        )
    return blocks


def plural(n: int, word: str) -> str:
    return f"{count(n)} {word}" if n == 1 else f"{count(n)} {word}s"


def selection_section(analysis: Analysis) -> list[Block]:
    sel = analysis.selection
    blocks: list[Block] = [Heading(2, "Precision against coverage")]
    if isinstance(sel, Refused):
        blocks.append(Para(f"Not available: {sel.reason}.", note=True))
    else:
        png = plots.selection(analysis)
        if png:
            blocks.append(
                Image(
                    "selection",
                    png,
                    "Coverage, majority vote and best-of-k against k, log axis.",
                    "How often picking one sample "
                    "(majority vote, highest log-probability) finds a correct one, "
                    "against coverage (any sample correct).",
                )
            )
        curves = sel.curves
        columns = [
            (name, ys)
            for name, ys in (
                ("coverage", curves.coverage),
                ("majority", curves.majority),
                ("best of k", curves.best_of_k),
                ("best of majority", curves.best_of_majority),
            )
            if len(ys) == len(curves.k)
        ]
        idx = headline_indices(curves.k, curves.k[-1]) if curves.k else []
        rows = tuple((count(curves.k[i]), *(fraction(ys[i]) for _, ys in columns)) for i in idx)
        blocks.append(
            Table(
                ("k", *(name for name, _ in columns)),
                rows,
                (True,) * (1 + len(columns)),
                caption="Selection at k",
            )
        )
    fp = analysis.false_positives
    if not isinstance(fp, Refused):
        blocks.append(
            Table(
                ("measure", "value"),
                (
                    ("visible / hidden verifier", f"{fp.visible} / {fp.hidden}"),
                    ("samples passing the visible tests", count(fp.visible_pass)),
                    (
                        "of those, failing the hidden tests",
                        count(fp.hidden_fail_of_visible_pass),
                    ),
                    ("false-positive rate", fraction(fp.rate)),
                    (
                        "problems the visible tests call solved, the hidden never pass",
                        count(fp.problems_falsely_solved),
                    ),
                ),
                caption="False positives: the prompt's visible examples against the session's "
                "verifier",
            )
        )
    return blocks


def temperature_section(analysis: Analysis) -> list[Block]:
    rows = analysis.by_temperature
    blocks: list[Block] = [Heading(2, "Coverage by temperature")]
    if not rows:
        return [*blocks, Para("No per-temperature figures.", note=True)]
    body = tuple(
        (
            f"{r.temperature:g}",
            count(r.k[-1] if r.k else 0),
            fraction(r.pass_at_k[-1] if r.pass_at_k else None),
            count(len(r.solved)),
        )
        for r in rows
    )
    blocks.append(
        Table(
            ("temperature", "samples per problem", "coverage at that k", "problems solved"),
            body,
            (True, True, True, True),
        )
    )
    if len(rows) > 1:
        png = plots.temperatures(analysis)
        if png:
            blocks.append(
                Image(
                    "temperature",
                    png,
                    "Coverage against k, one line per temperature.",
                    "Coverage by sampling temperature (log scale).",
                )
            )
    return blocks


def statuses_section(analysis: Analysis) -> list[Block]:
    rows = tuple((s, count(n)) for s, n in sorted(analysis.statuses.items()))
    return [
        Heading(2, "Verifier verdicts"),
        Table(("status", "samples"), rows or (("(none)", "0"),), (False, True)),
    ]


def problems_section(analysis: Analysis) -> list[Block]:
    return [
        Heading(2, "Problems"),
        Table(PROBLEM_COLUMNS, tuple(problem_rows(analysis)), PROBLEM_NUMERIC),
    ]


def failures_section(examples: dict[str, list[Example]]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Failed samples")]
    if not examples:
        return [*blocks, Para("No failed samples (or no verifier).", note=True)]
    for status, items in examples.items():
        blocks.append(Heading(3, f"{status}"))
        for ex in items:
            credit = f" ({ex.credit})" if ex.credit else ""
            blocks.append(
                Para(
                    f"{ex.problem_id}, sample {ex.sample_index} "
                    f"(temperature {ex.temperature:g}): {ex.detail or status}"
                    f"{credit}"
                )
            )
            blocks.append(Code(_clip(ex.text), "sample text"))
            if ex.output.strip():
                more = " (cut by the verifier)" if ex.truncated else ""
                blocks.append(Code(_clip(ex.output), f"verifier output{more}"))
    return blocks


def session_document(analysis: Analysis, examples: dict[str, list[Example]]) -> Document:
    """The whole single-session report; the page embeds the analysis' JSON (`to_json()`)."""
    doc = Document(title(analysis), data=analysis.to_json())
    s = analysis.session
    doc.add(
        Heading(1, doc.title),
        Para(
            f"Session {s.path}, created {_when(s.created_at)}; "
            f"report by troop {s.troop_version}. Coverage is pass@k with the "
            "unbiased estimator of Chen et al. (2021), averaged over problems."
        ),
        configuration(analysis),
        Heading(2, "Headline figures"),
        *headline(analysis),
    )
    doc.add(
        *coverage_section(analysis),
        *cost_section(analysis),
        *selection_section(analysis),
        *temperature_section(analysis),
        *statuses_section(analysis),
        *problems_section(analysis),
        *failures_section(examples),
    )
    return doc
