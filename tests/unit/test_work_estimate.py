"""The edge's estimate of its queued work (edge_node/work_estimate.py): per-model
moving averages of measured compute per unit, and the seconds to finish what is
queued and running over the edge's slots."""

from __future__ import annotations

import pytest

from edge_node.work_estimate import SMOOTHING, WorkEstimate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_unit_time_is_a_moving_average_of_completed_tasks() -> None:
    work = WorkEstimate(1)
    work.queued("a", "cgan-s", 10)
    work.finished("a", units_done=10, compute_s=0.5)  # 50 ms per unit
    assert work.unit_compute_ms() == {"cgan-s": 50.0}
    work.queued("b", "cgan-s", 4)
    work.finished("b", units_done=4, compute_s=0.4)  # 100 ms per unit
    assert work.unit_compute_ms()["cgan-s"] == pytest.approx(50.0 + SMOOTHING * 50.0)
    work.queued("c", "cgan-s", 4)
    work.finished("c")  # failed: nothing done, nothing learnt
    assert work.unit_compute_ms()["cgan-s"] == pytest.approx(60.0)


def test_queued_work_counts_waiting_units_and_what_running_ones_have_left() -> None:
    clock = Clock()
    work = WorkEstimate(2, prior_unit_s=lambda model: 0.5 if model == "new" else None,
                        clock=clock)  # fmt: skip
    work.queued("m0", "cgan-s", 1)
    work.finished("m0", units_done=1, compute_s=0.1)  # 0.1 s per unit
    work.queued("a", "cgan-s", 10)  # 1.0 s
    work.queued("b", "new", 2)  # never measured: the prior, 1.0 s
    work.queued("c", "unknown", 7)  # no prior: 0
    assert work.queued_work_s() == pytest.approx((1.0 + 1.0) / 2)  # two slots
    work.started("a")
    clock.now += 0.25
    assert work.queued_work_s() == pytest.approx((0.75 + 1.0) / 2)
    clock.now += 5.0  # overran its estimate: nothing left, never negative
    assert work.queued_work_s() == pytest.approx(1.0 / 2)
    work.finished("a", units_done=10, compute_s=1.0)
    work.finished("b")
    work.finished("c")
    assert work.queued_work_s() == 0.0
