"""How every presenter (TUI, headless console, reports, plot ticks) writes each kind of number."""

# One function per kind of quantity, so the same figure reads the same wherever it appears.
# Machine-readable outputs (the analysis JSON, CSV columns) keep raw values and never pass here.
# The rule: exact counts exactly; measured or estimated magnitudes to three significant
# figures, since timings, FLOP estimates and prices carry no more precision than that.

from __future__ import annotations

import math

#: What stands in for a number that is unknown or undefined (None, NaN, infinite).
MISSING = "–"
#: Significant figures of every magnitude that is not an exact count.
SIGNIFICANT = 3
#: Decimals of a fraction in [0, 1] (coverage, pass@1, bands): 1/1000 of the problems.
FRACTION_DIGITS = 3
#: Metric prefixes for large magnitudes, largest first.
_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
#: Units of a duration, largest first: seconds in each and its symbol.
_TIME_UNITS = ((3600.0, "h"), (60.0, "min"))


def _unknown(x: float | None) -> bool:
    return x is None or not math.isfinite(x)


def _rounded(x: float) -> float:
    """x to SIGNIFICANT significant figures (so 999.7 becomes 1000 before a unit is chosen)."""
    return float(f"{x:.{SIGNIFICANT}g}")


def _sig(x: float) -> str:
    """Three significant figures, trailing zeros dropped; whole numbers with thousands
    separators from 1,000 up; scientific only below 0.0001."""
    if abs(_rounded(x)) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{SIGNIFICANT}g}"


def count(x: float | None) -> str:
    """A count (samples, problems, tokens, bytes), exactly, with thousands separators:
    1234567 -> "1,234,567"; a fractional value is rounded to the nearest whole."""
    return MISSING if x is None or _unknown(x) else f"{round(x):,}"


def number(x: float | None) -> str:
    """A magnitude with no unit of its own (fit parameters, rmse, kWh, a mean): three
    significant figures, whole numbers with separators from 1,000, scientific below 0.0001:
    -0.4512 -> "-0.451", 12.5 -> "12.5", 123456.7 -> "123,457", 1.234e-5 -> "1.23e-05"."""
    return MISSING if x is None or _unknown(x) else _sig(x)


def si(x: float | None) -> str:
    """A large magnitude, such as a FLOP count, with a metric prefix (k, M, G, T, P, E) and three
    significant figures: 161_712_345_678 -> "162G", 2.5e6 -> "2.5M", 1000 -> "1k",
    999.7 -> "1k", 640 -> "640"."""
    if x is None or _unknown(x):
        return MISSING
    r = _rounded(x)
    for scale, prefix in _PREFIXES:
        if abs(r) >= scale:
            return f"{_sig(r / scale)}{prefix}"
    return _sig(r)


def fraction(x: float | None) -> str:
    """A fraction in [0, 1] (coverage, pass@1) to three decimals: 2/3 -> "0.667"."""
    return MISSING if x is None or _unknown(x) else f"{x:.{FRACTION_DIGITS}f}"


def interval(low: float | None, high: float | None) -> str:
    """An interval of fractions: (0.6, 0.7) -> "[0.600, 0.700]"; either end unknown -> "–"."""
    if _unknown(low) or _unknown(high):
        return MISSING
    return f"[{fraction(low)}, {fraction(high)}]"


def dollars(x: float | None) -> str:
    """US dollars: cents with thousands separators from $1 up ("$1,234.50"); below $1, three
    significant figures but never fewer than two decimals ("$0.50", "$0.0123", "$0.000299")."""
    if x is None or _unknown(x):
        return MISSING
    if x < 0:
        return "-" + dollars(-x)
    if x == 0 or _rounded(x) >= 1:
        return f"${x:,.2f}"
    decimals = SIGNIFICANT - 1 - math.floor(math.log10(_rounded(x)))
    whole, _, part = f"{x:.{max(2, decimals)}f}".partition(".")
    # Digits past the cents are significant figures, so their trailing zeros go.
    return f"${whole}.{part[:2]}{part[2:].rstrip('0')}"


def duration(seconds: float | None) -> str:
    """A span of time in the largest unit it fills (h, min, s), three significant figures:
    0.42 -> "0.42 s", 30 -> "30 s", 150 -> "2.5 min", 7200 -> "2 h", 59.99 -> "1 min"."""
    if seconds is None or _unknown(seconds):
        return MISSING
    r = _rounded(seconds)
    for size, unit in _TIME_UNITS:
        if abs(r) >= size:
            return f"{_sig(_rounded(r / size))} {unit}"
    return f"{_sig(r)} s"


def rate(per_second: float | None, unit: str) -> str:
    """A rate with its unit, three significant figures: (3.94, "tok/s") -> "3.94 tok/s"."""
    return f"{number(per_second)} {unit}"


def tick(axis: str, value: float) -> str:
    """A tick label on one of the analysis' cost axes, in that axis' presentation: samples,
    tokens and FLOPs with a metric prefix, wall_s as a duration, usd in dollars."""
    if axis == "wall_s":
        return duration(value)
    if axis == "usd":
        return dollars(value)
    return si(value)
