"""A bench of hosts on a lab of namespaced hosts with real sshd (tests/lab_fixtures.py,
docs/lab.md): the coordinator in the root namespace, the broker on the lab bridge's
address (Mosquitto with the generated logins, per-role ACL and TLS), the cloud and the
edges on one host, the agents on another, gRPC with mutual TLS (the addresses are not
loopback), the nodes' logs fetched over SSH into the run
folder at the end (docs/bench-of-hosts.md).

- `test_nodes_on_lab_hosts_...`: the daemons run inside the hosts' namespaces, started
  by the test with their own CLIs (the hosts share this machine's files), each logging
  where a deployed service logs (`<prefix>/logs/<node>.log`);
- `test_a_bench_deployed_...`: `testbed deploy` installs and starts them as services.

While the first bench still runs, `testbed monitor --once --json` and `testbed exporter`
watch it as a lab would: over TLS with the read-only `monitor` login.

Both skip with the reason where this machine cannot host a lab (not root, no network
namespaces, no sshd).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordinator.cli import main as run_cli
from coordinator.exporter import MetricsServer
from coordinator.live import LiveBench
from coordinator.policy_choice import PolicySource
from coordinator.run_folder import write_config
from testbed.broker import EmbeddedBroker, free_port
from testbed.broker_config import bench_broker_security
from testbed.config import BrokerConfig, BrokerKind, TestbedConfig, load_config
from testbed.topics import Topics
from testbed.types import Outcome
from tests.lab_fixtures import LabFactory, LabHosts

from ..waiting import wait_until
from .harness import write_config as write_test_config
from .remote_nodes import DeployedNodes

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ROLES = {"host-1": ["cloud", "edge-0", "edge-1"], "host-2": ["agent-0", "agent-1"]}
SLOTS = 4


@dataclasses.dataclass
class LabBench:
    lab: LabHosts
    config_path: Path
    cfg: TestbedConfig
    broker: EmbeddedBroker


@pytest.fixture
def lab_bench(lab_hosts: LabFactory, tmp_path: Path, tiny_zoo: Path) -> Iterator[LabBench]:
    """Two lab hosts, the broker on the bridge (a broker service of the coordinator's
    machine), the bench's config with its inventory and every certificate issued."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("the lab bench runs Mosquitto with logins, ACL and TLS: not installed")
    lab = lab_hosts(2)
    bridge = lab.coordinator_address
    port = free_port(bridge)
    path, cfg = lab_config(tmp_path, lab, f"mqtts://{bridge}:{port}", tiny_zoo)
    assert run_cli(["certs", "init", "-c", str(path)]) == 0
    assert run_cli(["certs", "issue", "--all", "-c", str(path)]) == 0
    security = bench_broker_security(cfg, bridge)  # logins, the per-role ACL, TLS
    assert security is not None and security.tags == "auth, ACL, TLS"
    with EmbeddedBroker.start(
        BrokerConfig(host=bridge, port=port), tmp_path / "broker",
        kind=BrokerKind.MOSQUITTO, security=security,
    ) as broker:  # fmt: skip
        assert broker.url.startswith("mqtts://")
        yield LabBench(lab, path, cfg, broker)


def lab_config(
    tmp_path: Path, lab: LabHosts, broker_url: str, zoo: Path
) -> tuple[Path, TestbedConfig]:
    zoo_root = tmp_path / "zoo"  # the zoo as `testbed deploy` finds it: <zoo.dir>/<scale>
    shutil.copytree(zoo, zoo_root / "tiny")
    inventory = {"hosts": [
        {**_host_dict(h), "nodes": ROLES[h.name]} for h in lab.hosts
    ]}  # fmt: skip
    port = free_port()
    path = write_test_config(
        tmp_path / "testbed.yaml", broker_url, zoo_root / "tiny", inventory=inventory,
        registry={"listen": f"0.0.0.0:{port}", "advertise": f"{lab.coordinator_address}:{port}",
                  "heartbeat_interval_s": 0.3},
        security={"grpc_tls": "on", "certs_dir": str(tmp_path / "certs")},
        broker={"url": broker_url, "auth": True, "tls": {"enabled": True}},
        deploy={"known_hosts": str(lab.known_hosts), "cache_dir": str(REPO / ".testbed/deploy")},
        edges={"count": 2, "cache_capacity_mb": 8.0, "energy": {"meter": "estimated"},
               "nodes": [{"preload": ["diffusion-s"]}, {"preload": ["cgan-s"]}]},
        tasks={"num_types": 3, "flops_per_cycle": 1.0},
    )  # fmt: skip
    return path, load_config(path, env={})


