"""The twin's fidelity over several windows (`testbed calibrate --windows W`,
docs/twin.md, "Fidelity over several windows").

One fidelity window (20 slots of one policy) moves with the host: on the 2-core VM of
docs/results/ two windows of one policy minutes apart differed by up to 19 % in mean
latency, more than the 10 % the twin is asked to be within. With W windows per
heuristic the report gives each policy's gap as the mean of its per-window relative
gaps with a Student-t 95 % interval over windows (coordinator/stats.py), and says
whether that interval lies within ±10 %, outside it, or straddles it.

Window 0 is the usual fidelity window (slots 0 … S−1); window w ≥ 1 is slots
(w+1)·S … (w+2)·S−1, after the calibration window S … 2S−1, every heuristic on the same
tasks within a window (CRN). `random`'s boards draw their decisions on from where the
window before left them, as the twin replays them (`twin_metrics(first_slot=…)`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from coordinator.stats import Interval, format_interval, t_interval

WITHIN = 0.10
"""The fidelity asked of the twin: mean latency and energy within 10 % of the live bench."""
WINDOW_METRICS = ("latency_mean_s", "energy_mean_j", "completion_rate", "reward_mean")
_LABELS = {
    "latency_mean_s": "mean latency",
    "energy_mean_j": "mean energy",
    "completion_rate": "completion rate",
    "reward_mean": "mean reward",
}


def first_slot(window: int, slots: int) -> int:
    """The first slot of fidelity window `window` (0: the usual one; the calibration
    window S … 2S−1 comes between window 0 and window 1)."""
    if window < 0:
        raise ValueError(f"window must be ≥ 0, got {window}")
    return 0 if window == 0 else (window + 1) * slots


def window_name(policy: str, window: int) -> str:
    """The task-record file of `policy`'s fidelity window `window` in a calibrate run."""
    suffix = f"-w{window}" if window else ""
    return f"tasks-fidelity-{policy}{suffix}.csv"


def verdict(interval: Interval, within: float = WITHIN) -> str:
    """Whether the 95 % interval of a relative gap lies within ±`within`."""
    if not interval.has_interval:
        return "no interval"
    if -within <= interval.low and interval.high <= within:
        return "within"
    if interval.high < -within or interval.low > within:
        return "outside"
    return "undecided"


class Gap(Protocol):
    """One window of one policy, live beside the twin (fidelity.py's `PolicyGap`)."""

    @property
    def live(self) -> Any: ...
    @property
    def twin(self) -> Any: ...
    def gap(self, metric: str) -> tuple[float, float]: ...


@dataclass(frozen=True)
class WindowGaps:
    """One policy's fidelity windows, window 0 first."""

    policy: str
    windows: list[Gap]

    def relative(self, metric: str) -> list[float]:
        return [g.gap(metric)[1] for g in self.windows]

    def interval(self, metric: str) -> Interval:
        return t_interval(self.relative(metric))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in WINDOW_METRICS:
            iv = self.interval(m)
            out[m] = {
                "live": [getattr(g.live, m) for g in self.windows],
                "twin": [getattr(g.twin, m) for g in self.windows],
                "relative_gap": self.relative(m),
                "mean": iv.mean, "low": iv.low, "high": iv.high,
                "verdict": verdict(iv),
            }  # fmt: skip
        return out


def windows_markdown(gaps: list[WindowGaps], slots: int) -> list[str]:
    """The report's section on the windows (nothing with one window)."""
    if not gaps or len(gaps[0].windows) < 2:
        return []
    n = len(gaps[0].windows)
    lines = [
        "",
        f"## Over {n} windows",
        "",
        f"Every heuristic on {n} windows of {slots} slots (window 0 above; window w ≥ 1 is "
        f"slots (w+1)·{slots} … (w+2)·{slots}−1, after the calibration window), live and in "
        "the twin on the same tasks. Gap % per window = (twin − live) / live; mean over "
        "windows with its Student-t 95 % interval; *within* when the interval lies inside "
        f"±{100 * WITHIN:.0f} %, *outside* when it lies beyond, *undecided* when it straddles "
        "the bound.",
        "",
        "| policy | metric | live per window | gap % per window | mean gap % [95 %] | ±10 % |",
        "|---|---|---|---|---|---|",
    ]
    for g in gaps:
        for m in WINDOW_METRICS:
            live = ", ".join(number_cell(getattr(w.live, m)) for w in g.windows)
            per = ", ".join(percent_cell(x) for x in g.relative(m))
            iv = g.interval(m)
            pct = Interval(100 * iv.mean, 100 * iv.low, 100 * iv.high, iv.n)
            lines.append(
                f"| {g.policy} | {_LABELS[m]} | {live} | {per} | "
                f"{format_interval(pct, 1, signed=True)} | {verdict(iv)} |"
            )
    return lines


def number_cell(value: float, signed: bool = False) -> str:
    """A table cell: `value` to three decimals (with its sign on demand), "–" for NaN."""
    if math.isnan(value):
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def percent_cell(rel: float, unit: str = "") -> str:
    """A table cell: a relative difference in percent, signed, "–" for NaN."""
    return "–" if math.isnan(rel) else f"{100 * rel:+.1f}{unit}"
