"""Benchmark (issue 3): orchestration overhead of one slot with 10 agents vs the bare
cost of the same barrier.

Ours: a real `LiveBench` (coordinator/live.py) on the tiny zoo — embedded broker,
cloud, 2 edges, 10 agent processes, the coordinator's registry — stepped slot after
slot. Per slot, `SlotResult.overhead_ms`: the slot's wall time minus the longest step
an agent measured on itself (docs/live-loop.md: parallel `Step` on every agent, one
barrier). Three cases:

- "no task": `step(slot, generate=False)`: every board answers an empty Step — the
  barrier alone (parallel calls, the boards' Step handling, the reports);
- "tiny local task": every board draws a tiny task (units=1) and runs it itself
  (policy local) — the barrier plus ten boards' task work sharing this machine's cores;
- "tiny task, greedy": the same tasks, each sent whole to an edge that holds its model.

Reference: the bare cost of the same barrier: 10 bare gRPC unary echo calls of 1 KiB
(benchmarks/grpc_echo.py), one echo server process per agent, dispatched as LiveBench
dispatches `Step` (a thread pool of max(4, agents) threads, submit all, wait for all),
interleaved with our slots in the same run.

Besides the medians, each case reports the CPU time per slot of every process class
(coordinator, agents, edges, broker; for the reference: the caller and the echo
servers), read from /proc: on a machine with fewer cores than boards, a slot's wall
time is bounded below by that CPU time divided by the cores.

Goal (issue 3): ours ≤ 5 ms at p50 (the reference is context).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    write_node_config,
)
from benchmarks.grpc_echo import EchoServer
from benchmarks.live_common import CpuClock, cpu_ms_by_class

NAME = "orchestration"
GOAL = Goal(GoalKind.BELOW, 5.0, "≤ 5 ms at p50")
AGENTS = 10
EDGES = 2
PAYLOAD = bytes(range(256)) * 4  # 1 KiB: a StepReport of one task is ~0.5 KiB
BATCH = 10  # slots per case between switches


def _tiny_type(name: str, model: str, **extra: Any) -> dict[str, Any]:
    """A task type of ~0.015 Mbit and one cycle per bit: one model invocation."""
    return {
        "name": name, "model": model, "size_mbit": [0.01, 0.02],
        "density_cycles_per_bit": 1.0, "deadline_s": 5.0, **extra,
    }  # fmt: skip


def bench_config(path: Path, zoo: Path, agents: int = AGENTS, edges: int = EDGES) -> Path:
    """A bench on the tiny zoo: embedded broker, `edges` edges holding the three small
    models, `agents` boards with tiny tasks (one invocation each), no emulation."""
    return write_node_config(
        path, None, zoo,  # type: ignore[arg-type]  # None: the embedded broker
        edges={
            "count": edges, "energy": {"meter": "estimated"},
            "nodes": [{"preload": ["diffusion-s", "cgan-s", "ae-s"]}] * edges,
        },
        agents={"count": agents, "energy": {"meter": "estimated"}},
        tasks={
            "num_types": 3, "flops_per_cycle": 1.0, "arrival_prob": 1.0,
            "types": [
                _tiny_type("health_prediction", "diffusion-s", steps=1),
                _tiny_type("process_optimisation", "cgan-s"),
                _tiny_type("safety_monitoring", "ae-s"),
            ],
        },
        run={"start_timeout_s": 60.0, "policy": "local"},
    )  # fmt: skip


@contextmanager
def live_bench(workdir: Path, zoo: Path, agents: int = AGENTS) -> Iterator[Any]:
    """A started LiveBench (policy local) on `bench_config`, closed on exit."""
    from coordinator.live import LiveBench
    from coordinator.policy_choice import PolicySource
    from coordinator.run_folder import write_config
    from testbed.config import load_config

    cfg = load_config(bench_config(workdir / "testbed.yaml", zoo, agents), env={})
    run_dir = workdir / "run"
    run_dir.mkdir()
    with LiveBench(cfg, run_dir, write_config(run_dir, cfg), zoo) as bench:
        bench.start(PolicySource("local"))
        yield bench


def bench_pids(bench: Any) -> dict[str, int]:
    pids = {"coordinator": os.getpid()}
    for node_id, node in bench.launcher.nodes.items():
        if node.pid is not None:
            pids[node_id] = node.pid
    broker = getattr(bench.launcher, "broker", None)
    process = getattr(broker, "process", None)
    if process is not None:
        pids["broker"] = process.pid
    return pids


class EchoBarrier:
    """The reference: one echo server per agent; `slot()` is one barrier of parallel
    unary calls dispatched as LiveBench dispatches Step; returns its wall ms."""

    def __init__(self, stack: ExitStack, agents: int) -> None:
        self.servers = [stack.enter_context(EchoServer()) for _ in range(agents)]
        self.pool = ThreadPoolExecutor(max(4, agents), thread_name_prefix="echo")
        stack.callback(self.pool.shutdown)

    def slot(self) -> float:
        t0 = time.perf_counter()
        futures = [self.pool.submit(s.call, PAYLOAD, timeout=10) for s in self.servers]
        for future in futures:
            future.result()
        return (time.perf_counter() - t0) * 1e3

    def pids(self) -> dict[str, int]:
        return {"caller": os.getpid()} | {
            f"echo-{i}": s._proc.pid for i, s in enumerate(self.servers)
        }


@dataclass
class _Tally:
    """What one case measured, slot by slot."""

    overhead_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)
    max_step_ms: list[float] = field(default_factory=list)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    records: int = 0
    failed: int = 0

    def add_cpu(self, before: Any, after: Any) -> None:
        for key, value in cpu_ms_by_class(before, after, 1).items():
            self.cpu_ms[key] = self.cpu_ms.get(key, 0.0) + value


def _measure(bench: Any, echo: EchoBarrier, slots: int) -> tuple[dict[str, _Tally], _Tally]:
    """Every case BATCH slots at a time, then the reference barrier, until `slots`."""
    from coordinator.policy_choice import PolicySource
    from testbed.types import Outcome

    serial = iter(range(10**9))
    cases: dict[str, Callable[[], Any]] = {
        "no task": lambda: bench.step(next(serial), generate=False),
        "tiny local task": lambda: bench.step(next(serial)),
        "tiny task, greedy": lambda: bench.step(next(serial)),
    }
    policy = {"tiny local task": "local", "tiny task, greedy": "greedy"}
    tallies = {name: _Tally() for name in cases}
    ref = _Tally()
    ours_clock, ref_clock = CpuClock(bench_pids(bench)), CpuClock(echo.pids())
    for _ in range(BATCH):  # warm-up: channels, thread pools, ORT's first runs
        echo.slot()
    current = "local"
    while len(ref.wall_ms) < slots:
        for name, step in cases.items():
            wanted = policy.get(name, current)
            if wanted != current:
                bench.load_policy(PolicySource(wanted))
                current = wanted
                step()  # this slot also sends LoadPolicy: not measured
            step()  # warm-up after a switch
            tally, before = tallies[name], ours_clock.read()
            for _ in range(BATCH):
                result = step()
                tally.overhead_ms.append(result.overhead_ms)
                tally.wall_ms.append(result.wall_ms)
                tally.max_step_ms.append(result.max_step_ms)
                tally.records += len(result.records)
                tally.failed += sum(r.outcome is not Outcome.COMPLETED for r in result.records)
            tally.add_cpu(before, ours_clock.read())
        before = ref_clock.read()
        ref.wall_ms += [echo.slot() for _ in range(BATCH)]
        ref.add_cpu(before, ref_clock.read())
    return tallies, ref


def run(quick: bool = False) -> Result:
    slots = 10 if quick else 100
    zoo = tiny_zoo()
    with scratch("orchestration") as tmp, ExitStack() as stack:
        bench = stack.enter_context(live_bench(tmp, zoo))
        tallies, ref = _measure(bench, EchoBarrier(stack, AGENTS), slots)
        broker = bench.launcher.broker_description
    reference = median(ref.wall_ms)
    ref_cpu = {k: round(v / len(ref.wall_ms), 2) for k, v in ref.cpu_ms.items()}
    out, notes = [], []
    for name, tally in tallies.items():
        n = len(tally.overhead_ms)
        per_slot = {k: round(v / n, 2) for k, v in tally.cpu_ms.items()}
        details = {
            "ours_p95_ms": round(percentile(tally.overhead_ms, 95), 3),
            "wall_p50_ms": round(median(tally.wall_ms), 3),
            "max_step_p50_ms": round(median(tally.max_step_ms), 3),
            "reference_p95_ms": round(percentile(ref.wall_ms, 95), 3),
            **per_slot,
            **{f"reference_{k}": v for k, v in ref_cpu.items()},
        }
        label = f"{AGENTS} agents, {EDGES} edges, {name}"
        out.append(Case(label, median(tally.overhead_ms), reference, n, details=details))
        cpu_text = ", ".join(f"{k[4:-3]} {v}" for k, v in per_slot.items())
        notes.append(
            f"{name}: overhead p95 {details['ours_p95_ms']} ms; wall p50 "
            f"{details['wall_p50_ms']} ms, longest step p50 {details['max_step_p50_ms']} ms; "
            f"{tally.records} tasks, {tally.failed} not completed; CPU ms per slot: {cpu_text}"
        )
    ref_text = ", ".join(f"{k[4:-3]} {v}" for k, v in ref_cpu.items())
    notes.append(
        f"reference barrier: p95 {percentile(ref.wall_ms, 95):.3f} ms; CPU ms per slot: {ref_text}"
    )
    notes.append(
        f"{os.cpu_count()} cores for {AGENTS} boards, {EDGES} edges, cloud, broker; broker {broker}"
    )
    return report(Result(NAME, "ms", GOAL, out, notes))


if __name__ == "__main__":
    raise SystemExit(standalone(run))
