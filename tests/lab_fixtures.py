"""`lab_hosts` / `module_lab_hosts`: namespaced hosts with their own sshd, for tests
that deploy or run nodes over SSH (docs/lab.md).

    def test_something(lab_hosts):
        lab = lab_hosts(2)                      # two hosts, up; torn down after the test
        host = lab.hosts[0]                     # a testbed.config.inventory.HostConfig
        asyncssh.connect(host.address, username=host.user, client_keys=[lab.client_key],
                         known_hosts=str(lab.known_hosts))
        lab.coordinator_address                 # where the hosts reach this machine

`lab_hosts(n, rate_mbit=None, delay_ms=None)` may be called more than once in a test
(each call is its own lab). `module_lab_hosts` is the same factory, its labs kept for
the whole test module (deploy once, test many times). Each lab gets its own name
(kernel objects `<name>-host-1`, `<name>-br0`, ...) and its own /24 of the RFC 2544
block 198.18.0.0/15, picked under a file lock, so labs of tests run at the same time
never collide; 198.18.0.0/24 is left to `testbed lab up`'s default.

It skips with the reason when this machine cannot host a lab: not root, no Linux
network namespaces (`ip netns` fails), no /usr/sbin/sshd (coordinator/lab/preflight.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coordinator.lab import LabState, check_can_host_lab, lab_inventory, lab_up, make_plan, teardown
from coordinator.lab.network import names_taken, networks_in_use
from testbed.config.inventory import HostConfig
from testbed.exit_codes import TestbedExit

_ALLOCATION_LOCK = Path("/tmp/testbed-lab-fixture.lock")
_BLOCK = ipaddress.IPv4Network("198.18.0.0/15")
_CLI_DEFAULT = ipaddress.IPv4Network("198.18.0.0/24")


@dataclass(frozen=True)
class LabHosts:
    """A lab that is up: its inventory and where its pieces are."""

    dir: Path
    inventory_file: Path
    """`inventory.yaml`: the `hosts:` list of testbed/config/inventory.py."""
    hosts: list[HostConfig]
    """One per host, `host-1`...`host-N`: address, ssh_port 22, user root, key, python,
    prefix, manager `process`; `nodes` empty (fill them in)."""
    client_key: Path
    """The private key every host's sshd accepts (for root)."""
    known_hosts: Path
    """Each host's address and host key (for an SSH client that checks host keys)."""
    coordinator_address: str
    """This machine's address on the lab (the bridge's): where hosts reach the
    coordinator, the broker and the registry."""
    state: LabState

    def host(self, name: str) -> HostConfig:
        return next(h for h in self.hosts if h.name == name)

    def namespace(self, name: str) -> str:
        """The network namespace of host `name`."""
        return next(h.namespace for h in self.state.hosts if h.name == name)

    def in_host(self, name: str, *argv: str) -> list[str]:
        """`argv` run inside host `name`'s namespace (`ip netns exec NS argv...`)."""
        return ["ip", "netns", "exec", self.namespace(name), *argv]


LabFactory = Callable[..., LabHosts]
"""`factory(n, rate_mbit=None, delay_ms=None) -> LabHosts`."""


def skip_unless_lab_possible() -> None:
    """Skip the test, with the reason, where this machine cannot host a lab."""
    try:
        check_can_host_lab()
    except TestbedExit as exc:
        pytest.skip(f"no lab on this machine: {exc.message}")


def _free_subnet() -> ipaddress.IPv4Network:
    in_use = networks_in_use()
    candidates = [n for n in _BLOCK.subnets(new_prefix=24) if n != _CLI_DEFAULT]
    start = secrets.randbelow(len(candidates))  # spread: labs of crashed runs stay apart
    for net in candidates[start:] + candidates[:start]:
        if not any(net.overlaps(used) for used in in_use):
            return net
    raise RuntimeError(f"no free /24 left in {_BLOCK}")


@contextlib.contextmanager
def free_lab_name_and_subnet() -> Iterator[tuple[str, str]]:
    """A lab name and a /24 no lab uses, kept free (a file lock) until the block ends:
    bring the lab up inside it."""
    with _ALLOCATION_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        while True:
            lab_name = "t" + secrets.token_hex(2)
            subnet = str(_free_subnet())
            if not names_taken(make_plan(1, Path("/nonexistent"), subnet, lab_name=lab_name)):
                break
        yield lab_name, subnet


def start_lab(root: Path, hosts: int, *, rate_mbit: float | None = None,
              delay_ms: float | None = None) -> LabHosts:  # fmt: skip
    """Bring a lab of `hosts` hosts up in a new folder under `root` (skipping the
    test where no lab can be made). Tear it down with `teardown(lab.state)`."""
    skip_unless_lab_possible()
    with free_lab_name_and_subnet() as (lab_name, subnet):
        plan = make_plan(hosts, root / lab_name, subnet, lab_name=lab_name,
                         rate_mbit=rate_mbit, delay_ms=delay_ms)  # fmt: skip
        state = lab_up(plan)
    return LabHosts(
        dir=plan.dir, inventory_file=Path(state.inventory),
        hosts=lab_inventory(state).hosts, client_key=Path(state.client_key),
        known_hosts=Path(state.known_hosts), coordinator_address=state.bridge_address,
        state=state,
    )  # fmt: skip


@contextlib.contextmanager
def _labs(root: Path) -> Iterator[LabFactory]:
    made: list[LabHosts] = []

    def factory(hosts: int, *, rate_mbit: float | None = None,
                delay_ms: float | None = None) -> LabHosts:  # fmt: skip
        lab = start_lab(root, hosts, rate_mbit=rate_mbit, delay_ms=delay_ms)
        made.append(lab)
        return lab

    try:
        yield factory
    finally:
        left = [n for lab in reversed(made) for n in teardown(lab.state).not_removed]
        assert not left, f"the lab fixture could not remove {', '.join(left)}"


@pytest.fixture
def lab_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFactory]:
    """`lab_hosts(n, rate_mbit=None, delay_ms=None) -> LabHosts`: a lab of n hosts, up
    until the test ends."""
    with _labs(tmp_path_factory.mktemp("lab")) as factory:
        yield factory


@pytest.fixture(scope="module")
def module_lab_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFactory]:
    """As `lab_hosts`, its labs kept until the test module ends."""
    with _labs(tmp_path_factory.mktemp("lab")) as factory:
        yield factory
