"""Benchmark: what mutual TLS costs the bench's gRPC, in the same run.

Ours: calls through the testbed's own mTLS path — a `GrpcServer` (testbed/daemon.py)
with agent-0's certificate and the role interceptor, reached through
`GrpcIdentity.channel` (testbed/security/credentials.py) with the coordinator's
certificate, the server's id checked. Reference: the same server code in plaintext
(`GrpcServer` without an identity, a plain channel). Both servers run in one child
process (`python -m benchmarks.grpc_tls serve CERTS_DIR`) with certificates made by
testbed/security/certs.py in a scratch folder; the client is this process.

- unary: a 1 KiB echo round trip, p50, interleaved in batches of 20 calls (goal:
  mTLS − plaintext ≤ 0.3 ms);
- stream: a client stream of 1 MiB messages (SubmitTask's chunk size,
  testbed/edge_client.py), MB/s of one call of 16 MiB (quick) or 64 MiB, calls
  alternating (goal: mTLS ≥ 0.8 × plaintext).

Connections are made (and the handshake done) before timing: a channel is opened once
per bench node and kept (coordinator/boards.py), so the handshake is not on a slot's path.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from benchmarks.common import Case, Goal, GoalKind, Result, median, percentile, report, scratch

NAME = "grpc_tls"
UNARY_GOAL = Goal(GoalKind.ADDED_AT_MOST, 0.3, "≤ +0.3 ms at p50")
STREAM_GOAL = Goal(GoalKind.RATIO_AT_LEAST, 0.8, "≥ 0.8×")
SERVICE = "bench.Tls"
PAYLOAD = bytes(range(256)) * 4  # 1 KiB
CHUNK = bytes(1024 * 1024)  # 1 MiB, as SubmitTask's data messages
BATCH = 20
Figures = dict[str, list[float]]
"""Per path ("mtls", "plaintext"): one figure per call (ms) or per stream (MB/s)."""


def _echo(request: bytes, _context: grpc.ServicerContext) -> bytes:
    return request


def _sink(requests: Iterator[bytes], _context: grpc.ServicerContext) -> bytes:
    total = sum(len(r) for r in requests)
    return total.to_bytes(8, "big")


def serve(certs_dir: Path) -> int:
    """Two servers, plaintext and mTLS, the same handlers; prints `PORTS <plain> <tls>`."""
    from testbed.daemon import GrpcServer
    from testbed.security.credentials import GrpcIdentity

    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Sink": grpc.stream_unary_rpc_method_handler(_sink),
    })  # fmt: skip
    add = [lambda s: s.add_generic_rpc_handlers((handler,))]
    plain = GrpcServer("127.0.0.1", 0, add)
    tls = GrpcServer("127.0.0.1", 0, add, identity=GrpcIdentity("agent-0", True, certs_dir))
    for server in (plain, tls):
        server.start()
    print(f"PORTS {plain.port} {tls.port}", flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    finally:
        for server in (plain, tls):
            server.stop(0.5)
    return 0


def _make_certs(folder: Path) -> None:
    from testbed.security import certs
    from testbed.security.roles import Role

    ca = certs.create_ca(folder)
    for node_id, role in (("coordinator", Role.COORDINATOR), ("agent-0", Role.AGENT)):
        certs.issue(ca, folder, node_id, role, ["127.0.0.1"])


def _unary(calls: dict[str, grpc.UnaryUnaryMultiCallable], n: int) -> Figures:
    times: Figures = {name: [] for name in calls}
    for _ in range(max(1, n // BATCH)):
        for name, call in calls.items():
            for _ in range(BATCH):
                t0 = time.perf_counter()
                call(PAYLOAD, timeout=10)
                times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def _stream(calls: dict[str, grpc.StreamUnaryMultiCallable], mib: int, repeats: int) -> Figures:
    rates: Figures = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            t0 = time.perf_counter()
            got = int.from_bytes(call(iter([CHUNK] * mib), timeout=60), "big")
            elapsed = time.perf_counter() - t0
            assert got == mib * len(CHUNK), f"{name}: the server got {got} bytes"
            rates[name].append(got / 1e6 / elapsed)
    return rates


def run(quick: bool = False) -> list[Result]:
    from testbed.daemon import GRPC_OPTIONS
    from testbed.security.credentials import PLAINTEXT, GrpcIdentity

    n_unary, mib, repeats = (200, 16, 3) if quick else (2000, 64, 7)
    with scratch(NAME) as folder:
        _make_certs(folder)
        argv = [sys.executable, "-m", "benchmarks.grpc_tls", "serve", str(folder)]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().split()
            if len(line) != 3 or line[0] != "PORTS":
                raise RuntimeError(f"the benchmark servers did not start: {line}")
            client = GrpcIdentity("coordinator", True, folder)
            channels = {
                "mtls": client.channel(f"127.0.0.1:{line[2]}", peer_id="agent-0",
                                       options=GRPC_OPTIONS),
                "plaintext": PLAINTEXT.channel(f"127.0.0.1:{line[1]}", options=GRPC_OPTIONS),
            }  # fmt: skip
            echo = {k: c.unary_unary(f"/{SERVICE}/Echo") for k, c in channels.items()}
            sink = {k: c.stream_unary(f"/{SERVICE}/Sink") for k, c in channels.items()}
            _unary(echo, 2 * BATCH)  # connect, handshake, warm up
            _stream(sink, 2, 1)
            unary = _unary(echo, n_unary)
            stream = _stream(sink, mib, repeats)
            for channel in channels.values():
                channel.close()
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(10)
    return _results(unary, stream, mib)


def _results(unary: Figures, stream: Figures, mib: int) -> list[Result]:
    ours, ref = unary["mtls"], unary["plaintext"]
    unary_case = Case("unary 1 KiB, p50", median(ours), median(ref), len(ours), details={
        "mtls_p95_ms": percentile(ours, 95), "plaintext_p95_ms": percentile(ref, 95),
    })  # fmt: skip
    stream_case = Case(f"stream {mib} MiB in 1 MiB messages", median(stream["mtls"]),
                       median(stream["plaintext"]), len(stream["mtls"]))  # fmt: skip
    notes = ["mTLS: GrpcServer + RoleInterceptor with agent-0's certificate, the coordinator's "
             "channel; plaintext: the same server without an identity"]  # fmt: skip
    return [
        report(Result(NAME, "ms", UNARY_GOAL, [unary_case], notes)),
        report(Result(NAME, "MB/s", STREAM_GOAL, [stream_case])),
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        raise SystemExit(serve(Path(sys.argv[2])))
    for result in run("--quick" in sys.argv[1:]):
        print(f"{result.name} ({result.unit}): {'PASS' if result.passed else 'MISS'} "
              f"(goal {result.goal.text})")  # fmt: skip
