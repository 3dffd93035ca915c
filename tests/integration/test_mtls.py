"""Mutual TLS on every gRPC call, with real daemons on loopback (`security.grpc_tls: on`)
and certificates made by testbed/security/certs.py in a tmp folder: a whole live bench
runs its slots, and each hostile call of docs/security.md is refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from coordinator.live import LiveBench
from coordinator.policy_choice import PolicySource
from coordinator.run_folder import write_config
from testbed.broker import EmbeddedBroker
from testbed.config import BrokerConfig, load_config
from testbed.exit_codes import ExitCode
from testbed.registration import NodeInfo, node_info_to_proto
from testbed.rpc.v1 import agent_pb2, agent_pb2_grpc, edge_pb2, registry_pb2, registry_pb2_grpc
from testbed.security import certs
from testbed.security.credentials import PLAINTEXT, GrpcIdentity
from testbed.security.roles import COORDINATOR_ID, Role
from testbed.types import NodeKind, Outcome

from .harness import write_config as write_test_config

pytestmark = pytest.mark.slow

NODES = {
    COORDINATOR_ID: Role.COORDINATOR, "cloud": Role.CLOUD, "edge-0": Role.EDGE,
    "edge-1": Role.EDGE, "agent-0": Role.AGENT, "agent-1": Role.AGENT, "agent-2": Role.AGENT,
}  # fmt: skip


def make_certs(folder: Path) -> certs.CertificateAuthority:
    ca = certs.create_ca(folder)
    for node_id, role in NODES.items():
        certs.issue(ca, folder, node_id, role, ["127.0.0.1"])
    return ca


class TlsBench:
    """A started live bench with mTLS, its certificates, and another CA's."""

    def __init__(self, bench: LiveBench, certs_dir: Path, tmp: Path) -> None:
        self.bench = bench
        self.certs_dir = certs_dir
        self.ca = certs.load_ca(certs_dir)
        self.foreign_dir = tmp / "foreign-ca"  # another CA, the same node names
        make_certs(self.foreign_dir)

    def identity(self, node_id: str, certs_dir: Path | None = None) -> GrpcIdentity:
        return GrpcIdentity(node_id, tls=True, certs_dir=certs_dir or self.certs_dir)

    def address(self, node_id: str) -> str:
        return self.bench.launcher.nodes[node_id].address

    @property
    def registry(self) -> str:
        assert self.bench.launcher.registry_address
        return self.bench.launcher.registry_address


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory, tiny_zoo: Path) -> Iterator[TlsBench]:
    tmp = tmp_path_factory.mktemp("mtls")
    certs_dir = tmp / "certs"
    make_certs(certs_dir)
    path = write_test_config(
        tmp / "testbed.yaml", None, tiny_zoo,
        edges={"count": 2, "cache_capacity_mb": 8.0, "energy": {"meter": "estimated"},
               "nodes": [{"preload": ["diffusion-s"]}, {"preload": ["cgan-s"]}]},
        agents={"count": 3, "energy": {"meter": "estimated"}},
        tasks={"num_types": 3, "flops_per_cycle": 1.0},
        registry={"heartbeat_interval_s": 0.3, "missing_after_beats": 3},
        security={"grpc_tls": "on", "certs_dir": str(certs_dir)},
    )  # fmt: skip
    cfg = load_config(path, env={})
    run_dir = tmp / "run"
    run_dir.mkdir()
    with LiveBench(cfg, run_dir, write_config(run_dir, cfg), tiny_zoo) as bench:
        bench.start(PolicySource("greedy"))
        yield TlsBench(bench, certs_dir, tmp)


def _every_task_completes(bench: LiveBench, slots: range) -> None:
    records = [r for s in slots for r in bench.step(s).records]
    assert len(records) == 3 * len(slots)
    assert all(r.outcome is Outcome.COMPLETED for r in records), [r.reason for r in records]


def test_a_whole_bench_runs_its_slots_over_mutual_tls(tls: TlsBench) -> None:
    bench = tls.bench
    assert bench.grpc_identity.tls
    _every_task_completes(bench, range(0, 2))
    bench.load_policy(PolicySource("offload"))  # board -> edge over mTLS too
    records = [r for s in range(2, 4) for r in bench.step(s).records]
    assert all(r.outcome is Outcome.COMPLETED and r.edge_id for r in records)
    assert set(bench.node_states()) == {"cloud", "edge-0", "edge-1", "agent-0", "agent-1",
                                        "agent-2"}  # fmt: skip
    bench.load_policy(PolicySource("greedy"))


def _configure(channel: grpc.Channel) -> None:
    request = agent_pb2.ConfigureRequest(agent_id="agent-0", config_yaml="", run_id="x")
    agent_pb2_grpc.AgentServiceStub(channel).Configure(request, timeout=5)


def test_a_peer_without_a_certificate_is_refused(tls: TlsBench) -> None:
    for target in (tls.address("agent-0"), tls.address("edge-0"), tls.registry):
        with PLAINTEXT.channel(target) as channel, pytest.raises(grpc.RpcError) as err:
            _configure(channel)  # anyone could call Configure with an empty config
        assert err.value.code() is grpc.StatusCode.UNAVAILABLE  # no handshake, no call


def test_a_certificate_of_another_ca_is_refused(tls: TlsBench) -> None:
    impostor = tls.identity(COORDINATOR_ID, tls.foreign_dir)  # a "coordinator" of another CA
    channel = impostor.channel(tls.address("agent-0"), peer_id="agent-0")
    with channel, pytest.raises(grpc.RpcError) as err:
        _configure(channel)
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE


