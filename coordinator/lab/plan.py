"""What a lab of N hosts is made of, before anything is made: the names of its
namespaces, veths and bridge, and the address of each (docs/lab.md).

Every kernel object of a lab carries the lab's name as a prefix, so that two labs
(a person's at the default `tb`, and the test fixture's, tests/lab_fixtures.py) never
share one: namespace `<lab>-host-<i>`, bridge `<lab>-br0`, the root side of host i's
veth `<lab>-h<i>` (its other end is `eth0` inside the namespace). Linux names a link
in at most 15 bytes, which bounds the lab name and the host count.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from testbed.exit_codes import ExitCode, TestbedExit

DEFAULT_SUBNET = "198.18.0.0/24"
"""RFC 2544's benchmarking block (198.18.0.0/15): never a real network."""
DEFAULT_LAB_NAME = "tb"
DEFAULT_LAB_DIR = ".testbed/lab"
LAB_NAME_PATTERN = r"[a-z][a-z0-9]{0,5}"
"""Short enough that `<lab>-h<999>` fits Linux's 15-byte link names."""
HOSTS_MAX = 250
"""`-h<i>` takes at most 4 bytes; a /24 holds 253 hosts beside the bridge."""
HOST_IN_NAMESPACE_LINK = "eth0"
SSH_PORT = 22


@dataclass(frozen=True)
class HostPlan:
    """One namespaced host of the lab."""

    name: str
    """`host-<i>`: the inventory's host name."""
    namespace: str
    veth: str
    """The root namespace's end of the host's veth pair (on the bridge)."""
    address: str
    """The host's IPv4 address (on `eth0` inside its namespace)."""


@dataclass(frozen=True)
class LabPlan:
    """The whole lab: folder, subnet, bridge and hosts; shaping asked for."""

    lab_name: str
    dir: Path
    subnet: ipaddress.IPv4Network
    bridge: str
    bridge_address: str
    """The coordinator's address on the lab (the bridge's, in the root namespace)."""
    hosts: tuple[HostPlan, ...]
    rate_mbit: float | None = None
    delay_ms: float | None = None

    @property
    def prefixlen(self) -> int:
        return self.subnet.prefixlen


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """An IPv4 network (`198.18.0.0/24`); a usage error otherwise."""
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise TestbedExit(ExitCode.USAGE, f"--subnet: {exc}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise TestbedExit(ExitCode.USAGE, f"--subnet: {text} is not an IPv4 network")
    return net


def make_plan(
    hosts_count: int,
    lab_dir: str | Path = DEFAULT_LAB_DIR,
    subnet: str = DEFAULT_SUBNET,
    *,
    lab_name: str = DEFAULT_LAB_NAME,
    rate_mbit: float | None = None,
    delay_ms: float | None = None,
) -> LabPlan:
    """The plan of a lab of `hosts_count` hosts; USAGE if it cannot be made as asked."""
    if not re.fullmatch(LAB_NAME_PATTERN, lab_name):
        raise TestbedExit(ExitCode.USAGE, f"--name: expected {LAB_NAME_PATTERN}, got {lab_name!r}")
    if not 1 <= hosts_count <= HOSTS_MAX:
        raise TestbedExit(ExitCode.USAGE, f"--hosts: expected 1..{HOSTS_MAX}, got {hosts_count}")
    net = parse_subnet(subnet)
    usable = list(_first_hosts(net, hosts_count + 1))
    if len(usable) < hosts_count + 1:
        raise TestbedExit(ExitCode.USAGE, f"--subnet: {net} has too few addresses for the "
                          f"bridge and {hosts_count} hosts")  # fmt: skip
    hosts = tuple(
        HostPlan(
            name=f"host-{i}",
            namespace=f"{lab_name}-host-{i}",
            veth=f"{lab_name}-h{i}",
            address=str(usable[i]),
        )
        for i in range(1, hosts_count + 1)
    )
    return LabPlan(
        lab_name=lab_name,
        dir=Path(lab_dir).absolute(),
        subnet=net,
        bridge=f"{lab_name}-br0",
        bridge_address=str(usable[0]),
        hosts=hosts,
        rate_mbit=rate_mbit,
        delay_ms=delay_ms,
    )


def _first_hosts(net: ipaddress.IPv4Network, count: int) -> list[ipaddress.IPv4Address]:
    found = []
    for address in net.hosts():  # a generator: a /8 is not listed whole
        found.append(address)
        if len(found) == count:
            break
    return found
