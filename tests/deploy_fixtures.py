"""A bench to `testbed deploy` onto a lab (tests/lab_fixtures.py): its config file, an
MQTT broker on the lab's bridge, the bench's certificates, and the project wheel and
wheelhouse made once per test session (docs/deploy.md, "Testing on a lab").

    artifacts = deploy_artifacts()            # wheel + wheelhouse, cached
    with LabBench(lab, folder, zoo, {"host-1": ["cloud", "edge-0"], ...}, artifacts) as bench:
        main(["deploy", "-c", str(bench.config_path)])

On exit the bench uninstalls what deploy left (`testbed deploy --uninstall`), then
ends any daemon or supervisor still running from the lab's folder (found by its
command line naming the folder; each by its pid), and stops the broker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import signal
import socket
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from coordinator.deploy.artifacts import REPO, ProjectWheel, Target, project_wheel, wheelhouse
from testbed.broker import EmbeddedBroker
from testbed.config import BrokerConfig, load_config
from testbed.exit_codes import TestbedExit
from testbed.security.certs import create_ca, issue_node
from tests.lab_fixtures import LabHosts

CACHE_DIR = REPO / ".testbed" / "deploy-tests"
"""Where the tests' wheel and wheelhouse are cached across sessions (gitignored)."""


@dataclass(frozen=True)
class DeployArtifacts:
    wheel: ProjectWheel
    wheelhouse: Path


def deploy_artifacts() -> DeployArtifacts:
    """The project wheel of the current sources and a wheelhouse for this machine's
    kind of host with the `cpu` extra (what the lab's agents and edges need), built
    or downloaded once and cached; skips the test where the wheelhouse cannot be
    downloaded (no index reachable)."""
    import platform
    import sys

    wheel = project_wheel(CACHE_DIR)
    target = Target(platform.machine(), f"{sys.version_info[0]}.{sys.version_info[1]}",
                    platform.libc_ver()[1], ("cpu",))  # fmt: skip
    try:
        house = wheelhouse(CACHE_DIR, target)
    except TestbedExit as exc:
        pytest.skip(f"no wheelhouse for deploy tests: {exc.message[-300:]}")
    return DeployArtifacts(wheel, house)


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def hosts_data(lab: LabHosts, nodes: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The lab's hosts as inventory entries, each running `nodes[name]`."""
    out = []
    for host in lab.hosts:
        entry = dataclasses.asdict(host)
        entry.update(board=host.board.value, manager=host.manager.value,
                     nodes=nodes.get(host.name, []))  # fmt: skip
        out.append(entry)
    return out


class LabBench:
    """A bench config for `lab`: a cloud, `edges` edges and `agents` agents placed on
    its hosts as `nodes` says, the tiny zoo, TLS on (certificates made here), the
    broker started on the lab's bridge, the registry's address fixed (nothing listens:
    the daemons keep retrying, as deployed daemons do until `testbed up`)."""

    def __init__(
        self, lab: LabHosts, folder: Path, zoo: Path, nodes: dict[str, list[str]],
        artifacts: DeployArtifacts, *, edges: int = 1, agents: int = 1,
    ) -> None:  # fmt: skip
        self.lab, self.folder, self.nodes, self.artifacts = lab, folder, nodes, artifacts
        self.zoo, self.edges, self.agents = zoo, edges, agents
        self.broker: EmbeddedBroker | None = None
        self.config_path = folder / "bench.yaml"

    def config_data(self) -> dict[str, Any]:
        coordinator = self.lab.coordinator_address
        assert self.broker is not None
        return {
            "zoo": {"scale": "tiny", "dir": str(self.folder / "zoo")},
            "edges": {"count": self.edges, "cache_capacity_mb": 8.0, "nodes": []},
            "agents": {"count": self.agents},
            "tasks": {"num_types": 3, "flops_per_cycle": 1.0},
            "run": {"policy": "local" if self.edges == 0 else "greedy"},
            "broker": {"url": self.broker.url},
            "registry": {"listen": f"{coordinator}:{free_port(coordinator)}"},
            "security": {"grpc_tls": "on", "certs_dir": str(self.folder / "certs")},
            "deploy": {"cache_dir": str(CACHE_DIR), "wheel": str(self.artifacts.wheel.path),
                       "wheelhouse": str(self.artifacts.wheelhouse),
                       "known_hosts": str(self.lab.known_hosts), "health_timeout_s": 90.0,
                       "stop_timeout_s": 5.0, "restart_delay_s": 0.5},
            "inventory": {"hosts": hosts_data(self.lab, self.nodes)},
        }  # fmt: skip

    def __enter__(self) -> LabBench:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "zoo").mkdir(exist_ok=True)
        if not (self.folder / "zoo" / "tiny").exists():
            os.symlink(self.zoo, self.folder / "zoo" / "tiny")
        coordinator = self.lab.coordinator_address
        self.broker = EmbeddedBroker.start(
            BrokerConfig(host=coordinator, port=free_port(coordinator)), self.folder / "broker"
        )
        try:
            self.write_config(self.config_data())
            cfg = load_config(self.config_path)
            create_ca(self.folder / "certs")
            for node_id in ["coordinator", *cfg.node_ids()]:
                issue_node(cfg, node_id)
        except BaseException:
            self.broker.stop()
            raise
        return self

    def write_config(self, data: dict[str, Any]) -> Path:
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
        return self.config_path

    def __exit__(self, *exc: object) -> None:
        from coordinator.cli import main

        try:
            with contextlib.suppress(Exception), redirect_stdout(io.StringIO()):
                main(["deploy", "-q", "-c", str(self.config_path), "--uninstall"])
            end_leftovers(self.lab.dir)
        finally:
            if self.broker is not None:
                self.broker.stop()


def end_leftovers(folder: Path) -> list[int]:
    """SIGKILL every deployed daemon or supervisor a failed test left running from
    `folder` (a program of a venv or a supervise.py under it: not the lab's sshd), each
    by its pid; the pids."""
    mark = str(folder) + "/"
    ended = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        ours = [p for p in cmdline[:2] if p.startswith(mark)]
        if proc.pid != os.getpid() and any("/venv/" in p or p.endswith("supervise.py")
                                           for p in ours):  # fmt: skip
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
                ended.append(proc.pid)
    return ended
