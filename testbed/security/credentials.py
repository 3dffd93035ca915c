"""The one place every daemon and client gets its gRPC credentials from (docs/security.md).

`GrpcIdentity.of(cfg, node_id)` is one node's side of it: whether the bench's gRPC is
mutual TLS (`security.grpc_tls`, `auto` resolved by `grpc_tls_enabled`) and where the
node's files are (`security.certs_dir`: `ca.pem`, `<node_id>.pem`, `<node_id>.key`).
Servers listen with `add_port` and `interceptors` (testbed/daemon.py `GrpcServer`);
clients open `channel`/`aio_channel`. `server_credentials(cfg, node_id)`,
`channel(address, cfg, node_id)` and `aio_channel(...)` are the same for one call.

With TLS a client names the node it means to reach (`peer_id`): the server must then
present that node's certificate (its id is a DNS SAN of it, and grpc checks the
certificate against that name instead of the address), so an address that changed
hands, or a registration someone forged, reaches nobody else. Without TLS everything
is the plain channel and port of before; a server still refuses to listen in
plaintext on an address other machines reach unless `security.insecure` says so.

Reads PEM files only: no `cryptography` here (a board does not install it).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from testbed.config import GrpcTls, TestbedConfig
from testbed.config.security import DEFAULT_CERTS_DIR
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.security.roles import COORDINATOR_ID, RoleInterceptor

log = logging.getLogger(__name__)

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
TARGET_NAME_OPTION = "grpc.ssl_target_name_override"

ChannelOptions = Sequence[tuple[str, Any]]


def cert_path(certs_dir: Path | str, node_id: str) -> Path:
    return Path(certs_dir) / f"{node_id}.pem"


def key_path(certs_dir: Path | str, node_id: str) -> Path:
    return Path(certs_dir) / f"{node_id}.key"


def ca_cert_path(certs_dir: Path | str) -> Path:
    return Path(certs_dir) / CA_CERT_FILE


# ---------------------------------------------------------------------- tls: auto


def host_of(address: str) -> str:
    """The host of `HOST:PORT`, `[V6]:PORT`, or of a bare host or IPv6 address."""
    if address.startswith("["):
        return address[1:].partition("]")[0]
    return address.partition(":")[0] if address.count(":") == 1 else address


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is this machine's loopback only. Other
    names count as reachable from elsewhere: they are not resolved here."""
    name = host.strip().lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def bench_hosts(cfg: TestbedConfig) -> list[str]:
    """Every address of the bench's gRPC: the inventory's hosts, the registry's listen
    and advertised addresses, the hosts the cloud, the edges and the agents listen on."""
    hosts = [h.address for h in cfg.inventory.hosts]
    hosts += [host_of(a) for a in (cfg.registry.listen, cfg.registry.advertise) if a]
    hosts += [cfg.cloud.host, *(s.host for s in cfg.edge_specs())]
    hosts += [s.host for s in cfg.agent_specs()]
    return hosts


def grpc_tls_enabled(cfg: TestbedConfig) -> bool:
    """`security.grpc_tls` resolved: `auto` is on unless every bench address is loopback."""
    if cfg.security.grpc_tls is GrpcTls.AUTO:
        return not all(is_loopback(h) for h in bench_hosts(cfg))
    return cfg.security.grpc_tls is GrpcTls.ON


def plaintext_warning(cfg: TestbedConfig) -> str | None:
    """What `testbed up` and `config check` warn of when the bench's gRPC is plaintext
    on addresses other machines reach (`grpc_tls: off`); None otherwise."""
    exposed = sorted({h for h in bench_hosts(cfg) if not is_loopback(h)})
    if grpc_tls_enabled(cfg) or not exposed:
        return None
    allowed = (
        "security.insecure is true"
        if cfg.security.insecure
        else ("the daemons will refuse to listen there unless security.insecure: true")
    )
    return (f"gRPC is plaintext (security.grpc_tls: off) on {', '.join(exposed)}: anyone on "
            f"that network can call and impersonate the nodes; {allowed}. Set "
            "security.grpc_tls: on (docs/security.md)")  # fmt: skip


# ---------------------------------------------------------------------- one node


