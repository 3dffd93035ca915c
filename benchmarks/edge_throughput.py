"""Benchmark (issue 3): sustained tasks per second through one edge, and where the
bottleneck is.

Ours: a real edge process (`testbed-edge`, started by the real launcher with a cloud
node; the tiny zoo's smallest one-invocation model prefetched, so every task is a
cache hit) loaded by several client threads of this process, each with its own
`EdgeClient`, submitting 1 KiB tasks back to back (the next as soon as the last
answered) for a fixed time: completed tasks per second. Two work sizes: units=1 (one
ONNX Runtime run of one sample) and units=256 (eight runs of 32, `edges.max_batch`).

References, in the same run, the edge idle meanwhile:
- transport: the rate of bare gRPC unary echo calls of 1 KiB (benchmarks/grpc_echo.py,
  a server in its own process) from the same number of client threads;
- compute: the rate of bare `InferenceSession.run` calls of the same model file in
  this process (1 intra-op thread, as the edge), per task as many runs of the same
  batch sizes as the edge makes, inputs prebuilt.
The case's reference is the tighter of the two (the bare bound on the rate); both are
in the details.

Where the time goes: the CPU time per task of the client process, of the edge by
thread (gRPC transport: handler pool, server poller and gRPC's C threads; compute: the
executor slot; state: the publisher of the edge's retained state and the MQTT network
thread), and of the broker, read from /proc; thread names from `py-spy dump` when
py-spy is installed. With the edge timing of each reply (receive, queue, compute).

Goal: the issue sets none (it asks for the rate and its bottleneck); the table shows
the rate against the bare bound.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from itertools import count
from typing import Any

import numpy as np

from benchmarks.common import (
    Case,
    Goal,
    GoalKind,
    Result,
    broker,
    broker_kinds,
    catalog_models,
    median,
    node_bench,
    report,
    scratch,
    standalone,
    tiny_zoo,
)
from benchmarks.grpc_echo import EchoServer
from benchmarks.live_common import CpuClock, ThreadCpu

NAME = "edge_throughput"
GOAL = Goal(GoalKind.RATIO_AT_LEAST, 0.0, "none set (rate vs bare bound)")
PAYLOAD = bytes(range(256)) * 4  # 1 KiB
CLIENT_THREADS = 4
MAX_BATCH = 32  # edges.max_batch (the default)
EDGE_THREADS = [
    ("transport", r"^grpc_\d+$|_serve|^event_engine|^grpc_global|^lifeguard|^default-exec"),
    ("compute", r"^slot-\d+$"),
    ("state", r"^state$|^paho-mqtt"),
]


def _model(zoo: Any) -> dict[str, Any]:
    """The smallest model that runs one invocation per unit (not a diffusion model)."""
    return next(m for m in catalog_models(zoo) if m["family"] != "diffusion")


def _batches(units: int) -> list[int]:
    return [min(MAX_BATCH, units - first) for first in range(0, units, MAX_BATCH)]


def bare_ort_rate(zoo: Any, model: dict[str, Any], units: int, seconds: float) -> float:
    """Tasks/s of bare `InferenceSession.run` calls: per task, the edge's batches."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(zoo / model["file"]), sess_options=options, providers=["CPUExecutionProvider"]
    )
    feeds_of: dict[int, dict[str, np.ndarray]] = {}
    for batch in set(_batches(units)):
        feeds_of[batch] = {
            i["name"]: np.zeros(
                [batch if d == "batch" else int(d) for d in i["shape"]], dtype=i["dtype"]
            )
            for i in model["inputs"]
        }
    plan = [feeds_of[b] for b in _batches(units)]
    for feeds in plan:  # warm-up
        session.run(None, feeds)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for feeds in plan:
            session.run(None, feeds)
        done += 1
    return done / (time.perf_counter() - t0)


def drive(threads: int, seconds: float, call: Any) -> tuple[float, list[Any]]:
    """`threads` threads calling `call(thread_index)` back to back for `seconds`:
    (calls per second, what the calls returned)."""
    results: list[list[Any]] = [[] for _ in range(threads)]
    stop = threading.Event()

    def work(i: int) -> None:
        while not stop.is_set():
            results[i].append(call(i))

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    flat = [r for rs in results for r in rs]
    return len(flat) / elapsed, flat


def _measure(
    units: int,
    rounds: int,
    seconds: float,
    ours: Callable[[], tuple[float, list[Any]]],
    echo: Callable[[], float],
    ort: Callable[[], float],
    processes: CpuClock,
    threads: ThreadCpu,
    model_id: str,
) -> tuple[Case, str]:
    """`rounds` interleaved rounds of ours, the echo reference and bare ORT; the case and
    its analysis."""
    rates, echo_rates, ort_rates, subs = [], [], [], []
    cpu: dict[str, float] = {}
    for _ in range(rounds):
        p0, t0 = processes.read(), threads.read()
        rate, got = ours()
        p1, t1 = processes.read(), threads.read()
        rates.append(rate)
        subs += got
        for name in p0:
            cpu[f"cpu_{name}_ms"] = cpu.get(f"cpu_{name}_ms", 0.0) + p1[name] - p0[name]
        for group, spent in threads.by_group(t0, t1).items():
            cpu[f"cpu_edge_{group}_ms"] = cpu.get(f"cpu_edge_{group}_ms", 0.0) + spent
        echo_rates.append(echo())
        ort_rates.append(ort())
    rate, echo_rate, ort_rate = median(rates), median(echo_rates), median(ort_rates)
    per_task = {k: round(v * 1e3 / len(subs), 3) for k, v in cpu.items()}
    timing = {
        "edge_receive_ms": median([s.result.timing.receive_ms for s in subs]),
        "edge_queue_ms": median([s.result.timing.queue_ms for s in subs]),
        "edge_compute_ms": median([s.result.timing.compute_ms for s in subs]),
        "edge_total_ms": median([s.result.timing.total_ms for s in subs]),
        "round_trip_ms": median([s.round_trip_s * 1e3 for s in subs]),
    }
    bound = "transport" if echo_rate <= ort_rate else "compute"
    details = {
        "echo_rate_per_s": round(echo_rate, 1),
        "ort_rate_per_s": round(ort_rate, 1),
        **{k: round(v, 3) for k, v in timing.items()},
        **per_task,
    }
    label = f"{model_id} units={units}, {CLIENT_THREADS} client threads"
    case = Case(label, rate, min(echo_rate, ort_rate), len(rates), details=details)
    return case, _analysis(units, rate, echo_rate, ort_rate, bound, details, threads)