def test_an_agent_certificate_cannot_drive_a_board(tls: TlsBench) -> None:
    agent_1 = tls.identity("agent-1")
    with agent_1.channel(tls.address("agent-0"), peer_id="agent-0") as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        calls = {
            "LoadPolicy": lambda: stub.LoadPolicy(agent_pb2.LoadPolicyRequest(name="local"),
                                                  timeout=5),
            "Configure": lambda: _configure(channel),
            "Step": lambda: stub.Step(agent_pb2.StepRequest(slot=99), timeout=5),
        }  # fmt: skip
        for name, call in calls.items():
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED, name
            assert "coordinator only" in (err.value.details() or "")
        status = stub.Status(agent_pb2.StatusRequest(), timeout=5)  # open to every node
        assert status.agent_id == "agent-0"
    with agent_1.channel(tls.address("edge-0"), peer_id="edge-0") as channel:
        request = edge_pb2.ModelRequest()
        request.model.model_id = "ae-s"
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary(
                "/testbed.v1.EdgeService/EvictModel",
                request_serializer=edge_pb2.ModelRequest.SerializeToString,
            )(request, timeout=5)
        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED


def _register(identity: GrpcIdentity, registry: str, node_id: str, address: str) -> None:
    info = NodeInfo(node_id, NodeKind.AGENT, address)
    request = registry_pb2.RegisterNodeRequest(
        node=node_info_to_proto(info), heartbeat_interval_s=0.3
    )
    with identity.channel(registry, peer_id=COORDINATOR_ID) as channel:
        registry_pb2_grpc.RegistryStub(channel).RegisterNode(request, timeout=5)


def test_register_node_under_a_foreign_id_is_refused(tls: TlsBench) -> None:
    """Hostile case: anyone who reaches the registry re-registers agent-0 with their own
    address, and the coordinator sends that address agent-0's Configure, LoadPolicy, Step."""
    bench = tls.bench
    before = bench.table.get("agent-0")
    assert before is not None
    with pytest.raises(grpc.RpcError) as err:
        _register(tls.identity("agent-1"), tls.registry, "agent-0", "127.0.0.1:1")
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "agent-1's, not agent-0's" in (err.value.details() or "")
    # A second certificate for agent-0 (the same CA, another key): not the one agent-0
    # registered with, so refused too.
    second = tls.certs_dir.parent / "second-agent-0"
    certs.issue(tls.ca, second, "agent-0", Role.AGENT, ["127.0.0.1"])
    shutil.copy(tls.certs_dir / "ca.pem", second / "ca.pem")
    with pytest.raises(grpc.RpcError) as err:
        _register(tls.identity("agent-0", second), tls.registry, "agent-0", "127.0.0.1:1")
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    after = bench.table.get("agent-0")
    assert after is not None and after.session_id == before.session_id
    assert bench.agents["agent-0"].address == tls.address("agent-0")
    _every_task_completes(bench, range(10, 12))


def test_the_coordinator_reaches_only_the_board_it_means(tls: TlsBench) -> None:
    """Had a forged registration got through anyway, agent-0's address would be another's
    (coordinator/live.py `_on_register` follows the registry): agent-0's Configure would
    go there. The coordinator's channel to agent-0 accepts agent-0's certificate only (its
    id is checked, not the address), so agent-1 never sees it."""
    bench = tls.bench
    handle = bench.agents["agent-0"]
    handle.address, handle.needs_configure = tls.address("agent-1"), True
    result = bench.step(20)
    record = next(r for r in result.records if r.agent_id == "agent-0")
    assert record.outcome is Outcome.FAILED and "not configured" in record.detail
    assert "UNAVAILABLE" in record.detail and not result.steps["agent-0"].reachable
    handle.address, handle.needs_configure = tls.address("agent-0"), True  # back home
    _every_task_completes(bench, range(21, 23))


# ---------------------------------------------------------------------- one daemon


def _cloud(tmp: Path, zoo: Path, broker_url: str, security: dict, *extra: str) -> subprocess.Popen:
    config = tmp / "cloud.yaml"
    config.write_text(yaml.safe_dump({
        "zoo": {"scale": "tiny", "dir": str(zoo.parent)},
        "cloud": {"energy": {"meter": "estimated"}}, "security": security,
    }))  # fmt: skip
    ready = tmp / "ready.json"
    ready.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "cloud_node", "-c", str(config), "--broker", broker_url,
            "--ready-file", str(ready), "--zoo", str(zoo), *extra]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_daemon_refuses_plaintext_on_a_non_loopback_address(
    tmp_path: Path, tiny_zoo: Path
) -> None:
    with EmbeddedBroker.start(BrokerConfig(), tmp_path / "broker") as broker:
        refused = _cloud(tmp_path, tiny_zoo, broker.url, {"grpc_tls": "off"}, "--host", "0.0.0.0")
        out, _ = refused.communicate(timeout=60)
        assert refused.returncode == ExitCode.CONFIG_INVALID, out
        assert "plaintext on 0.0.0.0" in out and "security.insecure: true" in out
        allowed = _cloud(tmp_path, tiny_zoo, broker.url,
                         {"grpc_tls": "off", "insecure": True}, "--host", "0.0.0.0")  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not (tmp_path / "ready.json").exists():
                assert allowed.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        finally:
            allowed.terminate()
            out, _ = allowed.communicate(timeout=30)
        assert "INSECURE" in out
        missing = _cloud(tmp_path, tiny_zoo, broker.url,
                         {"grpc_tls": "on", "certs_dir": str(tmp_path / "none")})  # fmt: skip
        out, _ = missing.communicate(timeout=60)
        assert missing.returncode == ExitCode.CERTIFICATE_INVALID, out
        assert "testbed certs issue cloud" in out
