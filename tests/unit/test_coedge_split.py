"""The DDRL-AMSA split rule (testbed/coedge/split.py): equals the linear solve of the
finish-together system, equalises the kept servers' finish times, drops only servers
that would have finished later, and minimises the task's delay."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.coedge.split import split_task, task_delay_s, whole_task_s


def _finish_together_solve(a: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """x and T from x_j·a_j − T = −w_j (each j), Σ x_j = 1 by numpy.linalg.solve."""
    n = len(a)
    m = np.zeros((n + 1, n + 1))
    m[:n, :n] = np.diag(a)
    m[:n, n] = -1.0
    m[n, :n] = 1.0
    rhs = np.concatenate([-w, [1.0]])
    sol = np.linalg.solve(m, rhs)
    return sol[:n], float(sol[n])


def _instances(seed: int, count: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.05, 2.0, (count, b))
    w = rng.uniform(0.0, 1.5, (count, b)) * (rng.random((count, b)) < 0.7)
    chosen = rng.random((count, b)) < 0.6
    chosen[np.arange(count), rng.integers(0, b, count)] = True
    return a, w, chosen


def test_equal_waits_split_in_proportion_to_speed() -> None:
    split = split_task(np.array([[1.0, 3.0]]), np.zeros((1, 2)), np.ones((1, 2), dtype=bool))
    np.testing.assert_allclose(split.shares, [[0.75, 0.25]])
    np.testing.assert_allclose(split.finish_s, [0.75])


def test_where_all_shares_are_positive_it_equals_the_linear_solve() -> None:
    a, w, chosen = _instances(0, 400, 5)
    split = split_task(a, w, chosen)
    solved = 0
    for i in range(len(a)):
        on = np.flatnonzero(chosen[i])
        x, t = _finish_together_solve(a[i, on], w[i, on])
        if (x > 0).all():  # nothing clipped: the closed form is the solve
            solved += 1
            np.testing.assert_allclose(split.shares[i, on], x, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(split.finish_s[i], t, rtol=1e-10)
            assert split.kept[i, on].all()
        else:  # clipped: the kept servers' own solve
            kept = np.flatnonzero(split.kept[i])
            x, t = _finish_together_solve(a[i, kept], w[i, kept])
            np.testing.assert_allclose(split.shares[i, kept], x, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(split.finish_s[i], t, rtol=1e-10)
    assert 50 < solved < len(a)  # both cases were exercised


def test_shares_are_a_distribution_over_the_chosen_servers() -> None:
    a, w, chosen = _instances(1, 500, 6)
    split = split_task(a, w, chosen)
    np.testing.assert_allclose(split.shares.sum(axis=1), 1.0, rtol=1e-12)
    assert (split.shares >= 0).all()
    assert (split.shares[~chosen] == 0).all() and not (split.kept & ~chosen).any()


def test_kept_servers_finish_together_and_dropped_ones_would_finish_later() -> None:
    a, w, chosen = _instances(2, 500, 6)
    split = split_task(a, w, chosen)
    finish = split.shares * a + w
    t = split.finish_s[:, None]
    np.testing.assert_allclose(np.where(split.kept, finish, t), np.broadcast_to(t, a.shape))
    dropped = chosen & ~split.kept
    assert dropped.any()
    # a dropped server's wait alone reaches T: any share there would finish after T
    assert (w[dropped] >= np.broadcast_to(t, a.shape)[dropped]).all()
    np.testing.assert_allclose(task_delay_s(a, w, split.shares), split.finish_s)


def test_no_other_split_over_the_chosen_servers_finishes_sooner() -> None:
    a, w, chosen = _instances(3, 60, 4)
    split = split_task(a, w, chosen)
    rng = np.random.default_rng(3)
    for i in range(len(a)):
        others = rng.dirichlet(np.ones(4), 300) * chosen[i]
        others /= others.sum(axis=1, keepdims=True)
        delays = task_delay_s(
            np.broadcast_to(a[i], others.shape), np.broadcast_to(w[i], others.shape), others
        )
        assert delays.min() >= split.finish_s[i] - 1e-12


def test_one_server_takes_the_whole_task() -> None:
    a = np.array([[0.4, 0.2, 0.9]])
    w = np.array([[0.1, 3.0, 0.0]])
    split = split_task(a, w, np.array([[False, True, False]]))
    np.testing.assert_allclose(split.shares, [[0.0, 1.0, 0.0]])
    np.testing.assert_allclose(split.finish_s, [3.2])


def test_a_task_without_a_chosen_server_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        split_task(np.ones((2, 2)), np.zeros((2, 2)), np.array([[True, False], [False, False]]))


def test_whole_task_time_is_transfer_then_compute_and_free_at_home() -> None:
    a = whole_task_s(
        np.array([4.0]), np.array([2.0]), np.array([np.inf, 8.0]), np.array([1.0, 4.0])
    )
    np.testing.assert_allclose(a, [[2.0, 0.5 + 0.5]])
