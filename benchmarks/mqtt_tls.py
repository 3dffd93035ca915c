"""Benchmark: a model fetch cloud→edge through a secured broker (TLS, logins, the
per-role ACL) vs the same fetch through a plaintext anonymous one, in the same run.

Ours: the real cloud node process (`testbed-cloud`, started by the real launcher,
pacing off) serves a model to the edge's real `FeedClient` in this process, logged in
as the edge, through the embedded Mosquitto with `broker.auth: on` and
`broker.tls.enabled: true` (certificate from a bench CA made for the run, MQTT v5).
Reference: the same, through a second Mosquitto without TLS or logins, with its own
cloud node. Fetches alternate between the two benches, so both see the same machine.
Figure: MB/s (10^6 bytes/s) of the file, timed from the request to the verified file.
Details: the CPU time each process spent per MiB fetched (broker, cloud, and this
process as the edge), which a busy machine does not blur as it blurs wall times: the
difference is what TLS costs (each MiB is encrypted by the cloud, decrypted and
encrypted again by the broker, decrypted by the edge).

Goal: secured / plaintext ≥ 0.8.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import (
    Case,
    Goal,
    GoalKind,
    Result,
    catalog_models,
    demo_zoo_or_tiny,
    median,
    node_bench,
    report,
    scratch,
    standalone,
    tiny_zoo,
)

NAME = "mqtt_tls"
GOAL = Goal(GoalKind.RATIO_AT_LEAST, 0.8, "≥ 0.8 × the plaintext fetch")
SECURED = {"auth": True, "tls": {"enabled": True}, "protocol": 5}


@dataclass
class _Bench:
    feed: Any
    """The `FeedClient` standing in for the edge."""
    description: str
    processes: dict[str, psutil.Process]
    """The broker and the cloud node: they work only for this bench's fetches."""

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds (user + system) of each process so far."""
        return {name: sum(p.cpu_times()[:2]) for name, p in self.processes.items()}


@contextmanager
def _bench(tmp: Path, zoo: Path, secured: bool) -> Iterator[_Bench]:
    """A Mosquitto (secured or not), a cloud node on it and a `FeedClient` standing in
    for the config's one edge (logged in as it)."""
    from edge_node.model_feed import FeedClient
    from testbed.broker import EmbeddedBroker
    from testbed.broker_config import bench_broker_security
    from testbed.config import BrokerKind, config_from_dict
    from testbed.mqtt import MqttClient
    from testbed.mqtt_auth import node_broker_address
    from testbed.security.certs import create_ca
    from testbed.topics import Topics

    name = "secured" if secured else "plain"
    certs = tmp / name / "certs"
    sections: dict[str, Any] = {"security": {"certs_dir": str(certs)}}
    if secured:
        create_ca(certs)
        sections["broker"] = SECURED
    cfg = config_from_dict({**sections, "edges": {"count": 1}, "agents": {"count": 0}})
    security = bench_broker_security(cfg, "127.0.0.1")
    with ExitStack() as stack:
        running = stack.enter_context(
            EmbeddedBroker.start(
                cfg.broker, tmp / name / "broker", kind=BrokerKind.MOSQUITTO, security=security
            )
        )
        launcher = stack.enter_context(
            node_bench(
                tmp / name, running.url, zoo, cloud=True, edges=1, start_edges=False, **sections
            )
        )
        edge_id = launcher.cfg.edge_specs()[0].id
        address = node_broker_address(running.url, launcher.cfg, edge_id)
        client = stack.enter_context(MqttClient(address, f"bench-{name}-{os.getpid()}"))
        client.connect()
        feed = FeedClient(client, Topics.of(launcher.cfg), edge_id)
        stack.callback(feed.close)
        processes = {"broker": psutil.Process(running.process.pid),
                     "cloud": psutil.Process(launcher.nodes["cloud"].pid)}  # fmt: skip
        yield _Bench(feed, running.description, processes)


def _measure_model(benches: dict[str, _Bench], model: dict, dest_dir: Path, repeats: int) -> Case:
    """Median MB/s of `repeats` fetches of `model` through each bench, alternated, and
    each process's CPU ms per MiB fetched."""
    from testbed.schema import load_dataclass
    from testbed.zoo.catalog import ModelEntry

    entry = load_dataclass(ModelEntry, model)
    size_bytes = int(model["size_bytes"])
    rates: dict[str, list[float]] = {name: [] for name in benches}
    edge_cpu_s = dict.fromkeys(benches, 0.0)  # this process: per fetch (both benches in it)
    for name, bench in benches.items():  # warm-up: page cache, sessions, TLS handshakes
        bench.feed.fetch(entry, dest_dir / f"{name}.onnx", timeout_s=120)
        (dest_dir / f"{name}.onnx").unlink()
    before = {name: bench.cpu_s() for name, bench in benches.items()}
    for _ in range(repeats):
        for name, bench in benches.items():
            dest = dest_dir / f"{name}.onnx"
            cpu0, t0 = time.process_time(), time.perf_counter()
            bench.feed.fetch(entry, dest, timeout_s=120)
            rates[name].append(size_bytes / (time.perf_counter() - t0) / 1e6)
            edge_cpu_s[name] += time.process_time() - cpu0
            dest.unlink()
    mib = repeats * size_bytes / 2**20
    details: dict[str, float] = {}
    for name, bench in benches.items():
        spent = {k: v - before[name][k] for k, v in bench.cpu_s().items()}
        spent["edge"] = edge_cpu_s[name]
        details |= {f"{name}_{k}_cpu_ms_per_mib": round(v / mib * 1e3, 2) for k, v in spent.items()}
    return Case(
        label=f"mosquitto, {model['id']} {size_bytes / 1e6:.1f} MB",
        ours=median(rates["secured"]),
        reference=median(rates["plain"]),
        samples=repeats,
        details=details,
    )


def run(quick: bool = False) -> Result:
    import shutil

    notes: list[str] = []
    if shutil.which("mosquitto") is None:
        raise RuntimeError("mqtt_tls needs Mosquitto (apt install mosquitto)")
    zoo = tiny_zoo() if quick else demo_zoo_or_tiny(notes)
    models = catalog_models(zoo)
    picks = [models[-1]] if quick else [models[len(models) // 2 - 1], models[-1]]
    repeats = 3 if quick else 9
    cases: list[Case] = []
    with scratch(NAME) as tmp, ExitStack() as stack:
        benches = {name: stack.enter_context(_bench(tmp, zoo, name == "secured"))
                   for name in ("plain", "secured")}  # fmt: skip
        notes += [f"{name}: {bench.description}" for name, bench in benches.items()]
        dest_dir = tmp / "fetched"
        dest_dir.mkdir()
        for model in picks:
            case = _measure_model(benches, model, dest_dir, repeats)
            cases.append(case)
            notes.append(
                f"{case.label}: CPU ms per MiB "
                + ", ".join(
                    f"{k.removesuffix('_cpu_ms_per_mib')} {v:g}" for k, v in case.details.items()
                )
            )
    notes.append(f"zoo {zoo}; chunks 1 MiB at QoS 1, pacing off; MB = 10^6 bytes")
    return report(Result(NAME, "MB/s", GOAL, cases, notes))


if __name__ == "__main__":
    raise SystemExit(standalone(run))
