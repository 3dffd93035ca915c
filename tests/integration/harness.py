"""A bench of real processes for integration tests: a broker (amqtt, and Mosquitto
when installed), the cloud node and edge nodes started by the real launcher."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from coordinator.launcher import Launcher
from testbed.config import load_config
from testbed.edge_client import EdgeClient, Submission
from testbed.messages import EdgeStateSnapshot, EdgeTaskRequest, ModelRef
from testbed.mqtt import BrokerAddress, MqttClient
from testbed.topics import Topics


def broker_kinds() -> list[str]:
    """amqtt always; Mosquitto too where it is installed (`.ci/run` installs it)."""
    return ["amqtt", *(["mosquitto"] if shutil.which("mosquitto") else [])]


def write_config(path: Path, broker_url: str | None, zoo_dir: Path, **sections: Any) -> Path:
    """A test config: the given broker (None: embedded) and zoo, fast defaults, `sections`
    merged in."""
    data: dict[str, Any] = {
        "broker": {"url": broker_url},
        "zoo": {"scale": "tiny", "dir": str(zoo_dir.parent)},
        "emulation": {"links": False, "compute": False},
        "edges": {"count": 1, "energy": {"meter": "estimated"}, "fetch_timeout_s": 30.0},
        "agents": {"count": 2, "energy": {"meter": "estimated"}},
        "cloud": {"energy": {"meter": "estimated"}},
        "telemetry": {"interval_s": 0.5},
        "run": {"task_timeout_s": 30.0, "start_timeout_s": 60.0},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))
    load_config(path, env={})  # fail here, not in a node, if the test's config is wrong
    return path


COEDGE_EDGE_GHZ = [1.0, 1.5, 3.0]
"""Edge clocks of the tests' §B bench on a host counted as 3 GHz: edge-0 computes 3×
slower than the host, edge-1 2×, edge-2 at its speed (the compute emulation stretches
slower nodes)."""


def write_coedge_config(
    path: Path, zoo_dir: Path, slot_mode: str = "clocked", **sections: Any
) -> Path:
    """The tests' live §B bench: three heterogeneous edges (`COEDGE_EDGE_GHZ`) and their
    schedulers, one task type of ~10-30 units of the tiny cGAN (enough to split), two
    tasks per station and slot; `sections` merged into those (a section's keys over its
    own)."""
    n = len(COEDGE_EDGE_GHZ)
    data: dict[str, Any] = {
        "emulation": {"links": False, "compute": True, "host_ghz": 3.0},
        "edges": {"count": n, "cache_capacity_mb": 8.0, "energy": {"meter": "estimated"},
                  "preload": ["cgan-s"], "nodes": [{"cpu_ghz": g} for g in COEDGE_EDGE_GHZ]},
        "agents": {"count": n, "energy": {"meter": "estimated"}},
        "tasks": {"flops_per_cycle": 0.01, "types": [{
            "name": "process_optimisation", "model": "cgan-s", "size_mbit": [1.0, 1.0],
            "density_cycles_per_bit": 1.0, "deadline_s": 10.0}]},
        "coedge": {"edge_ghz": COEDGE_EDGE_GHZ, "slot_s": 0.4, "max_tasks": 2,
                   "arrival_prob": 1.0, "size_mbit": [0.5, 1.0],
                   "density_cycles_per_bit": [800.0, 1200.0], "deadline_s": 10.0},
        "run": {"system": "coedge", "slot_mode": slot_mode, "task_timeout_s": 20.0,
                "start_timeout_s": 60.0},
    }  # fmt: skip
    for key, value in sections.items():
        data[key] = {**data[key], **value} if isinstance(data.get(key), dict) else value
    return write_config(path, None, zoo_dir, **data)


class StateWatcher:
    """Every edge state published on MQTT, in arrival order."""

    def __init__(self, broker_url: str, prefix: str = "testbed", bench_id: str = "default") -> None:
        self.states: list[EdgeStateSnapshot] = []
        self._lock = threading.Lock()
        self._client = MqttClient(BrokerAddress.from_url(broker_url), f"watcher-{time.time_ns()}")
        self._client.connect()
        self._client.subscribe(Topics(prefix, bench_id).all_edge_states, self._on_state)

    def _on_state(self, _topic: str, payload: bytes) -> None:
        with self._lock:
            self.states.append(EdgeStateSnapshot.from_json(payload))

    def of(self, edge_id: str) -> list[EdgeStateSnapshot]:
        with self._lock:
            return [s for s in self.states if s.edge_id == edge_id]

    def close(self) -> None:
        self._client.close()


class EdgeBench:
    """Cloud + edges as processes against an already running broker."""

    def __init__(self, tmp: Path, broker_url: str, zoo_dir: Path, **sections: Any) -> None:
        self.tmp = tmp
        self.zoo_dir = zoo_dir
        self.config_path = write_config(tmp / "testbed.yaml", broker_url, zoo_dir, **sections)
        self.cfg = load_config(self.config_path, env={})
        self.launcher = Launcher(self.cfg, tmp / "run", self.config_path, zoo_dir=zoo_dir)
        self.launcher.start_broker()
        self.clients: dict[str, EdgeClient] = {}
        self._n = 0

    def start(self, cloud: bool = True) -> EdgeBench:
        nodes = [self.launcher.start_cloud()] if cloud else []
        nodes += [self.launcher.start_edge(spec) for spec in self.cfg.edge_specs()]
        self.launcher.wait_ready(nodes)
        return self

    def client(self, edge_id: str = "edge-0") -> EdgeClient:
        address = self.launcher.nodes[edge_id].address
        client = self.clients.get(edge_id)
        if client is None or client.address != address:
            client = self.clients[edge_id] = EdgeClient(address, edge_id)
        return client

    def submit(
        self, model_id: str, *, edge_id: str = "edge-0", download: bool = True, units: int = 1,
        data: bytes = b"\x01" * 1024,
    ) -> Submission:  # fmt: skip
        self._n += 1
        request = EdgeTaskRequest(
            task_id=f"test/t{self._n:04d}", model=ModelRef(model_id), units=units,
            download=download, agent_id="test", data_bytes=len(data),
        )  # fmt: skip
        return self.client(edge_id).submit(request, data, timeout_s=60)

    def state(self, edge_id: str = "edge-0") -> EdgeStateSnapshot:
        return self.client(edge_id).state()

    def restart(self, node_id: str) -> None:
        node = self.launcher.restart(node_id)
        self.launcher.wait_ready([node])

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.launcher.stop_all()

    def __enter__(self) -> EdgeBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def catalog_sizes(zoo_dir: Path) -> dict[str, int]:
    doc = json.loads((zoo_dir / "catalog.json").read_text())
    return {m["id"]: int(m["size_bytes"]) for m in doc["models"]}
