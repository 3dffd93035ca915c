"""The `security:` section of `testbed.yaml`: transport security of the bench's gRPC
calls (docs/security.md).

`grpc_tls: auto` is plaintext on a bench whose every address is loopback (the
embedded default: `make demo` as it always was) and mutual TLS as soon as one address
is not; the resolution is `testbed/security/credentials.py: grpc_tls_enabled`. Keys hold
paths only: certificates and private keys live in files under `certs_dir`
(`testbed certs init`, `testbed certs issue`), never in a config value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from testbed.schema import meta


class GrpcTls(enum.StrEnum):
    """Whether the bench's gRPC calls use mutual TLS."""

    AUTO = "auto"  # on unless every address of the bench is loopback
    ON = "on"  # mutual TLS with the bench CA's certificates, role checks on every call
    OFF = "off"  # plaintext (a daemon still refuses a non-loopback address unless insecure)


DEFAULT_CERTS_DIR = ".testbed/certs"


@dataclass(frozen=True)
class SecurityConfig:
    grpc_tls: GrpcTls = field(
        default=GrpcTls.AUTO,
        metadata=meta("Mutual TLS on gRPC: auto (on unless every address is loopback), on, off."),
    )
    insecure: bool = field(
        default=False,
        metadata=meta("Allow plaintext gRPC on a non-loopback address (a trusted network only)."),
    )
    certs_dir: str = field(
        default=DEFAULT_CERTS_DIR,
        metadata=meta("Folder of ca.pem and <node_id>.pem/.key (`testbed certs`).", path=True),
    )
