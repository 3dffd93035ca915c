"""`testbed lab up`: make the lab a `LabPlan` describes (docs/lab.md).

Order: checks (this machine can host a lab, no lab in the folder, no name or subnet
taken), then the folder and the client key, `lab.json` (saved again after each step),
the bridge, each host's namespace and veth, the shaping, each host's sshd, and last
`known_hosts` and `inventory.yaml`. Anything failing on the way tears down what was
made (coordinator/lab/down.py) before the error is reported.
"""

from __future__ import annotations

import datetime
import logging
import secrets
from pathlib import Path

from coordinator.lab import network, shaping, sshd
from coordinator.lab.down import teardown
from coordinator.lab.inventory_file import write_inventory
from coordinator.lab.plan import SSH_PORT, LabPlan
from coordinator.lab.preflight import check_can_host_lab
from coordinator.lab.state import INVENTORY_FILE, HostRecord, LabState, load_state
from testbed.exit_codes import ExitCode, TestbedExit

log = logging.getLogger(__name__)

CLIENT_KEY = "client_key"
KNOWN_HOSTS = "known_hosts"


def lab_up(plan: LabPlan, *, force: bool = False) -> LabState:
    """Bring the lab up; its state. ALREADY_EXISTS if a lab is up in the folder (with
    `force`, that one is torn down first) or a name or the subnet is taken."""
    check_can_host_lab()
    existing = load_state(plan.dir)
    if existing is not None:
        if not force:
            raise TestbedExit(ExitCode.ALREADY_EXISTS, f"a lab of {len(existing.hosts)} hosts "
                              f"is already up in {plan.dir}: `testbed lab down --dir "
                              f"{plan.dir}` first, or `lab up --force` to rebuild it")  # fmt: skip
        teardown(existing)
    _check_free(plan)
    state = _new_state(plan)
    try:
        _build(plan, state)
    except BaseException:
        log.warning("lab up failed: tearing down what was made")
        teardown(state)
        raise
    return state


def _check_free(plan: LabPlan) -> None:
    taken = network.names_taken(plan)
    if taken:
        raise TestbedExit(ExitCode.ALREADY_EXISTS, f"{', '.join(taken)} exist already (another "
                          "lab's: `testbed lab down --dir` of that lab removes them, `lab up "
                          "--name OTHER` makes a lab with other names)")  # fmt: skip
    overlap = [n for n in network.networks_in_use() if n.overlaps(plan.subnet)]
    if overlap:
        raise TestbedExit(ExitCode.ALREADY_EXISTS, f"subnet {plan.subnet} overlaps "
                          f"{', '.join(map(str, overlap))}, already on this machine: choose "
                          "another with --subnet")  # fmt: skip


def _new_state(plan: LabPlan) -> LabState:
    plan.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    hosts = []
    for host in plan.hosts:
        host_dir = plan.dir / "hosts" / host.name
        hosts.append(HostRecord(
            name=host.name, namespace=host.namespace, veth=host.veth, address=host.address,
            dir=str(host_dir), prefix=str(host_dir / "prefix"),
            sshd_config=str(host_dir / "sshd_config"),
        ))  # fmt: skip
    state = LabState(
        lab_name=plan.lab_name, token=secrets.token_hex(8), dir=str(plan.dir),
        created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        subnet=str(plan.subnet), bridge=plan.bridge, bridge_address=plan.bridge_address,
        client_key=str(plan.dir / CLIENT_KEY), known_hosts=str(plan.dir / KNOWN_HOSTS),
        inventory=str(plan.dir / INVENTORY_FILE), hosts=hosts,
    )  # fmt: skip
    state.save()  # before anything is made: a failed `up` is torn down from it
    return state


def _build(plan: LabPlan, state: LabState) -> None:
    state.shaping = shaping.plan_shaping(plan.rate_mbit, plan.delay_ms, plan.lab_name)
    state.save()
    network.make_bridge(plan, state.owner_alias)
    for host, record in zip(plan.hosts, state.hosts, strict=True):
        network.make_namespace(host)
        network.make_host_link(plan, host, state.owner_alias)
        record.qdiscs = shaping.shape_host(host, state.shaping)
        state.save()
    client_key = sshd.generate_key(Path(state.client_key), f"testbed-lab {plan.lab_name}")
    for record in state.hosts:
        host_dir = Path(record.dir)
        Path(record.prefix).mkdir(parents=True, exist_ok=True)
        config = sshd.write_config(host_dir, record.name, record.address, SSH_PORT, client_key)
        record.sshd = sshd.start_sshd(record.namespace, config).to_record()
        state.save()
    _write_known_hosts(state)
    write_inventory(state)
    state.save()


def _write_known_hosts(state: LabState) -> None:
    """Each host's address and host key, for an SSH client that checks host keys."""
    lines = []
    for record in state.hosts:
        key_type, key_data = sshd.public_key(Path(record.dir) / "ssh_host_ed25519_key").split()[:2]
        lines.append(f"{record.address} {key_type} {key_data}\n")
    Path(state.known_hosts).write_text("".join(lines))
