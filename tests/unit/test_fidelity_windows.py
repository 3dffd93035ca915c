"""The twin's fidelity over several windows (coordinator/calibration/windows.py): where
each window lies, and the verdict on a relative gap's interval against ±10 %."""

from __future__ import annotations

import math

import pytest

from coordinator.calibration.fidelity import FidelityReport, PolicyGap, RunMetrics
from coordinator.calibration.windows import WindowGaps, first_slot, verdict, window_name
from coordinator.stats import Interval


def _metrics(latency: float, energy: float = 10.0) -> RunMetrics:
    return RunMetrics(60, latency, 2 * latency, energy, 1.0, -latency, {})


def _gap(live: float, twin: float) -> PolicyGap:
    return PolicyGap("greedy", _metrics(live), _metrics(twin), _metrics(live / 3))


def test_windows_come_after_the_calibration_window() -> None:
    assert [first_slot(w, 20) for w in range(4)] == [0, 40, 60, 80]
    assert window_name("random", 0) == "tasks-fidelity-random.csv"
    assert window_name("random", 2) == "tasks-fidelity-random-w2.csv"
    with pytest.raises(ValueError):
        first_slot(-1, 20)


@pytest.mark.parametrize(
    ("low", "high", "want"),
    [(-0.09, 0.05, "within"), (0.11, 0.3, "outside"), (-0.4, -0.12, "outside"),
     (-0.05, 0.15, "undecided"), (-0.2, 0.2, "undecided")],
)  # fmt: skip
def test_the_verdict_asks_the_whole_interval(low: float, high: float, want: str) -> None:
    assert verdict(Interval((low + high) / 2, low, high, 5)) == want
    assert verdict(Interval(0.0, math.nan, math.nan, 1)) == "no interval"


def test_gaps_over_windows_are_relative_to_each_windows_live_run() -> None:
    # the live bench drifts (1.0 → 1.3 s) while the twin follows the tasks (1.05, 1.2)
    gaps = WindowGaps("greedy", [_gap(1.0, 1.05), _gap(1.3, 1.2), _gap(1.1, 1.1)])
    rel = gaps.relative("latency_mean_s")
    assert rel == pytest.approx([0.05, -0.1 / 1.3, 0.0])
    interval = gaps.interval("latency_mean_s")
    assert interval.mean == pytest.approx(sum(rel) / 3) and interval.n == 3
    assert interval.low < min(rel) < max(rel) < interval.high  # t with 2 d.o.f. is wide
    js = gaps.to_json()["latency_mean_s"]
    assert js["live"] == [1.0, 1.3, 1.1] and js["verdict"] == verdict(interval)


def test_the_report_has_a_windows_section_only_with_two_or_more() -> None:
    one = FidelityReport(20, 0, "c.json", [_gap(1.0, 1.05)])
    assert "windows" not in one.to_json() and "Over" not in one.markdown()
    windows = [WindowGaps("greedy", [_gap(1.0, 1.05), _gap(1.2, 1.2)])]
    two = FidelityReport(20, 0, "c.json", [_gap(1.0, 1.05)], windows=windows)
    md = two.markdown()
    assert "## Over 2 windows" in md
    assert "| greedy | mean latency | 1.000, 1.200 | +5.0, +0.0 |" in md
    assert two.to_json()["windows"]["first_slots"] == [0, 40]
