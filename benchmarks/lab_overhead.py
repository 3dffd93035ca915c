"""Benchmark: slot overhead on a bench of hosts (a lab of namespaced hosts) vs the
embedded bench, with the same nodes and tasks (docs/bench-of-hosts.md).

Ours: a real `LiveBench` (coordinator/live.py) whose nodes run on two hosts of a lab
(coordinator/lab: network namespaces joined by veth pairs and a bridge,
tests/lab_fixtures.py `start_lab`): the cloud and 2 edges on host-1, 4 agents on
host-2, started with their own CLIs inside the hosts' namespaces (the hosts share this
machine's files; `testbed deploy` starts the very same daemons as services), the
broker (the embedded one: Mosquitto when installed) on the lab bridge's address, the
registry on 0.0.0.0, gRPC with mutual TLS (`security.grpc_tls: auto` is on: the
addresses are not loopback) — every call of a slot crosses the lab's network.

Reference: the same bench embedded — every node a process the coordinator starts,
loopback, plaintext — started beside it in the same run; slots alternate between the
two benches in batches of 10. Per slot `SlotResult.overhead_ms` (the slot's wall time
minus the longest step a board measured on itself), three cases as in
benchmarks/orchestration.py: no task (the barrier alone), a tiny local task, a tiny
task sent whole to an edge (greedy).

Needs what a lab needs (root, network namespaces, /usr/sbin/sshd): elsewhere it says
why and does not run. Goal (this benchmark's own): the lab adds ≤ 2 ms at p50.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass, field
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

NAME = "lab_overhead"
GOAL = Goal(GoalKind.ADDED_AT_MOST, 2.0, "≤ +2 ms at p50")
AGENTS = 4
EDGES = 2
BATCH = 10
CASES = {"no task": ("local", False), "tiny local task": ("local", True),
         "tiny task, greedy": ("greedy", True)}  # fmt: skip
"""case → (policy, whether the boards draw a task)."""


@dataclass
class _Bench:
    """One started bench, the policy it runs and its next slot."""

    live: Any
    policy: str = "local"
    slot: int = 0
    overhead_ms: dict[str, list[float]] = field(default_factory=dict)

    def step(self, generate: bool) -> Any:
        result = self.live.step(self.slot, generate=generate)
        self.slot += 1
        return result


def _started(stack: ExitStack, cfg: Any, run_dir: Path, zoo: Path) -> _Bench:
    from coordinator.live import LiveBench
    from coordinator.policy_choice import PolicySource
    from coordinator.run_folder import write_config

    run_dir.mkdir(parents=True)
    live = stack.enter_context(LiveBench(cfg, run_dir, write_config(run_dir, cfg), zoo))
    live.start(PolicySource("local"))
    return _Bench(live)


@contextmanager
def lab_bench(stack: ExitStack, tmp: Path, zoo: Path, base: dict[str, Any]) -> Iterator[_Bench]:
    """The bench on two lab hosts (see the module's docstring), torn down on exit."""
    from coordinator.cli import main as run_cli
    from coordinator.lab import teardown
    from testbed.broker import EmbeddedBroker, free_port
    from testbed.config import BrokerConfig, load_config
    from tests.integration.remote_nodes import DeployedNodes
    from tests.lab_fixtures import start_lab

    lab = start_lab(tmp, 2)
    stack.callback(teardown, lab.state)
    bridge = lab.coordinator_address
    broker = stack.enter_context(
        EmbeddedBroker.start(BrokerConfig(host=bridge, port=free_port(bridge)), tmp / "broker")
    )
    roles = {"host-1": ["cloud", *(f"edge-{i}" for i in range(EDGES))],
             "host-2": [f"agent-{i}" for i in range(AGENTS)]}  # fmt: skip
    port = free_port()
    hosts = [{"name": h.name, "address": h.address, "key": h.key, "prefix": h.prefix,
              "nodes": roles[h.name]} for h in lab.hosts]  # fmt: skip
    host_of = {n: h for h, ns in roles.items() for n in ns}
    data = {**base, "broker": {"url": broker.url}, "inventory": {"hosts": hosts},
            "registry": {"listen": f"0.0.0.0:{port}", "advertise": f"{bridge}:{port}"},
            "security": {"certs_dir": str(tmp / "certs")},
            "deploy": {"known_hosts": str(lab.known_hosts)}}  # fmt: skip
    path = tmp / "lab.yaml"
    path.write_text(yaml.safe_dump(data))
    with redirect_stdout(io.StringIO()):  # the certificates' lines: not this benchmark's
        for command in (["certs", "init"], ["certs", "issue", "--all"]):
            assert run_cli([*command, "-c", str(path)]) == 0, command
    cfg = load_config(path, env={})
    nodes = DeployedNodes(
        path, zoo, cfg.registry.advertise, broker.url, tmp / "hosts", listen_host="0.0.0.0",
        wrappers={n: ["ip", "netns", "exec", lab.namespace(h)] for n, h in host_of.items()},
        log_dirs={n: Path(lab.host(h).prefix) / "logs" for n, h in host_of.items()},
    )  # fmt: skip
    stack.callback(nodes.stop)
    nodes.start_bench(cfg.node_ids())
    yield _started(stack, cfg, tmp / "lab-run", zoo)


def _measure(benches: dict[str, _Bench], slots: int) -> None:
    """Every case BATCH slots at a time on each bench in turn, until `slots` each."""
    from coordinator.policy_choice import PolicySource

    for bench in benches.values():
        bench.overhead_ms = {name: [] for name in CASES}
        for _ in range(BATCH):  # warm-up: channels, thread pools, ORT's first runs
            bench.step(True)
    while min(len(v) for b in benches.values() for v in b.overhead_ms.values()) < slots:
        for name, (policy, generate) in CASES.items():
            for bench in benches.values():
                if bench.policy != policy:
                    bench.live.load_policy(PolicySource(policy))
                    bench.policy = policy
                    bench.step(generate)  # this slot also sends LoadPolicy: not measured
                bench.step(generate)  # warm-up after a switch
                bench.overhead_ms[name] += [bench.step(generate).overhead_ms for _ in range(BATCH)]


def run(quick: bool = False) -> Result:
    from testbed.config import load_config

    slots = 10 if quick else 100
    zoo = tiny_zoo()
    with scratch("lab-overhead") as tmp, ExitStack() as stack:
        local_path = bench_config(tmp / "local.yaml", zoo, AGENTS, EDGES)
        base = yaml.safe_load(local_path.read_text())
        lab = stack.enter_context(lab_bench(stack, tmp / "lab", zoo, base))
        local = _started(stack, load_config(local_path, env={}), tmp / "local-run", zoo)
        _measure({"lab": lab, "local": local}, slots)
        broker = local.live.launcher.broker_description
    out, notes = [], []
    for name in CASES:
        ours, ref = lab.overhead_ms[name], local.overhead_ms[name]
        details = {"ours_p95_ms": round(percentile(ours, 95), 3),
                   "reference_p95_ms": round(percentile(ref, 95), 3)}  # fmt: skip
        out.append(Case(f"{AGENTS} agents, {EDGES} edges, {name}", median(ours), median(ref),
                        len(ours), details=details))  # fmt: skip
        notes.append(f"{name}: p95 ours {details['ours_p95_ms']} ms, reference "
                     f"{details['reference_p95_ms']} ms")  # fmt: skip
    notes += [
        "ours: nodes on 2 lab hosts (namespaces, veth, bridge), mutual TLS, broker on the "
        "bridge; reference: the same nodes embedded (loopback, plaintext), same run",
        f"{os.cpu_count()} cores for both benches ({2 * (1 + EDGES + AGENTS)} node processes, "
        f"2 brokers); embedded broker {broker}",
    ]
    return report(Result(NAME, "ms", GOAL, out, notes))


if __name__ == "__main__":
    raise SystemExit(standalone(run))
