"""Benchmark (issue 13): the edge's share executor (edge_node/share_executor.py) —
its cost per task against the FIFO executor, and whether a model's latency is linear
in its denoising steps and inversely proportional to its compute share.

Work: real invocations of the zoo's large diffusion model (`diffusion-l` of the demo
zoo, else the tiny one), one sample per task, ONNX Runtime on the CPU with one
intra-op thread, one slot (`parallel_slots: 1`), through the executors' real code;
the handler is `LoadedModel.run` as the edge calls it, without the cache and the
gRPC around it (benchmarks/submit_task.py measures those).

1. Overhead: the same stream (three model ids, shares 0.6/0.3/0.1, every task queued
   before the first starts, 4 steps each) through `ShareExecutor` (ours) and
   `FifoExecutor` (reference), interleaved repeats. Per task = the median invocation
   (pooled over both) + the executor's median gap between the end of one invocation
   and the start of the next (its own work per task: answer, account, choose, hand
   over). Goal: ours / FIFO ≤ 1.05. The wall time per task (first submit to last
   answer) and the cost with an empty handler are in the notes: on a shared 2-core
   machine the wall time moves by ±50 % between runs of the same executor, the gaps
   by a few µs.
2. Latency vs steps: one model per step count k (2, 6, 10, 14, 20, 28), equal shares,
   all backlogged at once on the slot for a window; a model's latency is the time per
   task it gets (its mean task time × window / the slot time its tasks held in the
   window): g_m(k, φ) of docs/allocation.md. All models in one window, so a change of
   the machine's speed hits them alike. A straight line over k; ours: its R², goal
   ≥ 0.98.
3. Latency vs 1/share: the same with seven models at 8 steps and shares in the ratio
   1 : 2 : 3 : 4 : 5 : 7 : 9 (summing to 1); a straight line over 1/φ; ours: its R²,
   goal ≥ 0.95.

Each figure is the median of 3 windows of 6 s (quick: 1 of 1.5 s, fewer points).

`python -m benchmarks.share_executor [--quick]`.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import (
    Case,
    Goal,
    GoalKind,
    Result,
    demo_zoo_or_tiny,
    median,
    report,
    standalone,
)
from testbed.types import FailureReason

NAME = "share_executor"
OVERHEAD_GOAL = Goal(GoalKind.RATIO_AT_MOST, 1.05, "≤ 1.05 × FIFO executor per task")
STEPS_GOAL = Goal(GoalKind.RATIO_AT_LEAST, 0.98, "R² ≥ 0.98 (latency linear in steps)")
SHARE_GOAL = Goal(GoalKind.RATIO_AT_LEAST, 0.95, "R² ≥ 0.95 (latency linear in 1/share)")
MODEL_ID = "diffusion-l"
SHARES = {"a": 0.6, "b": 0.3, "c": 0.1}
DATA = b"\x01" * 1024
GATE = "gate"
"""A model id whose one task holds the slot until the stream is queued: the wait is
charged to it, not to a measured model."""


def _load_model(notes: list[str]) -> Any:
    from testbed.config import RuntimeKind
    from testbed.runtime import ModelRuntime
    from testbed.zoo.catalog import Catalog

    zoo = demo_zoo_or_tiny(notes)
    entry = Catalog.load(zoo).get(MODEL_ID)
    notes.append(f"model {MODEL_ID} of {zoo}; ONNX Runtime cpu, 1 intra-op thread, 1 slot")
    return ModelRuntime(RuntimeKind.CPU, intra_op_threads=1).load(entry.path(zoo), entry)


def _job(i: int, model_id: str, steps: int) -> Any:
    from edge_node.executor import Job
    from testbed.messages import EdgeTaskRequest, ModelRef

    request = EdgeTaskRequest(f"{model_id}/t{i}", ModelRef(model_id), 1, True, steps=steps)
    return Job(request, DATA, 0.0)


def _handlers(model: Any) -> tuple[Callable, Callable, Callable]:
    """A handler running the model, one doing nothing, and the rejecter."""
    from testbed.messages import EdgeTaskResult
    from testbed.types import FailureReason, Outcome

    def run(job: Any, _queue_ms: float) -> EdgeTaskResult:
        model.run(1, job.request.steps, job.data, should_stop=job.should_stop)
        return EdgeTaskResult(job.request.task_id, "bench", Outcome.COMPLETED, FailureReason.NONE)

    def empty(job: Any, _queue_ms: float) -> EdgeTaskResult:
        return EdgeTaskResult(job.request.task_id, "bench", Outcome.COMPLETED, FailureReason.NONE)

    def reject(job: Any, reason: Any, detail: str) -> EdgeTaskResult:
        return EdgeTaskResult(job.request.task_id, "bench", Outcome.FAILED, reason, detail)

    return run, empty, reject


def _stream(kind: str, handler: Callable, reject: Callable, tasks: int) -> dict[str, Any]:
    """A stream queued at once (three model ids, 4 steps) through one executor: the
    wall time per task, each invocation's time and the gap between invocations (the
    executor's own work per task: answer, account, choose, hand over)."""
    from edge_node.executor import FifoExecutor
    from edge_node.share_executor import ShareExecutor

    gate = threading.Event()
    spans: list[tuple[float, float]] = []

    def gated(job: Any, queue_ms: float) -> Any:
        if job.request.model.model_id == GATE:
            gate.wait()
            return reject(job, FailureReason.CANCELLED, "the gate")
        start = time.perf_counter()
        result = handler(job, queue_ms)
        spans.append((start, time.perf_counter()))
        return result

    capacity = tasks + 1
    ex: Any = (
        ShareExecutor(1, capacity, gated, reject, shares=SHARES)
        if kind == "shares"
        else FifoExecutor(1, capacity, gated, reject)
    )
    ex.submit(_job(0, GATE, 1))  # holds the slot until every task is queued
    futures = [ex.submit(_job(i, "abc"[i % 3], 4)) for i in range(tasks)]
    t0 = time.perf_counter()
    gate.set()
    # one wake-up at the end: waiting on each future in turn would wake this thread
    # (and take the GIL from the slot) after every task of the FIFO's order only
    concurrent.futures.wait(futures)
    elapsed = time.perf_counter() - t0
    ex.shutdown()
    return {
        "per_task_s": elapsed / tasks,
        "invocation_s": [end - start for start, end in spans],
        "gap_s": [b[0] - a[1] for a, b in itertools.pairwise(spans)],
    }