def run(quick: bool = False) -> Result:
    from testbed.edge_client import EdgeClient
    from testbed.messages import EdgeTaskRequest, ModelRef
    from testbed.types import Outcome

    seconds = 0.5 if quick else 4.0
    rounds = 1 if quick else 3
    unit_counts = [1, 256]
    zoo = tiny_zoo()
    model = _model(zoo)
    ref = ModelRef(model["id"])
    kind = broker_kinds(quick=True)[0]
    notes: list[str] = []
    cases: list[Case] = []
    with (
        scratch("throughput") as tmp,
        broker(kind, tmp / "broker") as running,
        node_bench(tmp, running.url, zoo, cloud=True, edges=1) as launcher,
        EchoServer() as echo,
    ):
        edge = launcher.nodes["edge-0"]
        clients = [EdgeClient(edge.address, edge.node_id) for _ in range(CLIENT_THREADS)]
        op = clients[0].prefetch(ref)
        if not op.ok:
            raise RuntimeError(f"prefetch of {ref} failed: {op.reason} {op.detail}")
        serial = count()
        units_now = {"units": 1}

        def submit(i: int) -> Any:
            n = next(serial)
            request = EdgeTaskRequest(
                task_id=f"bench/t{n:07d}", model=ref, units=units_now["units"],
                download=False, agent_id=f"bench-{i}", data_bytes=len(PAYLOAD),
            )  # fmt: skip
            sub = clients[i].submit(request, PAYLOAD, timeout_s=30)
            if sub.result.outcome is not Outcome.COMPLETED:
                raise RuntimeError(f"task failed: {sub.result.reason} {sub.result.detail}")
            return sub

        def echo_call(_i: int) -> None:
            echo.call(PAYLOAD, timeout=10)

        for units in unit_counts:  # warm-up: channels, pools, ORT's first runs
            units_now["units"] = units
            drive(CLIENT_THREADS, 0.3, submit)
        drive(CLIENT_THREADS, 0.3, echo_call)
        processes = CpuClock(
            {"client": os.getpid(), "edge": edge.pid or 0, "broker": running.process.pid}
        )
        threads = ThreadCpu(edge.pid or 0, EDGE_THREADS)
        for units in unit_counts:
            units_now["units"] = units
            case, note = _measure(
                units, rounds, seconds, lambda: drive(CLIENT_THREADS, seconds, submit),
                lambda: drive(CLIENT_THREADS, seconds, echo_call)[0],
                lambda u=units: bare_ort_rate(zoo, model, u, seconds),
                processes, threads, model["id"],
            )  # fmt: skip
            cases.append(case)
            notes.append(note)
    notes.append(
        f"{os.cpu_count()} cores shared by the client, the edge, the cloud and the broker "
        f"({kind}); {seconds:g} s per measurement, median of {rounds}"
    )
    return report(Result(NAME, "tasks/s", GOAL, cases, notes))


def _analysis(
    units: int,
    ours: float,
    echo_rate: float,
    ort_rate: float,
    bound: str,
    d: dict[str, float],
    threads: ThreadCpu,
) -> str:
    """One line: the rates, the CPU per task by part, and which part binds."""
    edge_ms = d["cpu_edge_ms"]
    total_ms = d["cpu_client_ms"] + edge_ms + d["cpu_broker_ms"]
    cores = os.cpu_count() or 1
    busy = total_ms * ours / 1e3  # cores' worth of CPU the three processes used
    parts = {g: d[f"cpu_edge_{g}_ms"] for g, _ in [*EDGE_THREADS, ("other", "")]}
    top = max(parts, key=lambda g: parts[g])
    part_text = ", ".join(f"{g} {v:.3f}" for g, v in parts.items())
    where = (
        f"the machine's {cores} cores ({busy:.2f} of them busy)"
        if busy >= 0.85 * cores
        else f"the edge process ({edge_ms * ours / 1e3:.2f} of a core)"
    )
    return (
        f"units={units}: {ours:.0f} tasks/s; bare echo {echo_rate:.0f}/s, bare ORT "
        f"{ort_rate:.0f}/s (the bare bound is {bound}). CPU per task: client "
        f"{d['cpu_client_ms']:.3f} ms, edge {edge_ms:.3f} ms ({part_text}"
        f"{'' if threads.named else '; threads unnamed: pip install py-spy'}), broker "
        f"{d['cpu_broker_ms']:.3f} ms. Edge timing (median): receive {d['edge_receive_ms']:.3f}"
        f", queue {d['edge_queue_ms']:.3f}, compute {d['edge_compute_ms']:.3f} ms. "
        f"Bottleneck: {where}; the edge's largest part is {top} "
        f"({parts[top] / edge_ms * 100 if edge_ms else math.nan:.0f} % of its CPU)"
    )


if __name__ == "__main__":
    raise SystemExit(standalone(run))
