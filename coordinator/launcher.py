"""Start the bench as local processes: the broker (unless external), the cloud node,
edges and agents, each with its own log file in the run folder.

Each node writes a ready file (JSON with its address) once it serves; the launcher
waits for those, and a node that exits while starting is reported with the tail of
its log, under the node's own exit code when it is one that says what was wrong (a
port in use, a meter that cannot read, ...), else NODE_START_FAILED. Configured ports
are checked before anything starts: one already taken is PORT_IN_USE naming it.

Children live in their own process session (a terminal's Ctrl-C reaches only the
coordinator, which tears down in order) and stop if the coordinator dies (Linux
PR_SET_PDEATHSIG, set by each child: testbed.daemon.exit_with_parent), so no process
is left behind.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.process_identity import ProcessIdentity
from coordinator.remote_bench import embedded_broker_config
from testbed.broker import BrokerPortInUse, BrokerStartError, EmbeddedBroker, port_in_use
from testbed.broker_config import BrokerCertificateError, bench_broker_security
from testbed.config import AgentSpec, EdgeSpec, NodeAddress, TestbedConfig
from testbed.daemon import PARENT_ENV
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.mqtt_auth import handed_password_args
from testbed.types import NodeKind

log = logging.getLogger(__name__)

_PASSED_ON = frozenset({
    ExitCode.CONFIG_INVALID, ExitCode.ZOO_MISSING, ExitCode.BROKER_UNAVAILABLE,
    ExitCode.PORT_IN_USE, ExitCode.MODEL_INVALID, ExitCode.DEPENDENCY_MISSING,
    ExitCode.METER_UNAVAILABLE, ExitCode.OUTPUT_UNWRITABLE, ExitCode.BROKER_REFUSED,
    ExitCode.CERTIFICATE_INVALID,
})  # fmt: skip
"""A node's exit codes that say more than NODE_START_FAILED: `testbed up` ends with them."""