def _overhead(model: Any, quick: bool) -> Result:
    run, empty, reject = _handlers(model)
    repeats, tasks = (3, 60) if quick else (9, 150)
    runs: dict[str, list[dict[str, Any]]] = {"shares": [], "fifo": []}
    bare: dict[str, list[float]] = {"shares": [], "fifo": []}
    for _ in range(repeats):  # interleaved: the machine's load hits both alike
        for kind in ("shares", "fifo"):
            runs[kind].append(_stream(kind, run, reject, tasks))
            bare[kind].append(_stream(kind, empty, reject, tasks)["per_task_s"])
    invocation = median([t for k in runs for r in runs[k] for t in r["invocation_s"]])
    gap = {k: median([g for r in runs[k] for g in r["gap_s"]]) for k in runs}
    mean_gap = {k: float(np.mean([g for r in runs[k] for g in r["gap_s"]])) for k in runs}
    wall = {k: median([r["per_task_s"] for r in runs[k]]) for k in runs}
    details = {
        "invocation_ms": invocation * 1e3,
        "gap_shares_us": gap["shares"] * 1e6,
        "gap_fifo_us": gap["fifo"] * 1e6,
        "mean_gap_shares_us": mean_gap["shares"] * 1e6,
        "mean_gap_fifo_us": mean_gap["fifo"] * 1e6,
        "wall_shares_ms": wall["shares"] * 1e3,
        "wall_fifo_ms": wall["fifo"] * 1e3,
        "empty_handler_shares_us": median(bare["shares"]) * 1e6,
        "empty_handler_fifo_us": median(bare["fifo"]) * 1e6,
    }
    case = Case("4 steps, shares 0.6/0.3/0.1 vs FIFO", (invocation + gap["shares"]) * 1e3,
                (invocation + gap["fifo"]) * 1e3, repeats * tasks, details)  # fmt: skip
    notes = [
        f"per task = the median invocation ({invocation * 1e3:.3f} ms, both executors) + "
        f"the median gap between invocations: shares {gap['shares'] * 1e6:.1f} µs, FIFO "
        f"{gap['fifo'] * 1e6:.1f} µs (means {mean_gap['shares'] * 1e6:.1f} / "
        f"{mean_gap['fifo'] * 1e6:.1f} µs)",
        f"wall time per task, first submit to last answer (load-sensitive): shares "
        f"{wall['shares'] * 1e3:.2f} ms, FIFO {wall['fifo'] * 1e3:.2f} ms; with an empty "
        f"handler {details['empty_handler_shares_us']:.0f} / "
        f"{details['empty_handler_fifo_us']:.0f} µs per task",
    ]
    return report(Result(NAME, "ms/task", OVERHEAD_GOAL, [case], notes))


