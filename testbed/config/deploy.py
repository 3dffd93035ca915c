"""The `deploy:` section of `testbed.yaml`: how `testbed deploy` installs the bench's
daemons on the hosts of the inventory (docs/deploy.md).

Where the artifacts are cached on the coordinator, which SSH host keys are trusted,
the standalone interpreter for boards whose own Python is too old, and the bounds deploy
holds the hosts to (clock skew, time to answer health checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from testbed.config.limits import TIMEOUT_MAX_S, TIMEOUT_MIN_S
from testbed.schema import meta

DEFAULT_BASE_PORT = 50500
"""First of the deterministic default ports: the cloud's (docs/deploy.md, "Ports")."""


@dataclass(frozen=True)
class DeployConfig:
    """How `testbed deploy` reaches and installs the hosts."""

    cache_dir: str = field(
        default=".testbed/deploy",
        metadata=meta("Coordinator-side cache of the project wheel and wheelhouses.", path=True),
    )
    wheel: str = field(
        default="",
        metadata=meta(
            "A built aigc-testbed wheel to install (a release); '': built from this "
            "checkout's sources (cached until they change).",
            path=True,
        ),
    )
    wheelhouse: str = field(
        default="",
        metadata=meta(
            "A folder of dependency wheels to install from instead of `pip download` "
            "(an offline coordinator); '': download them once into cache_dir.",
            path=True,
        ),
    )
    python_dist: str = field(
        default="",
        metadata=meta(
            "python-build-standalone `install_only` tar.gz for hosts whose Python is "
            "older than 3.11 (copied and unpacked under the prefix); '': none.",
            path=True,
        ),
    )
    known_hosts: str = field(
        default=".testbed/known_hosts",
        metadata=meta("OpenSSH known_hosts file of the hosts' SSH keys.", path=True),
    )
    trust_new_hosts: bool = field(
        default=True,
        metadata=meta("Record an unknown host's key on first contact (a changed key: refused)."),
    )
    connect_timeout_s: float = field(
        default=10.0,
        metadata=meta("SSH connection timeout per host.", ge=TIMEOUT_MIN_S, le=TIMEOUT_MAX_S),
    )
    max_clock_skew_s: float = field(
        default=5.0,
        metadata=meta("A host's clock may differ from the coordinator's by this much.",
                      ge=0.001, le=TIMEOUT_MAX_S),
    )  # fmt: skip
    health_timeout_s: float = field(
        default=90.0,
        metadata=meta("Longest wait for a started daemon's gRPC health check to answer "
                      "SERVING.", ge=TIMEOUT_MIN_S, le=TIMEOUT_MAX_S),
    )  # fmt: skip
    stop_timeout_s: float = field(
        default=15.0,
        metadata=meta("SIGTERM to SIGKILL when a daemon is stopped.", ge=1, le=3600),
    )
    restart_delay_s: float = field(
        default=2.0,
        metadata=meta("First delay before a failed daemon is restarted (doubles, up to 30 s).",
                      ge=0.1, le=3600),
    )  # fmt: skip
    base_port: int = field(
        default=DEFAULT_BASE_PORT,
        metadata=meta("Default ports of nodes without one: the cloud base_port, edge i "
                      "base_port+1+i, agent i base_port+500+i.", ge=1024, le=63000),
    )  # fmt: skip
