"""`testbed status` and `testbed down`: look at or stop a bench left running by
`testbed up --keep`. The bench is described by `<run.out_dir>/bench.json`: each node's
kind, address, log and process identity (PID, start time, command line:
coordinator/process_identity.py). A PID whose identity changed since (the process
exited and the PID went to another) is reported and never signalled."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coordinator.command_help import help_texts
from coordinator.jsonout import add_json_flag, print_json
from coordinator.process_identity import ProcessIdentity
from coordinator.run_folder import unwritable
from testbed.config import load_config
from testbed.edge_client import EdgeClient
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.security.credentials import PLAINTEXT, GrpcIdentity, coordinator_identity

BENCH_FILE = "bench.json"
_STOP_ORDER = {"agent": 0, "edge": 1, "cloud": 2, "broker": 3}


def register(sub: argparse._SubParsersAction) -> None:
    status = sub.add_parser("status", **help_texts(
        "show the bench left running by `testbed up --keep`",
        "testbed status", "testbed status -c bench.yaml --json",
        details="Each node's process and gRPC health; each serving edge's queue and cache.\n"
        "No bench running: exit 11 (NOT_RUNNING); with --json, {\"running\": false, ...}.",
    ))  # fmt: skip
    add_json_flag(status)
    down = sub.add_parser("down", **help_texts(
        "stop the bench left running by `testbed up --keep`", "testbed down -c bench.yaml",
        details="SIGTERM to agents, edges, cloud, broker in that order; SIGKILL after 10 s.\n"
        "Only a process that still is the bench's (its PID, start time and command line as\n"
        "bench.json recorded them) is signalled; a PID now someone else's is left alone.\n"
        "No bench running: exit 11 (NOT_RUNNING).",
    ))  # fmt: skip
    for p, func in ((status, run_status), (down, run_down)):
        p.add_argument("-c", "--config", default=None, help="testbed YAML (for run.out_dir)")
        p.set_defaults(func=func)


def bench_file(out_dir: str) -> Path:
    return Path(out_dir) / BENCH_FILE


def write_bench_file(out_dir: str, bench: dict[str, Any]) -> Path:
    """Write `bench.json` (Launcher.describe()); OUTPUT_UNWRITABLE naming the folder."""
    path = bench_file(out_dir)
    try:
        path.write_text(json.dumps(bench, indent=2) + "\n")
    except OSError as exc:
        raise unwritable(out_dir, exc) from None
    return path


def _read(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    cfg = load_config(args.config)
    path = bench_file(cfg.run.out_dir)
    if not path.exists():
        if getattr(args, "json", False):  # a script reads the state, the person the error
            print_json({"running": False, "bench_file": str(path)})
        raise TestbedExit(ExitCode.NOT_RUNNING, f"no bench is running ({path} does not exist)")
    return path, json.loads(path.read_text())


def _own_process(node_id: str, node: dict[str, Any]) -> tuple[psutil.Process | None, str]:
    """The node's process if its PID still is the process recorded; else None and,
    when the PID now belongs to another process, a note saying it is left alone."""
    pid = node.get("pid")
    identity = ProcessIdentity.from_record(node)
    if identity is not None:
        proc = identity.process()
        if proc is None and isinstance(pid, int) and psutil.pid_exists(pid):
            return None, f"pid {pid} is no longer {node_id}: left alone"
        return proc, ""
    if isinstance(pid, int) and pid > 0 and psutil.pid_exists(pid):
        return None, f"pid {pid} of {node_id} has no recorded identity: left alone"
    return None, ""


def _health(address: str, identity: GrpcIdentity, node_id: str) -> str:
    try:
        with identity.channel(address, peer_id=node_id) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=2
            )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status).lower()
    except grpc.RpcError as exc:
        return f"unreachable ({exc.code().name})"


def bench_status(
    path: Path, bench: dict[str, Any], identity: GrpcIdentity = PLAINTEXT
) -> dict[str, Any]:
    """What `testbed status --json` prints (docs/cli.md): every node's process and health,
    and the queue and cache of every serving edge."""
    nodes = {}
    for node_id, node in bench["nodes"].items():
        running = _own_process(node_id, node)[0] is not None
        address = node.get("address")
        health = _health(address, identity, node_id) if running and address else None
        row: dict[str, Any] = {
            "kind": node["kind"], "pid": node.get("pid"), "address": node.get("address") or None,
            "process": "running" if running else "exited", "health": health,
        }  # fmt: skip
        if node["kind"] == "edge" and health == "serving":
            with EdgeClient(node["address"], node_id, identity) as client:
                s = client.state()
            row["edge"] = {
                "queue_length": s.queue_length,
                "cache_used_mb": s.cache_used_bytes / 1e6,
                "cache_capacity_mb": s.cache_capacity_bytes / 1e6,
                "cached_models": [c.model.model_id for c in s.cached],
            }
        nodes[node_id] = row
    return {"running": True, "bench_file": str(path), "run_dir": bench["run_dir"],
            "broker": bench["broker"], "nodes": nodes}  # fmt: skip


def run_status(args: argparse.Namespace) -> int:
    status = bench_status(*_read(args), coordinator_identity(load_config(args.config)))
    if args.json:
        print_json(status)
        return 0
    print(f"bench of run {status['run_dir']} (broker {status['broker']})")
    for node_id, node in status["nodes"].items():
        line = (f"  {node_id:<12} {node['kind']:<6} pid {node['pid']!s:<8} "
                f"{node['process']:<8} {node['health'] or '-'}")  # fmt: skip
        if "edge" in node:
            edge = node["edge"]
            models = ", ".join(edge["cached_models"]) or "-"
            line += (
                f"  queue {edge['queue_length']}, cache {edge['cache_used_mb']:.1f}/"
                f"{edge['cache_capacity_mb']:.1f} MB [{models}]"
            )
        print(line)
    return 0


def run_down(args: argparse.Namespace) -> int:
    path, bench = _read(args)
    nodes = sorted(bench["nodes"].items(), key=lambda kv: _STOP_ORDER.get(kv[1]["kind"], 9))
    procs = []
    for node_id, node in nodes:
        proc, note = _own_process(node_id, node)
        if note:
            print(note)
        if proc is not None:
            procs.append(proc)
    for proc in procs:  # psutil refuses to signal a PID reused since it was checked
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _gone, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    path.unlink()
    print(f"stopped {len(procs)} process(es) of the bench of {bench['run_dir']}")
    return 0
