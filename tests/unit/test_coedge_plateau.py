"""The plateau test of coordinator/coedge_plateau.py: flat when the last budgets' means
lie inside the largest budget's interval, not when the delay still falls."""

from __future__ import annotations

from typing import Any

from coordinator.coedge_plateau import summarise


def _rows(delays: dict[int, list[float]]) -> list[dict[str, Any]]:
    return [
        {"env_steps": steps, "seed": seed, "delay_s": d, "sampled_delay_s": d,
         "completion": 1.0, "train_s": 1.0}
        for steps, per_seed in delays.items() for seed, d in enumerate(per_seed)
    ]  # fmt: skip


def test_a_flat_tail_is_a_plateau_and_a_falling_one_is_not() -> None:
    flat = summarise(_rows({1: [0.5, 0.6, 0.55], 2: [0.30, 0.31, 0.32], 4: [0.31, 0.30, 0.32]}),
                     [1, 2, 4])  # fmt: skip
    assert flat["plateau"]["delay_s"] == {
        "tail_budgets": [2, 4],
        "tail_means": [0.31, 0.31],
        "flat": True,
    }
    falling = summarise(_rows({1: [0.5, 0.6, 0.55], 2: [0.40, 0.41, 0.42], 4: [0.30, 0.31, 0.30]}),
                        [1, 2, 4])  # fmt: skip
    assert not falling["plateau"]["delay_s"]["flat"]
    assert falling["per_budget"]["4"]["delay_s"]["n"] == 3


def test_budgets_without_rows_are_left_out() -> None:
    partial = summarise(_rows({1: [0.5, 0.6], 2: [0.3, 0.31]}), [1, 2, 4])
    assert set(partial["per_budget"]) == {"1", "2"}
    assert partial["plateau"]["sampled_delay_s"]["tail_budgets"] == [1, 2]
