"""From a §B decision to each edge's units (testbed/coedge/plan.py): the split rule's
shares over the chosen edges, whole units by largest remainder, no empty shares."""

from __future__ import annotations

import math

import numpy as np
import pytest

from testbed.coedge.plan import (
    MIN_WHOLE_S,
    largest_remainder,
    plan_task,
    unit_compute_s,
    whole_task_s,
)


def test_the_plan_takes_the_split_rules_shares_and_finish() -> None:
    whole = np.array([1.0, 2.0, 4.0, 3.0])
    wait = np.array([0.0, 0.2, 0.1, 9.0])  # edge 3 is chosen but waits past T: dropped
    chosen = np.array([True, True, True, True])
    plan = plan_task(chosen, whole, wait, units=1000)
    # the finish-together system over the kept edges 0-2, solved directly
    kept = [0, 1, 2]
    a = np.zeros((4, 4))
    rhs = np.zeros(4)
    for row, j in enumerate(kept):  # x_j·a_j − T = −w_j
        a[row, row], a[row, 3], rhs[row] = whole[j], -1.0, -wait[j]
    a[3, :3], rhs[3] = 1.0, 1.0
    *x, finish = np.linalg.solve(a, rhs)
    assert plan.planned_finish_s == pytest.approx(finish)
    np.testing.assert_allclose(plan.split[:3], x)
    assert plan.split[3] == 0.0 and plan.edges == (0, 1, 2)
    assert sum(plan.units) == 1000
    np.testing.assert_allclose(plan.shares, x, atol=1e-3)  # units are whole: within 1/units


def test_units_by_largest_remainder_sum_exactly_and_stay_closest() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        b = int(rng.integers(1, 7))
        shares = rng.dirichlet(np.ones(b))
        units = int(rng.integers(1, 50))
        got = largest_remainder(shares, units)
        assert got.sum() == units and (got >= 0).all()
        assert (np.abs(got - shares * units) < 1.0).all()
    np.testing.assert_array_equal(largest_remainder(np.array([0.5, 0.5]), 3), [2, 1])  # tie: lower
    np.testing.assert_array_equal(largest_remainder(np.array([0.2, 0.3, 0.5]), 10), [2, 3, 5])


def test_edges_left_with_no_unit_get_no_share_and_one_edge_always_does() -> None:
    # a tiny share on edge 1 (0.3 of a unit) rounds to nothing: it is left out
    whole = np.array([1.0, 30.0])
    plan = plan_task(np.array([True, True]), whole, np.zeros(2), units=10)
    assert 0 < plan.split[1] * 10 < 0.5
    assert plan.edges == (0,) and plan.units == (10,) and plan.shares == (1.0,)
    one = plan_task(np.array([False, True]), whole, np.array([5.0, 5.0]), units=1)
    assert one.edges == (1,) and one.units == (1,)
    with pytest.raises(ValueError, match="units"):
        plan_task(np.array([True, True]), whole, np.zeros(2), units=0)
    with pytest.raises(ValueError, match="at least one"):
        plan_task(np.array([False, False]), whole, np.zeros(2), units=3)


def test_the_whole_task_is_transfer_then_units_of_compute() -> None:
    got = whole_task_s(4.0, 10, np.array([math.inf, 400.0]), np.array([0.01, 0.002]))
    np.testing.assert_allclose(got, [0.1, 4.0 / 400.0 + 0.02])
    assert whole_task_s(1.0, 5, np.array([math.inf]), np.array([0.0]))[0] == MIN_WHOLE_S


def test_unit_time_is_measured_else_scaled_from_another_edge_else_nominal() -> None:
    ghz = [10.0, 20.0, 40.0]
    nominal = unit_compute_s("m", [{}, {}, {}], ghz, nominal_unit_s_at_1ghz=0.4)
    np.testing.assert_allclose(nominal, [0.04, 0.02, 0.01])
    one = unit_compute_s("m", [{}, {"m": 3.0, "x": 99.0}, {}], ghz, 0.4)
    np.testing.assert_allclose(one, [0.006, 0.003, 0.0015])  # 3 ms at 20 GHz, by the clocks
    two = unit_compute_s("m", [{"m": 1.0}, {}, {"m": 1.0}], ghz, 0.4)
    at_1ghz = (0.001 * 10 + 0.001 * 40) / 2
    np.testing.assert_allclose(two, [0.001, at_1ghz / 20, 0.001])