def concurrent_latencies(
    handler: Callable, reject: Callable, lanes: dict[str, tuple[int, float]], window_s: float,
    task_s: Callable[[int], float],
) -> dict[str, float]:  # fmt: skip
    """Every lane (model id → (steps, share)) backlogged at once on one slot for
    `window_s`; the seconds per task each gets: the window over the tasks its share of
    the window's slot time held (its mean task time × window / its slot time)."""
    from edge_node.share_executor import ShareExecutor

    gate = threading.Event()
    spans: dict[str, list[tuple[float, float]]] = {m: [] for m in lanes}

    def gated(job: Any, queue_ms: float) -> Any:
        if job.request.model.model_id == GATE:
            gate.wait()
            return reject(job, FailureReason.CANCELLED, "the gate")
        start = time.perf_counter()
        result = handler(job, queue_ms)
        spans[job.request.model.model_id].append((start, time.perf_counter()))
        return result

    counts = {m: int(2 * window_s * share / task_s(k)) + 3 for m, (k, share) in lanes.items()}
    ex = ShareExecutor(1, sum(counts.values()) + 1, gated, reject,
                       shares={m: share for m, (_k, share) in lanes.items()})  # fmt: skip
    ex.submit(_job(0, GATE, 1))  # holds the slot until every task is queued
    for i in range(max(counts.values())):  # interleaved arrivals
        for m, (k, _share) in lanes.items():
            if i < counts[m]:
                ex.submit(_job(i, m, k))
    t0 = time.perf_counter()
    gate.set()
    time.sleep(window_s)
    ex.shutdown()  # the tasks still waiting are answered, not run
    t1 = t0 + window_s
    latency = {}
    for m, done in spans.items():
        held = sum(max(0.0, min(b, t1) - max(a, t0)) for a, b in done)
        mean_task = float(np.mean([b - a for a, b in done]))
        latency[m] = mean_task * window_s / held if held > 0 else float("inf")
    return latency


def r_squared(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """R² of the least-squares line y = a + b·x, and (a, b)."""
    b, a = np.polyfit(x, y, 1)
    residual = y - (a + b * x)
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float((residual**2).sum()) / total, float(a), float(b)


def _task_time(model: Any) -> Callable[[int], float]:
    """The fastest of five runs at `steps` (to size the streams: never too few)."""
    cache: dict[int, float] = {}

    def task_s(steps: int) -> float:
        if steps not in cache:
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                model.run(1, steps, DATA)
                times.append(time.perf_counter() - t0)
            cache[steps] = min(times)
        return cache[steps]

    return task_s


def _linearity(model: Any, quick: bool) -> list[Result]:
    run, _empty, reject = _handlers(model)
    task_s = _task_time(model)
    window_s, repeats = (1.5, 1) if quick else (6.0, 3)
    step_grid = [2, 6, 12, 18, 24] if quick else [2, 6, 10, 14, 20, 28]
    weights = [1, 3, 5, 9] if quick else [1, 2, 3, 4, 5, 7, 9]
    by_steps_lanes = {f"k{k}": (k, 1 / len(step_grid)) for k in step_grid}
    by_share_lanes = {f"w{w}": (8, w / sum(weights)) for w in weights}

    def measure(lanes: dict[str, tuple[int, float]]) -> list[float]:
        runs = [concurrent_latencies(run, reject, lanes, window_s, task_s) for _ in range(repeats)]
        return [median([r[m] for r in runs]) for m in lanes]  # the machine is shared

    results = []
    for label, goal, x, lanes, unit in (
        (f"latency vs steps, {len(step_grid)} models at φ 1/{len(step_grid)}", STEPS_GOAL,
         np.array(step_grid, float), by_steps_lanes, "steps"),
        (f"latency vs 1/φ, {len(weights)} models at 8 steps", SHARE_GOAL,
         np.array([1 / share for _k, share in by_share_lanes.values()]), by_share_lanes, "1/φ"),
    ):  # fmt: skip
        y = np.array(measure(lanes))
        r2, a, b = r_squared(x, y)
        points = ", ".join(f"{xi:.3g}: {yi * 1e3:.2f}" for xi, yi in zip(x, y, strict=True))
        details = {"intercept_ms": a * 1e3, "slope_ms": b * 1e3}
        case = Case(label, r2, 1.0, len(x) * repeats, details)
        note = f"{label}: ms per task by {unit}: {points}; line {a * 1e3:.2f} + {b * 1e3:.3f}·x ms"
        results.append(report(Result(NAME, "R²", goal, [case], [note])))
    return results


def run(quick: bool) -> list[Result]:
    notes: list[str] = []
    model = _load_model(notes)
    for note in notes:
        print(f"  note: {note}", flush=True)
    results = [_overhead(model, quick), *_linearity(model, quick)]
    for result in results:
        result.notes.extend(notes)
    return results


def _standalone(quick: bool) -> Result:
    results = run(quick)
    worst = next((r for r in results if not r.passed), results[0])
    return worst


if __name__ == "__main__":
    raise SystemExit(standalone(_standalone))