def _host_dict(host: Any) -> dict[str, Any]:
    plain = dataclasses.asdict(host)
    return {**plain, "board": host.board.value, "manager": host.manager.value}


def drive(bench: LabBench, tmp_path: Path, zoo: Path) -> Path:
    """Start the coordinator's bench, run SLOTS slots, check every task has one
    outcome and the logs came back; returns the run folder."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = bench.cfg
    with LiveBench(cfg, run_dir, write_config(run_dir, cfg), zoo) as live:
        live.start(PolicySource("greedy"))
        assert not live.launcher.nodes and live.launcher.broker is None  # it started nothing
        host_of = {n: h.address for h in bench.lab.hosts for n in ROLES[h.name]}
        for node_id in cfg.node_ids():  # each at its host's lab address
            assert live.nodes.address(node_id).startswith(f"{host_of[node_id]}:"), node_id
        results = [live.step(slot) for slot in range(SLOTS)]
        records = [r for res in results for r in res.records] + live.drain()
    ids = Counter(r.task_id for r in records)
    assert len(records) == 2 * SLOTS and set(ids.values()) == {1}  # one outcome per task
    failures = Counter(r.reason.value for r in records if r.outcome is Outcome.FAILED)
    assert all(r.outcome is Outcome.COMPLETED for r in records), failures
    for node_id in cfg.node_ids():  # this run's part of each service log, over SSH
        log = run_dir / "logs" / f"{node_id}.log"
        assert log.is_file() and log.stat().st_size > 0, node_id
    agent_log = (run_dir / "logs" / "agent-0.log").read_text()
    assert "configured for run" in agent_log
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["hosts"]["host-2"]["registered"] == ROLES["host-2"]
    assert manifest["hosts"]["host-1"]["python"]
    return run_dir


def test_nodes_on_lab_hosts_driven_from_the_root_namespace(
    lab_bench: LabBench, tmp_path: Path, tiny_zoo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, cfg = lab_bench.lab, lab_bench.cfg
    namespace = {n: lab.namespace(h) for h, nodes in ROLES.items() for n in nodes}
    prefix = {n: Path(lab.host(h).prefix) for h, nodes in ROLES.items() for n in nodes}
    nodes = DeployedNodes(
        lab_bench.config_path, tiny_zoo, cfg.registry.advertise, lab_bench.broker.url,
        tmp_path / "hosts", listen_host="0.0.0.0",
        wrappers={n: ["ip", "netns", "exec", ns] for n, ns in namespace.items()},
        log_dirs={n: p / "logs" for n, p in prefix.items()},
    )  # fmt: skip
    try:
        nodes.start_bench(cfg.node_ids())
        drive(lab_bench, tmp_path, tiny_zoo)
        watch(lab_bench, capsys)
    finally:
        nodes.stop()


def watch(bench: LabBench, capsys: pytest.CaptureFixture[str]) -> None:
    """The running bench as a lab watches it: `testbed monitor --once --json` and the
    Prometheus exporter, each over the broker's TLS with the read-only `monitor` login
    (testbed/mqtt_auth.py), see every node and what each edge caches."""
    capsys.readouterr()
    assert run_cli(["monitor", "-c", str(bench.config_path), "--once", "--json"]) == 0
    snapshot = json.loads(capsys.readouterr().out)
    roles = {n: v["role"] for n, v in snapshot["nodes"].items()}
    assert {n: roles.get(n) for n in bench.cfg.node_ids()} == {
        "cloud": "cloud", "edge-0": "edge", "edge-1": "edge",
        "agent-0": "agent", "agent-1": "agent",
    }, snapshot  # fmt: skip
    assert "diffusion-s" in snapshot["edges"]["edge-0"]["cached_models"], snapshot
    assert "cgan-s" in snapshot["edges"]["edge-1"]["cached_models"], snapshot
    topics = Topics.of(bench.cfg)
    with MetricsServer(bench.cfg, bench.broker.url, topics, "127.0.0.1", 0) as exporter:
        wanted = [
            f'testbed_cache_used_bytes{{node="{e}",role="edge"}}' for e in ("edge-0", "edge-1")
        ]

        def scraped() -> str:
            with urllib.request.urlopen(exporter.url, timeout=5) as reply:
                return str(reply.read().decode())

        assert wait_until(lambda: all(w in scraped() for w in wanted)), scraped()


def test_a_bench_deployed_by_testbed_deploy(
    lab_bench: LabBench, tmp_path: Path, tiny_zoo: Path
) -> None:
    path = str(lab_bench.config_path)
    assert run_cli(["deploy", "-c", path]) == 0
    try:
        drive(lab_bench, tmp_path, tiny_zoo)
    finally:
        assert run_cli(["deploy", "-c", path, "--uninstall"]) == 0
