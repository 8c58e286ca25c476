"""A session's report as blocks: configuration, headline figures, plots, tables, failures."""

# Every number shown comes from the analysis (troop.engine.analytics.analysis), formatted,
# never recomputed: the report, the TUI and `--format json` cannot disagree.

from __future__ import annotations

import datetime as dt
from typing import Any

from troop.engine.analytics.fits import LAW_NAMES
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
from troop.reports import plots
from troop.reports.blocks import Code, Document, Heading, Image, Para, Table
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


def _refused(section: Any) -> str | None:
    if isinstance(section, dict) and "refused" in section:
        return str(section["refused"])
    return None


def _when(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return "–"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def quantisation(model: dict[str, Any]) -> str:
    code = model.get("file_type")
    try:
        name = _FILE_TYPES.get(int(code), f"file type {code}") if code is not None else "–"
    except (TypeError, ValueError):
        name = str(code)
    return name


def _clip(text: str) -> str:
    if len(text) <= _TEXT_CHARS:
        return text
    return text[:_TEXT_CHARS] + f"\n… ({count(len(text) - _TEXT_CHARS)} more characters)"


def title(analysis: dict[str, Any]) -> str:
    s = analysis["session"]
    return f"troop report: {s['model'].get('name', '?')} on {s['problem_set'].get('name', '?')}"


def configuration(analysis: dict[str, Any]) -> Table:
    s = analysis["session"]
    m, samp, ps = s["model"], s["sampling"], s["problem_set"]
    verifier = s.get("verifier")
    temps = ", ".join(f"{t:g}" for t in samp.get("temperatures") or ())
    fmt = s.get("prompt_format")
    prompt_format = fmt.get("kind", "–") if isinstance(fmt, dict) else str(fmt)
    params = m.get("n_params")
    rows = [
        ("model", str(m.get("name", "–"))),
        (
            "model identity",
            f"{m.get('general_name') or '–'} ({m.get('architecture') or '?'}, "
            f"{count(params) if params else '?'} parameters, "
            f"{m.get('n_layer', '?')} layers, trained context "
            f"{count(m['n_ctx_train']) if m.get('n_ctx_train') else '?'} tokens)",
        ),
        ("model file sha256", str(m.get("sha256", "–"))),
        (
            "quantisation",
            f"{quantisation(m)} ({m.get('description', '–')}, "
            f"{count(m.get('file_bytes') or m.get('size_bytes'))} bytes)",
        ),
        ("prompt format", prompt_format),
        (
            "sampling",
            f"temperature {temps or '–'}; top-k {samp.get('top_k', '–')}; "
            f"top-p {samp.get('top_p', '–')}; min-p {samp.get('min_p', '–')}; "
            f"max tokens {samp.get('max_tokens', '–')}; seed {s.get('seed', '–')}",
        ),
        (
            "problem set",
            f"{ps.get('name', '–')} ({ps.get('format', '–')}; "
            f"{ps.get('source', '–')}), {count(len(analysis['problems']))} problems",
        ),
        (
            "budget",
            f"{count(s.get('budget'))} samples per problem ({s.get('policy', '–')} "
            f"policy); {count(s.get('samples'))} samples stored, "
            f"{count(s.get('verified'))} verified",
        ),
        ("verifier", "none" if not verifier else f"{verifier['name']} {verifier['version']}"),
        ("sandbox tier", str(s.get("tier") or "–")),
        ("troop version", str(s.get("troop_version", "–"))),
        (
            "session",
            f"{s.get('path', '–')} (created {_when(s.get('created_at'))}, "
            f"{plural(len(s.get('runs') or ()), 'run')})",
        ),
    ]
    return Table(("setting", "value"), tuple(rows), caption="Configuration")


def headline(analysis: dict[str, Any]) -> list[Any]:
    cov = analysis["coverage"]
    why = _refused(cov)
    if why:
        return [Para(f"Coverage is not available: {why}.")]
    if cov.get("coverage_only"):
        return _headline_coverage_only(cov)
    conf = round(100 * cov["confidence"])
    idx = headline_indices(cov["k"], cov["n_min"])
    label = "k (samples per problem)"
    rows = tuple(
        (count(cov["k"][i]), fraction(cov["pass_at_k"][i]), interval(cov["low"][i], cov["high"][i]))
        for i in idx
    )
    blocks: list[Any] = [
        Table(
            (label, "coverage (pass@k)", f"{conf}% interval"),
            rows,
            (True, True, True),
            caption=f"Coverage at 1, 10, 100 … {count(cov['n_min'])} samples per problem "
            f"({count(cov['solved'])} of {count(cov['problems'])} problems solved by at least "
            "one sample)",
        )
    ]
    if cov["n_min"] != cov["n_max"]:
        blocks.append(
            Para(
                f"Problems have between {count(cov['n_min'])} and {count(cov['n_max'])} samples; "
                f"the curve stops at the smallest.",
                note=True,
            )
        )
    return blocks


def _headline_coverage_only(cov: dict[str, Any]) -> list[Any]:
    """A session whose budget followed the verdicts: solved against samples spent, quoted
    where the spending first reaches 1, 10, 100 … per problem, and at its end."""
    ks = cov["k"]
    idx = sorted(
        {
            next(i for i, k in enumerate(ks) if k >= 10**p)
            for p in range(12)
            if ks and ks[-1] >= 10**p
        }
        | ({len(ks) - 1} if ks else set())
    )
    rows = tuple((number(ks[i]), fraction(cov["pass_at_k"][i])) for i in idx)
    note = cov.get("note") or "the budget followed the verdicts"
    return [
        Table(
            ("samples spent per problem", "fraction of problems solved"),
            rows,
            (True, True),
            caption=f"Problems solved against samples spent "
            f"({count(cov['solved'])} of {count(cov['problems'])} solved)",
        ),
        Para(f"Coverage-only session: {note}.", note=True),
    ]


def _law_rows(
    analysis: dict[str, Any],
) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Rows of the fits table, the forecasts table and the budget-for-target table."""
    fit = analysis["fit"]
    fits: list[tuple[str, ...]] = []
    forecasts: list[tuple[str, ...]] = []
    budgets: list[tuple[str, ...]] = []
    for key, name in LAW_NAMES.items():
        law = fit.get(key)
        why = _refused(law)
        if why or not isinstance(law, dict):
            fits.append((name, f"not fitted: {why}", MISSING, MISSING, ""))
            continue
        names = ("a", "b") if key == "power_law" else ("alpha", "beta")
        params = ", ".join(f"{n} = {number(law[n])}" for n in names)
        span = f"{count(law['k_from'])}–{count(law['k_to'])}" if "k_from" in law else MISSING
        better = "better fit" if fit.get("better") == key else ""
        fits.append((name, params, number(law["rmse"]), span, better))
        for p in law.get("forecast") or ():
            forecasts.append(
                (name, count(p["k"]), fraction(p["coverage"]), interval(p["low"], p["high"]))
            )
        for b in law.get("budget_for") or ():
            budgets.append((name, fraction(b["target"]), budget_k(b["k"]), interval_k(b)))
    return fits, forecasts, budgets


def budget_k(k: float | None) -> str:
    """A forecast budget: None means the law never reaches the target; under 1, one sample
    already does."""
    if k is None:
        return "beyond reach"
    return "≤ 1" if k <= 1 else count(k)


def interval_k(b: dict[str, Any]) -> str:
    lo, hi = b.get("low"), b.get("high")
    if lo is None and hi is None:
        return MISSING
    low = budget_k(lo) if lo is not None else MISSING
    high = budget_k(hi) if hi is not None else "∞"
    return f"[{low}, {high}]"


def coverage_section(analysis: dict[str, Any]) -> list[Any]:
    blocks: list[Any] = [Heading(2, "Coverage")]
    png = plots.coverage(analysis)
    cov = analysis["coverage"]
    if png and cov.get("coverage_only"):
        blocks.append(
            Image(
                "coverage",
                png,
                "Fraction of problems solved against samples spent per problem, log axis.",
                "Problems solved against samples "
                "spent per problem (log scale), in the order they were drawn.",
            )
        )
    elif png:
        blocks.append(
            Image(
                "coverage",
                png,
                "Coverage (pass@k) against samples per problem "
                "on a log axis, with bootstrap band, fitted law and forecast.",
                f"Coverage against samples per problem (log scale). Band: "
                f"{round(100 * cov['confidence'])}% bootstrap over problems. "
                "Dashed: the better-fitting law, continued to 100× the budget.",
            )
        )
    fits, forecasts, budgets = _law_rows(analysis)
    blocks.append(
        Table(
            ("law", "parameters", "rmse", "fitted k", ""),
            tuple(fits),
            (False, False, True, False, False),
            caption="Fitted scaling laws",
        )
    )
    if forecasts:
        blocks.append(
            Table(
                ("law", "k", "forecast coverage", "interval"),
                tuple(forecasts),
                (False, True, True, True),
                caption="Forecast coverage at larger budgets",
            )
        )
    if budgets:
        blocks.append(
            Table(
                ("law", "target coverage", "samples per problem", "interval"),
                tuple(budgets),
                (False, True, True, True),
                caption="Forecast budget to reach a coverage",
            )
        )
    return [*blocks, *backtest_section(analysis)]


def backtest_section(analysis: dict[str, Any]) -> list[Any]:
    """How far each law's forecast, fitted on part of the budget, missed the coverage seen."""
    bt = analysis.get("backtest")
    if bt is None:
        return []  # an analysis made before backtests existed
    blocks: list[Any] = [Heading(3, "Backtest of the forecasts")]
    why = _refused(bt)
    if why or not isinstance(bt, dict):
        return [*blocks, Para(f"Not available: {why}.", note=True)]
    conf = round(100 * bt["confidence"])
    rows = tuple(
        (
            f"1/{f['fraction']} ({count(f['m'])})",
            LAW_NAMES[f["law"]],
            fraction(f["coverage"]),
            fraction(f["error"]) if f["error"] is not None else f"not fitted: {f['refused']}",
            "" if f["inside"] is None else ("yes" if f["inside"] else "no"),
        )
        for f in bt["forecasts"]
    )
    blocks.append(
        Para(
            f"Each law is fitted on the first m samples of every problem alone and "
            f"forecasts coverage at n = {count(bt['n'])}, where all the samples show "
            f"{fraction(bt['observed'])} ({conf}% interval "
            f"{interval(bt['low'], bt['high'])}). {bt.get('summary') or ''}"
        )
    )
    blocks.append(
        Table(
            (
                "fitted on (m)",
                "law",
                f"forecast at {count(bt['n'])}",
                "absolute error",
                f"inside the {conf}% interval",
            ),
            rows,
            (False, False, True, True, False),
            caption="Forecasts from part of the budget against the observed value",
        )
    )
    png = plots.backtest(analysis)
    if png:
        blocks.append(
            Image(
                "backtest",
                png,
                "Forecast coverage at the full budget against "
                "the samples per problem the laws were fitted on, with the "
                "observed coverage and its interval.",
                "Backtest: each law fitted "
                "on the first m samples per problem, forecasting the coverage at "
                "the full budget (band: the observed value's interval).",
            )
        )
    return blocks


def cost_section(analysis: dict[str, Any]) -> list[Any]:
    c = analysis["cost"]
    blocks: list[Any] = [Heading(2, "Cost")]
    why = _refused(c)
    if why:
        return [*blocks, Para(f"Cost is not available: {why}.")]
    el = c.get("electricity") or {}
    rows = [
        ("prompt tokens (evaluated)", count(c.get("prompt_tokens"))),
        ("completion tokens", count(c.get("completion_tokens"))),
        ("wall time", duration(c.get("wall_s"))),
        ("sampling rate", rate(c.get("samples_per_s"), "samples/s")),
        ("decoding rate (completion)", rate(c.get("tokens_per_s"), "tok/s")),
        ("compute (estimate)", f"{si(c.get('flops'))} FLOPs"),
        (
            "electricity",
            f"{number(el.get('kwh'))} kWh at {number(el.get('watts'))} W: {dollars(el.get('usd'))}",
        ),
    ]
    rows += [(f"at API price '{name}'", dollars(v)) for name, v in (c.get("usd_api") or {}).items()]
    blocks.append(Table(("measure", "value"), tuple(rows), caption="Whole session"))
    per = c.get("per_solved")
    if isinstance(per, dict) and per and not _refused(per):
        blocks.append(
            Table(
                ("measure", "per solved problem"),
                tuple(_per_solved(key, v) for key, v in per.items()),
                caption="Per solved problem",
            )
        )
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


#: Each per-solved-problem measure: its label, and how its value is written (means, so
#: samples and tokens are magnitudes rather than exact counts).
_PER_SOLVED = {
    "samples": ("samples", number),
    "tokens": ("tokens (prompt + completion)", number),
    "wall_s": ("wall time", duration),
    "flops": ("compute, FLOPs", si),
    "usd": ("API price (the first price list)", dollars),
    "kwh": ("electricity, kWh", number),
}


def _per_solved(key: str, value: Any) -> tuple[str, str]:
    label, write = _PER_SOLVED.get(key, (key, number))
    if isinstance(value, (int, float)) or value is None:
        return label, write(value)
    return label, str(value)


def plural(n: int, word: str) -> str:
    return f"{count(n)} {word}" if n == 1 else f"{count(n)} {word}s"


def selection_section(analysis: dict[str, Any]) -> list[Any]:
    sel = analysis.get("selection")
    blocks: list[Any] = [Heading(2, "Precision against coverage")]
    why = _refused(sel)
    if why or not isinstance(sel, dict):
        blocks.append(Para(f"Not available: {why}.", note=True))
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
        keys = [
            k
            for k in ("coverage", "majority", "best_of_k", "best_of_majority")
            if len(sel.get(k) or ()) == len(sel["k"])
        ]
        idx = headline_indices(sel["k"], sel["k"][-1]) if sel["k"] else []
        rows = tuple((count(sel["k"][i]), *(fraction(sel[k][i]) for k in keys)) for i in idx)
        blocks.append(
            Table(
                ("k", *(k.replace("_", " ") for k in keys)),
                rows,
                (True,) * (1 + len(keys)),
                caption="Selection at k",
            )
        )
    fp = analysis.get("false_positives")
    why = _refused(fp)
    if isinstance(fp, dict) and not why:
        blocks.append(
            Table(
                ("measure", "value"),
                (
                    ("visible / hidden verifier", f"{fp['visible']} / {fp['hidden']}"),
                    ("samples passing the visible tests", count(fp["visible_pass"])),
                    (
                        "of those, failing the hidden tests",
                        count(fp["hidden_fail_of_visible_pass"]),
                    ),
                    ("false-positive rate", fraction(fp["rate"])),
                    (
                        "problems the visible tests call solved, the hidden never pass",
                        count(fp.get("problems_falsely_solved")),
                    ),
                ),
                caption="False positives: the prompt's visible examples against the session's "
                "verifier",
            )
        )
    return blocks


def temperature_section(analysis: dict[str, Any]) -> list[Any]:
    rows = analysis.get("by_temperature") or []
    blocks: list[Any] = [Heading(2, "Coverage by temperature")]
    if not rows:
        return [*blocks, Para("No per-temperature figures.", note=True)]
    body = tuple(
        (
            f"{r['temperature']:g}",
            count(r["k"][-1] if r["k"] else 0),
            fraction(r["pass_at_k"][-1] if r["pass_at_k"] else None),
            count(len(r["solved"])),
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


def statuses_section(analysis: dict[str, Any]) -> list[Any]:
    counts = analysis.get("statuses") or {}
    rows = tuple((s, count(n)) for s, n in sorted(counts.items()))
    return [
        Heading(2, "Verifier verdicts"),
        Table(("status", "samples"), rows or (("(none)", "0"),), (False, True)),
    ]


def problems_section(analysis: dict[str, Any]) -> list[Any]:
    return [
        Heading(2, "Problems"),
        Table(PROBLEM_COLUMNS, tuple(problem_rows(analysis)), PROBLEM_NUMERIC),
    ]


def failures_section(examples: dict[str, list[Example]]) -> list[Any]:
    blocks: list[Any] = [Heading(2, "Failed samples")]
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


def session_document(analysis: dict[str, Any], examples: dict[str, list[Example]]) -> Document:
    """The whole single-session report."""
    doc = Document(title(analysis), data=analysis)
    s = analysis["session"]
    doc.add(
        Heading(1, doc.title),
        Para(
            f"Session {s.get('path', '?')}, created {_when(s.get('created_at'))}; "
            f"report by troop {s.get('troop_version', '?')}. Coverage is pass@k with the "
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
