"""Each kind of number has one presentation, pinned here string for string."""

from __future__ import annotations

import math

import pytest

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
    tick,
)


def test_counts_are_exact_with_thousands_separators() -> None:
    assert count(0) == "0"
    assert count(598) == "598"
    assert count(1234567) == "1,234,567"
    assert count(12.6) == "13"  # a mean of counts rounds to the nearest whole


def test_flops_take_a_metric_prefix_and_three_significant_figures() -> None:
    # The same FLOP count once read 161.7G, 162G and 1.62e+11 in three places.
    assert si(161_712_345_678) == "162G"
    assert si(2.5e6) == "2.5M"
    assert si(1000) == "1k"
    assert si(1234) == "1.23k"
    assert si(999.7) == "1k"  # rounded before the prefix is chosen, never "1e+03"
    assert si(640) == "640"
    assert si(3.4e15) == "3.4P"
    assert si(0) == "0"


def test_magnitudes_take_three_significant_figures() -> None:
    assert number(-0.4512) == "-0.451"
    assert number(12.5) == "12.5"
    assert number(0.012) == "0.012"
    assert number(123456.7) == "123,457"
    assert number(999.96) == "1,000"
    assert number(1.234e-5) == "1.23e-05"


def test_fractions_take_three_decimals() -> None:
    assert fraction(2 / 3) == "0.667"
    assert fraction(0.5) == "0.500"
    assert fraction(0) == "0.000"
    assert interval(0.6, 0.7) == "[0.600, 0.700]"
    assert interval(None, 0.7) == MISSING


def test_dollars_are_cents_or_three_significant_figures_below_a_dollar() -> None:
    assert dollars(1234.5) == "$1,234.50"
    assert dollars(1) == "$1.00"
    assert dollars(0.5) == "$0.50"
    assert dollars(0.01) == "$0.01"
    assert dollars(0.0123) == "$0.0123"
    assert dollars(0.000306) == "$0.000306"
    assert dollars(0.00001) == "$0.00001"
    assert dollars(0.9996) == "$1.00"  # rounds up to a dollar, then shows cents
    assert dollars(0) == "$0.00"
    assert dollars(-0.5) == "-$0.50"


def test_durations_take_the_largest_unit_they_fill() -> None:
    assert duration(0.42) == "0.42 s"
    assert duration(30) == "30 s"
    assert duration(12.345) == "12.3 s"
    assert duration(59.99) == "1 min"  # rounded before the unit is chosen, never "60 s"
    assert duration(150) == "2.5 min"
    assert duration(7200) == "2 h"
    assert duration(1e6) == "278 h"
    assert duration(0) == "0 s"


def test_rates_carry_their_unit() -> None:
    assert rate(3.94, "tok/s") == "3.94 tok/s"
    assert rate(0.2, "samples/s") == "0.2 samples/s"
    assert rate(1234.6, "tok/s") == "1,235 tok/s"
    assert rate(None, "tok/s") == f"{MISSING} tok/s"


@pytest.mark.parametrize("write", [count, number, si, fraction, dollars, duration])
def test_unknown_numbers_read_as_a_dash(write: object) -> None:
    assert callable(write)
    for unknown in (None, math.nan, math.inf):
        assert write(unknown) == MISSING


def test_axis_ticks_speak_the_axis_unit() -> None:
    assert tick("samples", 1000) == "1k"
    assert tick("tokens", 2_500_000) == "2.5M"
    assert tick("flops", 1e12) == "1T"
    assert tick("wall_s", 30) == "30 s" and tick("wall_s", 7200) == "2 h"
    assert tick("usd", 0.01) == "$0.01"
