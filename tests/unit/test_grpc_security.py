"""gRPC transport security without daemons: when `grpc_tls: auto` turns TLS on, the
refusal of plaintext on a non-loopback address, who a peer is and what it may call
(testbed/security/credentials.py, roles.py), and a server and client in one process."""

from __future__ import annotations

import logging
import subprocess
import sys
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from testbed.config import config_from_dict
from testbed.daemon import GrpcServer
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.security import certs
from testbed.security.credentials import (
    GrpcIdentity,
    bench_hosts,
    grpc_tls_enabled,
    host_of,
    is_loopback,
    plaintext_warning,
)
from testbed.security.roles import (
    PeerIdentity,
    Role,
    identity_of,
    peer_identity,
    peer_mismatch,
    refusal,
)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("localhost", True),
     ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("198.18.0.2", False),
     ("gpu1", False), ("", False)],
)  # fmt: skip
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_host_of_an_address() -> None:
    assert host_of("10.0.0.1:50051") == "10.0.0.1"
    assert host_of("[::1]:50051") == "::1"
    assert host_of("gpu1") == "gpu1" and host_of("::1") == "::1"


@pytest.mark.parametrize(
    ("sections", "tls"),
    [({}, False),
     ({"security": {"grpc_tls": "on"}}, True),
     ({"security": {"grpc_tls": "off"}, "edges": {"nodes": [{"host": "10.0.0.5"}]}}, False),
     ({"edges": {"nodes": [{"host": "10.0.0.5"}]}}, True),
     ({"agents": {"nodes": [{"host": "0.0.0.0"}]}}, True),
     ({"cloud": {"host": "localhost"}}, False),
     ({"registry": {"listen": "0.0.0.0:50051"}}, True),
     ({"registry": {"advertise": "198.18.0.1:50051"}}, True),
     ({"inventory": {"hosts": [{"name": "host-1", "address": "198.18.0.2",
                                "nodes": ["cloud", "edge-0", "agent-0"]}]}}, True),
     ({"inventory": {"hosts": [{"name": "host-1", "address": "127.0.0.1",
                                "nodes": ["cloud", "edge-0", "agent-0"]}]}}, False)],
)  # fmt: skip
def test_auto_is_tls_unless_every_bench_address_is_loopback(
    sections: dict[str, Any], tls: bool
) -> None:
    cfg = config_from_dict({"edges": {"count": 1}, "agents": {"count": 1}, **sections})
    assert grpc_tls_enabled(cfg) is tls, bench_hosts(cfg)


def test_the_default_bench_is_plaintext_as_before() -> None:
    cfg = config_from_dict({})
    identity = GrpcIdentity.of(cfg, "edge-0")
    assert not identity.tls and identity.interceptors() == []
    assert identity.certs_dir == Path(".testbed/certs")


def test_plaintext_on_a_non_loopback_address_is_refused_unless_insecure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plain = GrpcIdentity("edge-0", tls=False)
    with pytest.raises(TestbedExit) as err:
        GrpcServer("0.0.0.0", 0, [], identity=plain)
    assert err.value.code is ExitCode.CONFIG_INVALID
    assert (
        "security.grpc_tls" in err.value.message and "security.insecure: true" in err.value.message
    )
    plain.check_listen("127.0.0.1")  # loopback: plaintext as always
    GrpcServer("127.0.0.1", 0, [], identity=plain).stop(0)
    allowed = GrpcIdentity("edge-0", tls=False, insecure=True)
    with caplog.at_level(logging.WARNING):
        server = GrpcServer("0.0.0.0", 0, [], identity=allowed)
    server.stop(0)
    assert any("INSECURE" in r.message and "0.0.0.0" in r.message for r in caplog.records)


def test_tls_without_certificate_files_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(TestbedExit) as err:
        GrpcServer(
            "127.0.0.1", 0, [], identity=GrpcIdentity("edge-0", tls=True, certs_dir=tmp_path)
        )
    assert err.value.code is ExitCode.CERTIFICATE_INVALID
    assert "testbed certs issue edge-0" in err.value.message


# ---------------------------------------------------------------------- who may call what


def _auth(node: str, role: str, cn: str | None = None) -> dict[str, list[bytes]]:
    return {
        "transport_security_type": [b"ssl"],
        "x509_common_name": [(cn or node).encode()],
        "x509_subject_alternative_name": [
            f"urn:testbed:node:{node}".encode(), f"urn:testbed:role:{role}".encode(),
            node.encode(), b"127.0.0.1",
        ],
        "x509_pem_cert": [b"-----BEGIN CERTIFICATE-----..."],
    }  # fmt: skip


def test_a_peer_is_the_node_its_certificate_names() -> None:
    peer = identity_of(_auth("agent-0", "agent"))
    assert peer is not None and peer.node_id == "agent-0" and peer.role is Role.AGENT
    assert len(peer.certificate_sha256) == 64
    assert identity_of({}) is None  # plaintext: nobody
    assert identity_of({"transport_security_type": [b"insecure"]}) is None
    assert identity_of(_auth("agent-0", "emperor")) is None  # not a role
    assert identity_of(_auth("agent-0", "agent", cn="agent-1")) is None  # CN and URI differ


