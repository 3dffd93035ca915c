"""`testbed lab status`: the lab's hosts, their addresses, whether each one's sshd
answers (a TCP connect to port 22 that gets an SSH greeting) and the shaping applied
(docs/lab.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coordinator.lab import network, sshd
from coordinator.lab.plan import SSH_PORT
from coordinator.lab.state import LabState, load_state


def lab_status(lab_dir: str | Path) -> dict[str, Any] | None:
    """What `lab status --json` prints; None if no lab is recorded in `lab_dir`."""
    state = load_state(lab_dir)
    return None if state is None else state_status(state)


def state_status(state: LabState) -> dict[str, Any]:
    existing = network.namespaces()
    hosts = []
    for host in state.hosts:
        running = sshd.own_sshd(host.sshd) is not None
        hosts.append({
            "name": host.name, "address": host.address, "namespace": host.namespace,
            "namespace_exists": host.namespace in existing,
            "sshd_pid": host.sshd["pid"] if host.sshd else None,
            "sshd_running": running,
            "ssh_answers": running and sshd.answers(host.address, SSH_PORT),
            "qdiscs": [{"dev": q.dev, "netns": q.netns, "kinds": q.kinds} for q in host.qdiscs],
        })  # fmt: skip
    return {
        "running": True,
        "lab_dir": state.dir,
        "lab_name": state.lab_name,
        "subnet": state.subnet,
        "bridge": state.bridge,
        "bridge_exists": network.link_alias(state.bridge) == state.owner_alias,
        "coordinator_address": state.bridge_address,
        "client_key": state.client_key,
        "known_hosts": state.known_hosts,
        "inventory": state.inventory,
        "shaping": state.shaping,
        "hosts": hosts,
        "all_up": bool(hosts) and all(h["ssh_answers"] for h in hosts),
    }


def format_status(status: dict[str, Any]) -> str:
    """`status` for people: one line per host, then the shaping."""
    state = "all hosts up" if status["all_up"] else "NOT all hosts up"
    lines = [f"lab {status['lab_name']} in {status['lab_dir']}: {state}",
             f"  coordinator {status['coordinator_address']} on {status['bridge']}, "
             f"subnet {status['subnet']}"]  # fmt: skip
    for host in status["hosts"]:
        ssh = (
            "ssh answers"
            if host["ssh_answers"]
            else ("ssh NOT answering" if host["sshd_running"] else "sshd not running")
        )
        lines.append(f"  {host['name']:<10} {host['address']:<15} {ssh}")
    lines.append(f"  shaping: {status['shaping'].summary}")
    lines.append(f"  inventory: {status['inventory']}")
    return "\n".join(lines)
