"""Benchmark: what telemetry at 10 Hz from every node costs a task's latency.

Ours: a real `LiveBench` (coordinator/live.py, the tiny bench of
benchmarks/orchestration.py: embedded broker, cloud, edges, agent processes) whose
every node publishes `telemetry/v1` every 0.1 s (`telemetry.interval_s: 0.1`).
Reference: the same bench with telemetry as good as off. The schema has no switch to
disable telemetry (testbed/config/bench.py `TelemetryConfig`), so "off" is the longest
interval it allows, `PERIOD_MAX_S` (testbed/config/limits.py, 3600 s): no record is
published during a batch.

The figure is the p50 of the latency every completed task records (`TaskRecord.latency_ms`),
the same tiny tasks (seeded by the config) in both, in two cases: every task run on its
board (policy `local`: sub-millisecond tasks, where any interference shows most) and
every task sent to the edge, which runs the zoo's ONNX model (policy `offload`: an
AIGC task as the bench runs it). Batches alternate off, on, off, on...;
each batch is a fresh bench (the interval is a start-up setting of every node), warmed
up before it is measured, so a drift of the machine's load falls on both.

Goal: p50 with telemetry at 10 Hz < 1.05 × p50 with telemetry off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import (
    Case,
    Goal,
    GoalKind,
    Result,
    median,
    percentile,
    report,
    scratch,
    standalone,
    tiny_zoo,
)
from benchmarks.orchestration import bench_config

NAME = "telemetry_cost"
GOAL = Goal(GoalKind.RATIO_AT_MOST, 1.05, "p50 rises < 5 %")
AGENTS = 4
EDGES = 1
ON_INTERVAL_S = 0.1
WARMUP_SLOTS = 2
POLICIES = ("local", "offload")
"""Tasks on the board (sub-millisecond), and tasks on the edge's ONNX model."""


def off_interval_s() -> float:
    """The longest telemetry interval the schema allows (there is no off switch)."""
    from testbed.config.limits import PERIOD_MAX_S

    return PERIOD_MAX_S


@contextmanager
def telemetry_bench(workdir: Path, zoo: Path, interval_s: float, policy: str) -> Iterator[Any]:
    """The tiny live bench of benchmarks/orchestration.py with `interval_s` telemetry."""
    from coordinator.live import LiveBench
    from coordinator.policy_choice import PolicySource
    from coordinator.run_folder import write_config
    from testbed.config import load_config

    workdir.mkdir(parents=True)
    path = bench_config(workdir / "testbed.yaml", zoo, AGENTS, EDGES)
    data = yaml.safe_load(path.read_text())
    data["telemetry"] = {**data.get("telemetry", {}), "interval_s": interval_s}
    path.write_text(yaml.safe_dump(data))
    cfg = load_config(path, env={})
    run_dir = workdir / "run"
    run_dir.mkdir()
    with LiveBench(cfg, run_dir, write_config(run_dir, cfg), zoo) as bench:
        bench.start(PolicySource(policy))
        yield bench


def _batch(
    workdir: Path, zoo: Path, interval_s: float, slots: int, policy: str
) -> tuple[list[float], int]:
    """Latencies (ms) of the completed tasks of `slots` slots on a fresh bench, and
    how many tasks did not complete."""
    from testbed.types import Outcome

    latencies: list[float] = []
    failed = 0
    with telemetry_bench(workdir, zoo, interval_s, policy) as bench:
        for slot in range(WARMUP_SLOTS):
            bench.step(slot)
        for slot in range(WARMUP_SLOTS, WARMUP_SLOTS + slots):
            for record in bench.step(slot).records:
                if record.outcome is Outcome.COMPLETED:
                    latencies.append(record.latency_ms)
                else:
                    failed += 1
    return latencies, failed


def run(quick: bool = False) -> Result:
    batches, slots = (1, 8) if quick else (4, 40)
    zoo = tiny_zoo()
    off_s = off_interval_s()
    cases, notes = [], []
    with scratch(NAME) as tmp:
        for policy in POLICIES:
            case, note = _case(tmp / policy, zoo, policy, batches, slots, off_s)
            cases.append(case)
            notes.append(note)
    notes.insert(0, (
        f"task latency p50 with telemetry at {1 / ON_INTERVAL_S:g} Hz from every node vs "
        f"telemetry.interval_s {off_s:g} (the schema's longest; there is no off switch); "
        f"{batches} fresh benches of each, alternated, {slots} slots each after "
        f"{WARMUP_SLOTS} warm-up slots; {os.cpu_count()} cores"
    ))  # fmt: skip
    return report(Result(NAME, "ms", GOAL, cases, notes))


def _case(
    tmp: Path, zoo: Path, policy: str, batches: int, slots: int, off_s: float
) -> tuple[Case, str]:
    on: list[float] = []
    off: list[float] = []
    failed = {"on": 0, "off": 0}
    for index in range(batches):
        for label, interval_s, into in (("off", off_s, off), ("on", ON_INTERVAL_S, on)):
            got, bad = _batch(tmp / f"{label}-{index}", zoo, interval_s, slots, policy)
            into.extend(got)
            failed[label] += bad
    details = {
        "ours_p95_ms": round(percentile(on, 95), 3),
        "reference_p95_ms": round(percentile(off, 95), 3),
        "not_completed_on": float(failed["on"]),
        "not_completed_off": float(failed["off"]),
    }
    label = f"policy {policy}: {AGENTS} agents, {EDGES} edge, telemetry {ON_INTERVAL_S:g} s"
    note = (
        f"{policy}: p95 on {details['ours_p95_ms']} ms, off {details['reference_p95_ms']} ms; "
        f"not completed: on {failed['on']}, off {failed['off']}"
    )
    return Case(label, median(on), median(off), min(len(on), len(off)), details=details), note


if __name__ == "__main__":
    raise SystemExit(standalone(run))