@dataclass
class NodeProcess:
    node_id: str
    kind: NodeKind
    argv: list[str]
    log_path: Path
    ready_path: Path
    proc: subprocess.Popen | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return str(self.info.get("address", ""))

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Launcher:
    """The processes of one bench. Use as a context manager: exit tears everything down."""

    def __init__(
        self,
        cfg: TestbedConfig,
        run_dir: Path,
        config_path: Path,
        *,
        zoo_dir: Path,
        registry_address: str | None = None,
        keep: bool = False,
    ) -> None:
        self.cfg = cfg
        self.keep = keep  # the bench outlives the coordinator: no PDEATHSIG
        self.run_dir = run_dir
        self.config_path = config_path
        self.zoo_dir = zoo_dir
        self.registry_address = registry_address
        self.logs_dir = run_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.broker: EmbeddedBroker | None = None
        self.broker_url = cfg.broker.url or ""
        self.nodes: dict[str, NodeProcess] = {}
        self._handed_password: list[str] | None = None
        self._env = {
            **os.environ,
            # each node exits with the coordinator (testbed.daemon.exit_with_parent)
            **({} if keep else {PARENT_ENV: str(os.getpid())}),
            "PYTHONUNBUFFERED": "1",
            # one thread per math library: the nodes share the host's cores
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }

    # ------------------------------------------------------------------ broker

    def configured_ports(self) -> list[tuple[str, str, int]]:
        """(what, host, port) of every port the config fixes (0: a free one, unlisted)."""
        ports = []
        if not self.cfg.broker.url and self.cfg.broker.port:
            ports.append(("the embedded broker (broker.port)", self.cfg.broker.host,
                          self.cfg.broker.port))  # fmt: skip
        groups: list[tuple[str, list[NodeAddress]]] = [
            ("edges", [*self.cfg.edge_specs()]),
            ("agents", [*self.cfg.agent_specs()]),
        ]
        if self.cfg.inventory.remote:  # a bench of hosts: its nodes listen there, not here
            groups = []
        for group, specs in groups:
            for i, spec in enumerate(specs):
                if spec.port:
                    ports.append((f"{spec.id} ({group}.nodes[{i}].port)", spec.host, spec.port))
        return ports

    def check_ports(self) -> None:
        """PORT_IN_USE naming the first configured port something already holds."""
        for what, host, port in self.configured_ports():
            if port_in_use(host, port):
                raise TestbedExit(
                    ExitCode.PORT_IN_USE, f"{host}:{port}, the port of {what}, is already taken"
                )

    def start_broker(self) -> str:
        """Check the configured ports (nothing is started if one is taken), then start
        the embedded broker unless `broker.url` names one (on a bench of hosts: one this
        machine does not serve yet, coordinator/remote_bench.py); returns its URL."""
        self.check_ports()
        embedded = embedded_broker_config(self.cfg)
        if embedded is None:
            log.info("using external MQTT broker %s", self.cfg.broker.url)
            return self.cfg.broker.url or ""
        try:  # logins, ACL, TLS (broker.auth, broker.tls.enabled); None: anonymous
            security = bench_broker_security(self.cfg, embedded.host)
        except BrokerCertificateError as exc:
            raise TestbedExit(ExitCode.CERTIFICATE_INVALID, f"embedded broker: {exc}") from None
        try:
            self.broker = EmbeddedBroker.start(
                embedded,
                self.run_dir / "broker",
                die_with_parent=not self.keep,
                security=security,
            )
        except BrokerPortInUse as exc:
            raise TestbedExit(ExitCode.PORT_IN_USE, f"embedded broker: {exc}") from None
        except BrokerStartError as exc:
            raise TestbedExit(ExitCode.BROKER_UNAVAILABLE, f"embedded broker: {exc}") from None
        self.broker_url = self.cfg.broker.url or self.broker.url
        return self.broker_url

    @property
    def broker_description(self) -> str:
        if self.broker is not None:
            return f"embedded {self.broker.description}"
        return f"external {self.broker_url}"

    # ------------------------------------------------------------------ nodes

    def _spawn(self, node_id: str, kind: NodeKind, module: str, extra: list[str]) -> NodeProcess:
        ready = self.run_dir / "ready" / f"{node_id}.json"
        ready.parent.mkdir(exist_ok=True)
        ready.unlink(missing_ok=True)
        argv = [
            sys.executable, "-m", module,
            "-c", str(self.config_path),
            "--id", node_id,
            "--broker", self.broker_url,
            "--ready-file", str(ready),
            *(["--registry", self.registry_address] if self.registry_address else []),
            *self._password_args(),
            *extra,
        ]  # fmt: skip
        node = NodeProcess(node_id, kind, argv, self.logs_dir / f"{node_id}.log", ready)
        self._start(node)
        self.nodes[node_id] = node
        return node

    def _password_args(self) -> list[str]:
        """The password the config holds in memory (from broker.url or broker.password)
        reaches the nodes as a 0600 file they read by path, never on their command line
        (the run's config.yaml has it `<redacted>`)."""
        if self._handed_password is None:
            self._handed_password = handed_password_args(self.cfg)
        return self._handed_password

    def _start(self, node: NodeProcess) -> None:
        with open(node.log_path, "ab") as logf:
            node.proc = subprocess.Popen(
                node.argv,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env,
                start_new_session=True,
            )
        node.info = {}

    def start_cloud(self) -> NodeProcess:
        return self._spawn("cloud", NodeKind.CLOUD, "cloud_node", ["--zoo", str(self.zoo_dir)])

    def start_edge(self, spec: EdgeSpec) -> NodeProcess:
        cloud = self.nodes.get("cloud")
        if spec.preload and cloud is not None:
            # The edge asks the cloud for its preloads as soon as it serves; a request
            # published before the cloud subscribed is lost and the edge would wait its
            # whole fetch timeout (seen in ~1 of 6 starts of 2 edges here).
            self.wait_ready([cloud])
        cache = Path(spec.cache_dir) if spec.cache_dir else self.run_dir / "cache" / spec.id
        return self._spawn(spec.id, NodeKind.EDGE, "edge_node", ["--cache-dir", str(cache)])

    def start_agent(self, spec: AgentSpec) -> NodeProcess:
        return self._spawn(spec.id, NodeKind.AGENT, "agent_node", ["--zoo", str(self.zoo_dir)])

    def wait_ready(self, nodes: list[NodeProcess], timeout_s: float | None = None) -> None:
        """Wait until every node wrote its ready file; fail fast if one exits."""
        limit_s = timeout_s or self.cfg.run.start_timeout_s
        deadline = time.monotonic() + limit_s
        pending = list(nodes)
        while pending:
            for node in list(pending):
                if node.ready_path.exists():
                    try:
                        node.info = json.loads(node.ready_path.read_text())
                    except ValueError:
                        continue  # being written
                    pending.remove(node)
                elif not node.alive():
                    raise _start_failure(node)
            if pending and time.monotonic() > deadline:
                names = ", ".join(n.node_id for n in pending)
                raise TestbedExit(
                    ExitCode.NODE_START_FAILED,
                    f"not ready after {limit_s:g} s: {names}; see {self.logs_dir}",
                )
            if pending:
                time.sleep(0.05)

    def kill(self, node_id: str, sig: int = signal.SIGKILL) -> None:
        node = self.nodes[node_id]
        if node.alive() and node.proc is not None:
            node.proc.send_signal(sig)
            node.proc.wait(10)

    def restart(self, node_id: str) -> NodeProcess:
        node = self.nodes[node_id]
        self.kill(node_id, signal.SIGTERM)
        node.ready_path.unlink(missing_ok=True)
        self._start(node)
        return node

    def describe(self) -> dict[str, Any]:
        """What `testbed status` / `testbed down` need to find the processes, each with
        its identity (start time, command line) so that only these are ever signalled."""
        nodes: dict[str, Any] = {
            n.node_id: {
                "kind": n.kind.value,
                "pid": n.pid,
                "address": n.address,
                "log": str(n.log_path),
                **_identity(n.pid),
            }
            for n in self.nodes.values()
        }
        if self.broker is not None:
            nodes["broker"] = {
                "kind": "broker",
                "pid": self.broker.process.pid,
                "address": "",
                "log": str(self.broker.log_path),
                **_identity(self.broker.process.pid),
            }
        return {
            "run_dir": str(self.run_dir),
            "broker": self.broker_description,
            "broker_url": self.broker_url,  # without credentials (moved out at load)
            "nodes": nodes,
        }

    # ------------------------------------------------------------------ teardown

    def stop_all(self, grace_s: float = 5.0) -> None:
        """SIGTERM every node (agents, then edges, then the cloud), then the broker;
        SIGKILL whatever has not exited after `grace_s`."""
        order = {NodeKind.AGENT: 0, NodeKind.EDGE: 1, NodeKind.CLOUD: 2}
        nodes = sorted(self.nodes.values(), key=lambda n: order.get(n.kind, 3))
        for node in nodes:
            if node.alive() and node.proc is not None:
                node.proc.terminate()
        deadline = time.monotonic() + grace_s
        for node in nodes:
            if node.proc is None:
                continue
            try:
                node.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s: killed", node.node_id, grace_s)
                node.proc.kill()
                node.proc.wait()
        if self.broker is not None:
            self.broker.stop()

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def _identity(pid: int | None) -> dict[str, Any]:
    identity = ProcessIdentity.of(pid)
    return identity.to_record() if identity is not None else {}


def _start_failure(node: NodeProcess) -> TestbedExit:
    """A node that exited while starting: its own exit code when that says what was
    wrong (testbed/exit_codes.py), else NODE_START_FAILED; the tail of its log."""
    code = node.proc.returncode if node.proc else None
    passed_on = next((c for c in _PASSED_ON if c.value == code), None)
    named = f" ({passed_on.name})" if passed_on else ""
    return TestbedExit(
        passed_on or ExitCode.NODE_START_FAILED,
        f"{node.node_id} exited with code {code}{named} while starting; "
        f"log {node.log_path}:\n{node.log_tail()}",
    )
