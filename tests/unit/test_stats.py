"""coordinator/stats.py against values computed by hand: Student-t intervals with the
sample standard deviation, and paired t-tests whose p-value has a closed form."""

from __future__ import annotations

import math

import pytest

from coordinator.stats import (
    Interval,
    Verdict,
    difference_test,
    format_interval,
    format_test,
    paired_test,
    t_interval,
    t_quantile,
)


def test_t_quantiles_match_the_printed_table() -> None:
    # t(0.975, ν) from any statistics textbook's table
    for dof, expected in ((1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045)):
        assert t_quantile(0.975, dof) == pytest.approx(expected, abs=5e-4)


def test_t_interval_by_hand_uses_the_sample_std() -> None:
    # 1..5: mean 3, sample std √2.5 (population std √2 would give a narrower interval)
    interval = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)  # 1.963243
    assert interval.n == 5 and interval.mean == pytest.approx(3.0)
    assert interval.low == pytest.approx(3.0 - half, rel=1e-6)
    assert interval.high == pytest.approx(3.0 + half, rel=1e-6)
    assert interval.half_width == pytest.approx(1.963243, rel=1e-6)


def test_t_interval_of_three_seeds() -> None:
    # 90, 110, 100: s = 10, t(0.975, 2) = 4.302653 → ± 24.8414
    interval = t_interval([90.0, 110.0, 100.0])
    assert (interval.low, interval.high) == pytest.approx((75.1586, 124.8414), abs=1e-4)


def test_one_sample_has_no_interval_and_nan_is_dropped() -> None:
    one = t_interval([4.0, math.nan])
    assert one.n == 1 and one.mean == 4.0 and not one.has_interval
    assert math.isnan(one.low) and math.isnan(one.high)
    assert format_interval(one, 1) == "4.0 (n = 1, no interval)"
    assert t_interval([]).n == 0 and format_interval(t_interval([]), 1) == "n/a"


def test_paired_test_has_the_closed_form_p_of_two_degrees_of_freedom() -> None:
    # differences 1, 2, 3: mean 2, s = 1, t = 2√3 with 2 d.o.f., where the t CDF is
    # 1/2 + t / (2 √(2 + t²)): p = 1 − t / √(2 + t²) = 1 − √12 / √14
    test = paired_test([11.0, 22.0, 33.0], [10.0, 20.0, 30.0])
    assert test.difference.mean == pytest.approx(2.0)
    assert test.p_value == pytest.approx(1.0 - math.sqrt(12.0 / 14.0), rel=1e-9)  # 0.074180
    assert test.verdict is Verdict.NOT_SIGNIFICANT  # and the interval holds 0:
    assert test.difference.low < 0.0 < test.difference.high


def test_paired_test_finds_a_consistent_difference_unpaired_analysis_would_miss() -> None:
    # the seeds differ a lot, the pairs little: significant only because it is paired
    first = [100.0, 200.0, 300.0, 400.0, 500.0]
    second = [a - d for a, d in zip(first, [4.9, 5.1, 5.0, 4.8, 5.2], strict=True)]
    test = paired_test(first, second)
    assert test.verdict is Verdict.SIGNIFICANT and test.p_value < 1e-5
    assert test.difference.low > 0.0
    # the same two samples unpaired: the intervals of the two means overlap widely
    a, b = t_interval(first), t_interval(second)
    assert a.low < b.high and b.low < a.high


def test_paired_test_agrees_with_scipy_ttest_rel() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    first, second = [0.61, 0.58, 0.66, 0.52, 0.60], [0.55, 0.57, 0.58, 0.50, 0.61]
    ours = paired_test(first, second)
    theirs = scipy_stats.ttest_rel(first, second)
    assert ours.p_value == pytest.approx(float(theirs.pvalue), rel=1e-9)


def test_degenerate_and_untestable_pairs() -> None:
    same = difference_test([0.0, 0.0, 0.0])
    assert same.p_value == 1.0 and same.verdict is Verdict.NOT_SIGNIFICANT
    # the same non-zero difference on every seed: t would be infinite; no verdict
    constant = difference_test([0.5, 0.5, 0.5])
    assert math.isnan(constant.p_value) and constant.verdict is Verdict.NO_SPREAD
    assert format_test(constant, 2) == "+0.50, the same on every seed, no t-test"
    single = paired_test([1.0, math.nan], [0.0, 3.0])  # one usable pair
    assert single.difference.n == 1 and single.verdict is Verdict.UNTESTABLE
    assert format_test(single, 2) == "+1.00 (n = 1, no interval), no test"
    with pytest.raises(ValueError, match="differ in length"):
        paired_test([1.0], [1.0, 2.0])


def test_formatting() -> None:
    interval = Interval(mean=-2.0, low=-3.5, high=-0.5, n=3)
    assert format_interval(interval, 2, signed=True) == "-2.00 [-3.50, -0.50]"
    text = format_test(paired_test([11.0, 22.0, 33.0], [10.0, 20.0, 30.0]), 1)
    # 2 ± 4.302653 · 1 / √3 = 2 ± 2.484
    assert text == "+2.0 [-0.5, +4.5], p = 0.074, not significant"
