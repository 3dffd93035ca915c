"""Benchmark 4: `SubmitTask` on a real edge with a cached tiny model vs a bare gRPC
unary round trip.

Ours: a real edge process (`testbed-edge`, started by the real launcher with a cloud
node; the model prefetched first, so every task is a cache hit) and the real
`EdgeClient.submit` from this process: a client-streaming call of a header and one
1 KiB data chunk, units=1 on the tiny zoo's smallest one-invocation model (the
queue, the cache hit, one ONNX Runtime run, the energy spans and the reply all
included). Round trip as `EdgeClient` measures it (call start → reply decoded).

Reference: a unary echo of 1 KiB to a bare grpcio server in its own process
(benchmarks/grpc_echo.py), from this process, in the same run, interleaved in
batches of 10 calls.

Goal (issue 2): ours − reference ≤ 2 ms at p50.
"""

from __future__ import annotations

import time
from typing import Any

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
    percentile,
    report,
    scratch,
    standalone,
    tiny_zoo,
)
from benchmarks.grpc_echo import EchoServer

NAME = "submit_task"
GOAL = Goal(GoalKind.ADDED_AT_MOST, 2.0, "≤ +2 ms at p50")
PAYLOAD = bytes(range(256)) * 4  # 1 KiB
BATCH = 10


def _model(zoo: Any) -> dict[str, Any]:
    """The smallest model that runs one invocation per unit (not a diffusion model)."""
    return next(m for m in catalog_models(zoo) if m["family"] != "diffusion")


def run(quick: bool = False) -> Result:
    from testbed.messages import EdgeTaskRequest, ModelRef
    from testbed.types import Outcome

    calls = 60 if quick else 300
    zoo = tiny_zoo()
    model = _model(zoo)
    ref = ModelRef(model["id"])
    kind = broker_kinds(quick=True)[0]
    notes: list[str] = []
    with (
        scratch("submit") as tmp,
        broker(kind, tmp / "broker") as running,
        node_bench(tmp, running.url, zoo, cloud=True, edges=1) as launcher,
        EchoServer() as echo,
    ):
        from testbed.edge_client import EdgeClient

        edge = launcher.nodes["edge-0"]
        with EdgeClient(edge.address, edge.node_id) as client:
            op = client.prefetch(ref)
            if not op.ok:
                raise RuntimeError(f"prefetch of {ref} failed: {op.reason} {op.detail}")
            serial = 0

            def submit_ms() -> tuple[float, Any]:
                nonlocal serial
                serial += 1
                request = EdgeTaskRequest(
                    task_id=f"bench/t{serial:05d}", model=ref, units=1, download=False,
                    agent_id="bench", data_bytes=len(PAYLOAD),
                )  # fmt: skip
                sub = client.submit(request, PAYLOAD, timeout_s=10)
                if sub.result.outcome is not Outcome.COMPLETED:
                    raise RuntimeError(f"task failed: {sub.result.reason} {sub.result.detail}")
                return sub.round_trip_s * 1e3, sub.result

            def echo_ms() -> float:
                t0 = time.perf_counter()
                echo.call(PAYLOAD, timeout=10)
                return (time.perf_counter() - t0) * 1e3

            for _ in range(BATCH):  # warm-up: channels, ORT's first runs, thread pools
                submit_ms()
                echo_ms()
            ours_ms: list[float] = []
            ref_ms: list[float] = []
            edge_parts: dict[str, list[float]] = {"edge_total_ms": [], "compute_ms": []}
            edge_parts["queue_ms"] = []
            while len(ours_ms) < calls:
                for _ in range(BATCH):
                    elapsed_ms, result = submit_ms()
                    ours_ms.append(elapsed_ms)
                    edge_parts["edge_total_ms"].append(result.timing.total_ms)
                    edge_parts["compute_ms"].append(result.timing.compute_ms)
                    edge_parts["queue_ms"].append(result.timing.queue_ms)
                for _ in range(BATCH):
                    ref_ms.append(echo_ms())
            hit = result.cache_hit
    details = {k: round(median(v), 3) for k, v in edge_parts.items()}
    details["ours_p95_ms"] = round(percentile(ours_ms, 95), 3)
    details["reference_p95_ms"] = round(percentile(ref_ms, 95), 3)
    case = Case(
        label=f"{model['id']} units=1, 1 KiB, cache hit={hit}",
        ours=median(ours_ms),
        reference=median(ref_ms),
        samples=len(ours_ms),
        details=details,
    )
    notes.append(
        f"p95: ours {details['ours_p95_ms']} ms, reference {details['reference_p95_ms']} ms; "
        f"inside the edge (median): total {details['edge_total_ms']} ms, of which compute "
        f"{details['compute_ms']} ms, queue {details['queue_ms']} ms; broker {kind}"
    )
    return report(Result(NAME, "ms", GOAL, [case], notes))


if __name__ == "__main__":
    raise SystemExit(standalone(run))
