"""`testbed eval`'s table (eval.md): means over seeds with 95 % Student-t intervals, and
one seed saying it has no interval."""

from __future__ import annotations

from coordinator.commands.eval import table
from coordinator.evaluation import EvalResult


def result(policy: str, seed: int, latency_ms: float) -> EvalResult:
    return EvalResult(policy=policy, seed=seed, backend="twin", tasks=10, completion_rate=1.0,
                      latency_ms=latency_ms, latency_p95_ms=2 * latency_ms, energy_j=1.0,
                      reward=-0.5)  # fmt: skip


def test_eval_table_gives_t_intervals_over_seeds() -> None:
    rows = table([result("greedy", s, lat) for s, lat in enumerate((90.0, 110.0, 100.0))])
    # 90, 110, 100: sample std 10, t(0.975, 2) = 4.302653: 100 ± 24.84
    assert "| greedy | twin | 3 | 30 | 100.0 [100.0, 100.0] % | 100.0 [75.2, 124.8] |" in rows


def test_eval_table_with_one_seed_has_no_interval() -> None:
    rows = table([result("local", 0, 80.0)])
    assert "| 80.0 (n = 1, no interval) |" in rows and "±" not in rows
