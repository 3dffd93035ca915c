"""`testbed status` and `testbed down`: look at or stop a bench left running by
`testbed up --keep`. The bench is described by `<run.out_dir>/bench.json`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from testbed.config import load_config
from testbed.edge_client import EdgeClient
from testbed.exit_codes import ExitCode, TestbedExit

BENCH_FILE = "bench.json"
_STOP_ORDER = {"agent": 0, "edge": 1, "cloud": 2, "broker": 3}


def register(sub: argparse._SubParsersAction) -> None:
    for name, func, text in (
        ("status", run_status, "show the bench left running by `testbed up --keep`"),
        ("down", run_down, "stop the bench left running by `testbed up --keep`"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("-c", "--config", default=None, help="testbed YAML (for run.out_dir)")
        p.set_defaults(func=func)


def bench_file(out_dir: str) -> Path:
    return Path(out_dir) / BENCH_FILE


def write_bench_file(out_dir: str, bench: dict[str, Any]) -> Path:
    path = bench_file(out_dir)
    path.write_text(json.dumps(bench, indent=2) + "\n")
    return path


def _read(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    cfg = load_config(args.config)
    path = bench_file(cfg.run.out_dir)
    if not path.exists():
        raise TestbedExit(ExitCode.NOT_RUNNING, f"no bench is running ({path} does not exist)")
    return path, json.loads(path.read_text())


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _health(address: str) -> str:
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=2
            )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status).lower()
    except grpc.RpcError as exc:
        return f"unreachable ({exc.code().name})"


def run_status(args: argparse.Namespace) -> int:
    _path, bench = _read(args)
    print(f"bench of run {bench['run_dir']} (broker {bench['broker']})")
    for node_id, node in bench["nodes"].items():
        state = "running" if _alive(node.get("pid")) else "exited"
        health = _health(node["address"]) if state == "running" and node.get("address") else "-"
        line = f"  {node_id:<12} {node['kind']:<6} pid {node.get('pid')!s:<8} {state:<8} {health}"
        if node["kind"] == "edge" and health == "serving":
            with EdgeClient(node["address"], node_id) as client:
                s = client.state()
            models = ", ".join(c.model.model_id for c in s.cached) or "-"
            line += (
                f"  queue {s.queue_length}, cache {s.cache_used_bytes / 1e6:.1f}/"
                f"{s.cache_capacity_bytes / 1e6:.1f} MB [{models}]"
            )
        print(line)
    return 0


def run_down(args: argparse.Namespace) -> int:
    path, bench = _read(args)
    procs = sorted(bench["nodes"].items(), key=lambda kv: _STOP_ORDER.get(kv[1]["kind"], 9))
    pids = [int(n["pid"]) for _, n in procs if _alive(n.get("pid"))]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    path.unlink()
    print(f"stopped {len(pids)} process(es) of the bench of {bench['run_dir']}")
    return 0
