"""Confidence intervals and paired tests over seeds (pure functions).

The experiment reports (docs/experiments.md, "Statistics") give every mean over seeds
with its 95 % confidence interval from Student's t distribution with the sample standard
deviation (ddof = 1): mean ± t(1 − α/2, n − 1) · s / √n. With 3–5 seeds a bootstrap over
seeds has too few distinct resamples to be trusted, hence t. One seed gives no interval,
and the tables say so.

Two algorithms evaluated with the same seed see the same tasks (common random numbers),
so their comparison is paired by seed: the test is on the per-seed differences (a paired
t-test, two-sided), and a difference is significant at 95 % when p < 0.05, that is when
the 95 % interval of the mean difference excludes 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

CONFIDENCE = 0.95
"""The level of every interval and test in the reports."""


@dataclass(frozen=True)
class Interval:
    """A mean over `n` samples and its confidence interval [low, high]; with n < 2 the
    bounds are NaN (no interval), with n = 0 the mean too."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and not math.isnan(self.low)


class Verdict(Enum):
    """Whether a paired difference is significant at the report's level."""

    SIGNIFICANT = "significant"
    NOT_SIGNIFICANT = "not significant"
    UNTESTABLE = "no test"  # fewer than 2 pairs
    # Every pair differs by the same non-zero amount: s = 0 makes t infinite, which would
    # call 3 seeds that agree "significant" on no evidence of the spread, so no verdict.
    NO_SPREAD = "the same on every seed, no t-test"


@dataclass(frozen=True)
class PairedTest:
    """The mean of per-seed differences with its interval, and the two-sided p-value of
    the t-test that the mean difference is 0 (NaN with fewer than 2 pairs)."""

    difference: Interval
    p_value: float
    confidence: float = CONFIDENCE

    @property
    def verdict(self) -> Verdict:
        if self.difference.n < 2:
            return Verdict.UNTESTABLE
        if math.isnan(self.p_value):
            return Verdict.NO_SPREAD
        significant = self.p_value < 1.0 - self.confidence
        return Verdict.SIGNIFICANT if significant else Verdict.NOT_SIGNIFICANT


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if not math.isnan(float(v))]


def t_quantile(probability: float, degrees_of_freedom: int) -> float:
    """The `probability` quantile of Student's t with the given degrees of freedom."""
    from scipy.stats import t  # lazy: scipy costs ≈ 0.3 s to import

    return float(t.ppf(probability, degrees_of_freedom))


def t_two_sided_p(t_statistic: float, degrees_of_freedom: int) -> float:
    """P(|T| ≥ |t_statistic|) for T ~ Student's t."""
    from scipy.stats import t

    return float(2.0 * t.sf(abs(t_statistic), degrees_of_freedom))


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean and Student-t confidence interval of `values` (NaN values dropped)."""
    finite = _finite(values)
    n = len(finite)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = statistics.fmean(finite)
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * statistics.stdev(finite) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def difference_test(differences: Sequence[float], confidence: float = CONFIDENCE) -> PairedTest:
    """The t-test that the mean of per-pair `differences` is 0, with its interval.

    All differences equal: the interval is that value; p is 1 when it is 0, else NaN
    (Verdict.NO_SPREAD: the t statistic would be infinite)."""
    interval = t_interval(differences, confidence)
    if interval.n < 2:
        return PairedTest(interval, math.nan, confidence)
    spread = statistics.stdev(_finite(differences))
    if spread == 0.0:
        return PairedTest(interval, 1.0 if interval.mean == 0.0 else math.nan, confidence)
    t_statistic = interval.mean / (spread / math.sqrt(interval.n))
    return PairedTest(interval, t_two_sided_p(t_statistic, interval.n - 1), confidence)


def paired_test(
    first: Sequence[float], second: Sequence[float], confidence: float = CONFIDENCE
) -> PairedTest:
    """Paired t-test of first − second, pair by pair; pairs with a NaN are left out."""
    if len(first) != len(second):
        raise ValueError(f"paired samples differ in length: {len(first)} vs {len(second)}")
    differences = [a - b for a, b in zip(first, second, strict=True)
                   if not (math.isnan(a) or math.isnan(b))]  # fmt: skip
    return difference_test(differences, confidence)


def format_interval(interval: Interval, digits: int, signed: bool = False) -> str:
    """`mean [low, high]`; `mean (n = 1, no interval)`; `n/a` without samples."""
    if interval.n == 0 or math.isnan(interval.mean):
        return "n/a"
    spec = f"{'+' if signed else ''}.{digits}f"
    if not interval.has_interval:
        return f"{interval.mean:{spec}} (n = {interval.n}, no interval)"
    return f"{interval.mean:{spec}} [{interval.low:{spec}}, {interval.high:{spec}}]"


def format_p(p_value: float) -> str:
    if math.isnan(p_value):
        return "p n/a"
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def format_test(test: PairedTest, digits: int) -> str:
    """`+1.23 [+0.40, +2.06], p = 0.012, significant`, or with n = 1 `… no test`."""
    verdict = test.verdict
    text = format_interval(test.difference, digits, signed=True)
    if verdict is Verdict.UNTESTABLE:
        return text if test.difference.n == 0 else f"{text}, {verdict.value}"
    if verdict is Verdict.NO_SPREAD:
        return f"{test.difference.mean:+.{digits}f}, {verdict.value}"
    return f"{text}, {format_p(test.p_value)}, {verdict.value}"