def test_who_may_call_what() -> None:
    coordinator = PeerIdentity("coordinator", Role.COORDINATOR, "")
    agent = PeerIdentity("agent-1", Role.AGENT, "")
    edge = PeerIdentity("edge-0", Role.EDGE, "")
    for method in ("Configure", "LoadPolicy", "Step"):
        assert refusal(f"/testbed.v1.AgentService/{method}", coordinator) is None
        assert "coordinator only" in (refusal(f"/testbed.v1.AgentService/{method}", agent) or "")
    assert refusal("/testbed.v1.AgentService/Status", agent) is None
    assert refusal("/testbed.v1.EdgeService/PrefetchModel", agent) is not None
    assert refusal("/testbed.v1.EdgeService/EvictModel", edge) is not None
    assert refusal("/testbed.v1.EdgeService/SubmitTask", agent) is None
    assert refusal("/testbed.v1.EdgeService/SubmitTask", edge) is not None
    assert refusal("/testbed.v1.Registry/RegisterNode", edge) is None
    assert refusal("/testbed.v1.Registry/RegisterNode", None) is not None
    assert refusal("/grpc.health.v1.Health/Check", None) is None


def test_a_node_registers_under_its_own_id_and_role_only() -> None:
    agent = PeerIdentity("agent-1", Role.AGENT, "")
    assert peer_mismatch(agent, "agent-1", "agent") is None
    assert "agent-1's, not agent-0's" in (peer_mismatch(agent, "agent-0", "agent") or "")
    assert "role agent, not edge" in (peer_mismatch(agent, "agent-1", "edge") or "")
    assert peer_mismatch(None, "agent-0", "agent") is None  # no TLS: as before


# ---------------------------------------------------------------------- one process


def test_a_tls_server_knows_its_peer_and_checks_the_role(tmp_path: Path) -> None:
    ca = certs.create_ca(tmp_path)
    for node_id, role in (("coordinator", Role.COORDINATOR), ("agent-0", Role.AGENT),
                          ("agent-1", Role.AGENT)):  # fmt: skip
        certs.issue(ca, tmp_path, node_id, role, ["127.0.0.1"])
    seen: list[PeerIdentity | None] = []

    def status(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen.append(peer_identity(context))
        return request

    handler = grpc.method_handlers_generic_handler(
        "testbed.v1.AgentService",
        {m: grpc.unary_unary_rpc_method_handler(status) for m in ("Status", "Configure")},
    )
    server_identity = GrpcIdentity("agent-0", tls=True, certs_dir=tmp_path)
    server = grpc.server(futures.ThreadPoolExecutor(2), interceptors=server_identity.interceptors())
    server.add_generic_rpc_handlers((handler,))
    address = f"127.0.0.1:{server_identity.add_port(server, '127.0.0.1:0')}"
    server.start()
    try:
        coordinator = GrpcIdentity("coordinator", tls=True, certs_dir=tmp_path)
        with coordinator.channel(address, peer_id="agent-0") as channel:
            assert channel.unary_unary("/testbed.v1.AgentService/Configure")(b"x", timeout=5)
        assert seen[-1] is not None and seen[-1].node_id == "coordinator"
        agent = GrpcIdentity("agent-1", tls=True, certs_dir=tmp_path)
        with agent.channel(address, peer_id="agent-0") as channel:
            assert channel.unary_unary("/testbed.v1.AgentService/Status")(b"x", timeout=5)
            with pytest.raises(grpc.RpcError) as err:
                channel.unary_unary("/testbed.v1.AgentService/Configure")(b"x", timeout=5)
        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert seen[-1] is not None and seen[-1].node_id == "agent-1"
        wrong = coordinator.channel(address, peer_id="agent-1")  # agent-1 is not there
        with wrong, pytest.raises(grpc.RpcError) as err:
            wrong.unary_unary("/testbed.v1.AgentService/Status")(b"x", timeout=5)
        assert err.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(0)


def test_a_board_never_loads_cryptography() -> None:
    """Boards install no `cryptography` (the coordinator extra): the daemons read PEM
    files only, testbed/security/certs.py is the coordinator's."""
    code = (
        "import sys, agent_node.__main__, edge_node.__main__, cloud_node.__main__\n"
        "assert 'cryptography' not in sys.modules, 'a node imported cryptography'\n"
        "assert 'testbed.security.certs' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_plaintext_on_a_network_is_a_bench_warning() -> None:
    exposed = {"security": {"grpc_tls": "off"}, "edges": {"nodes": [{"host": "10.0.0.5"}]}}
    warning = plaintext_warning(config_from_dict(exposed))
    assert warning is not None and "10.0.0.5" in warning and "refuse" in warning
    assert plaintext_warning(config_from_dict({})) is None  # loopback: as before
    assert plaintext_warning(config_from_dict({**exposed, "security": {}})) is None  # auto: TLS