@dataclass(frozen=True)
class GrpcIdentity:
    """One node's gRPC transport: mutual TLS with its own certificate, or plaintext."""

    node_id: str
    tls: bool
    certs_dir: Path = Path(DEFAULT_CERTS_DIR)
    insecure: bool = False
    """Plaintext on a non-loopback address is allowed (`security.insecure`)."""

    @classmethod
    def of(cls, cfg: TestbedConfig, node_id: str) -> GrpcIdentity:
        security = cfg.security
        return cls(node_id, grpc_tls_enabled(cfg), Path(security.certs_dir), security.insecure)

    # ------------------------------------------------------------------ servers

    def check_listen(self, host: str) -> None:
        """CONFIG_INVALID for plaintext on an address other machines reach, unless
        `security.insecure` allows it (then a warning)."""
        if self.tls or is_loopback(host):
            return
        where = f"{self.node_id or 'this node'} would serve gRPC in plaintext on {host}"
        if not self.insecure:
            raise TestbedExit(
                ExitCode.CONFIG_INVALID,
                f"security.grpc_tls: {where}, which is not a loopback address: anyone on that "
                "network could call it. Set security.grpc_tls: on (certificates: `testbed "
                "certs init` and `testbed certs issue --all`), listen on 127.0.0.1, or set "
                "security.insecure: true to allow plaintext on a network you trust",
            )
        log.warning(
            "INSECURE: %s (security.insecure: true): anyone who reaches it can call it, "
            "read and forge its traffic. Set security.grpc_tls: on for a real bench", where
        )  # fmt: skip

    def interceptors(self) -> list[grpc.ServerInterceptor]:
        """The role checks of testbed/security/roles.py (with TLS; none without)."""
        return [RoleInterceptor()] if self.tls else []

    def add_port(self, server: grpc.Server, address: str) -> int:
        """Listen on `address` (HOST:PORT) with this node's credentials; the port."""
        if not self.tls:
            return int(server.add_insecure_port(address))
        return int(server.add_secure_port(address, self.server_credentials()))

    def server_credentials(self) -> grpc.ServerCredentials:
        """mTLS: this node's certificate, clients must present one of the CA's."""
        if not self.tls:
            return grpc.insecure_server_credentials()
        ca, cert, key = self._pem()
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=True
        )

    # ------------------------------------------------------------------ clients

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """mTLS: the CA to check servers against, this node's certificate to show."""
        ca, cert, key = self._pem()
        return grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )

    def channel(
        self, address: str, *, peer_id: str | None = None, options: ChannelOptions = ()
    ) -> grpc.Channel:
        """A channel to `address`; with TLS it reaches only the node `peer_id`."""
        if not self.tls:
            return grpc.insecure_channel(address, options=list(options))
        return grpc.secure_channel(
            address, self.channel_credentials(), options=_with_peer(options, peer_id)
        )

    def aio_channel(
        self, address: str, *, peer_id: str | None = None, options: ChannelOptions = ()
    ) -> grpc.aio.Channel:
        """`channel` for asyncio."""
        if not self.tls:
            return grpc.aio.insecure_channel(address, options=list(options))
        return grpc.aio.secure_channel(
            address, self.channel_credentials(), options=_with_peer(options, peer_id)
        )

    # ------------------------------------------------------------------ files

    def _pem(self) -> tuple[bytes, bytes, bytes]:
        """The CA certificate, this node's certificate and key, read now (a renewed
        certificate is used by the next channel)."""
        paths = (ca_cert_path(self.certs_dir), cert_path(self.certs_dir, self.node_id),
                 key_path(self.certs_dir, self.node_id))  # fmt: skip
        try:
            return paths[0].read_bytes(), paths[1].read_bytes(), paths[2].read_bytes()
        except OSError as exc:
            raise TestbedExit(
                ExitCode.CERTIFICATE_INVALID,
                f"{self.node_id}: gRPC is mutual TLS (security.grpc_tls) and "
                f"{exc.filename} cannot be read ({exc.strerror}). Make the files with "
                f"`testbed certs init` and `testbed certs issue {self.node_id}` "
                f"(security.certs_dir: {self.certs_dir}); on a host, `testbed deploy` "
                "copies them",
            ) from None


PLAINTEXT = GrpcIdentity("", tls=False)
"""Plaintext channels, as before TLS: for tests, benchmarks and tools of one machine."""


def _with_peer(options: ChannelOptions, peer_id: str | None) -> list[tuple[str, Any]]:
    out = [o for o in options if o[0] != TARGET_NAME_OPTION]
    return [*out, (TARGET_NAME_OPTION, peer_id)] if peer_id else out


def coordinator_identity(cfg: TestbedConfig) -> GrpcIdentity:
    """The coordinator's side: its registry, its calls to boards and edges."""
    return GrpcIdentity.of(cfg, COORDINATOR_ID)


def server_credentials(cfg: TestbedConfig, node_id: str) -> grpc.ServerCredentials:
    """Node `node_id`'s server credentials: mTLS when TLS is on, else insecure."""
    return GrpcIdentity.of(cfg, node_id).server_credentials()


def channel(
    address: str, cfg: TestbedConfig, node_id: str, *, peer_id: str | None = None,
    options: ChannelOptions = (),
) -> grpc.Channel:  # fmt: skip
    """Node `node_id`'s channel to `address` (the node `peer_id` with TLS)."""
    return GrpcIdentity.of(cfg, node_id).channel(address, peer_id=peer_id, options=options)


def aio_channel(
    address: str, cfg: TestbedConfig, node_id: str, *, peer_id: str | None = None,
    options: ChannelOptions = (),
) -> grpc.aio.Channel:  # fmt: skip
    """`channel` for asyncio."""
    return GrpcIdentity.of(cfg, node_id).aio_channel(address, peer_id=peer_id, options=options)
