"""`testbed lab down`: remove everything `lab up` made, as `lab.json` records it
(docs/lab.md). Safe to run twice, and on a lab whose `up` failed half-way.

Order: each host's sshd (only while its PID still is that sshd:
coordinator/lab/sshd.py), then whatever else still runs in the host's namespace (the
daemons a deploy started there: the namespace is the lab's, so is what runs in it),
the qdiscs, the veths, the namespaces, the bridge, and last the lab's files.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from coordinator.lab import network, shaping, sshd
from coordinator.lab.preflight import check_can_host_lab
from coordinator.lab.state import HostRecord, LabState, load_state


@dataclass
class DownReport:
    """What `down` removed, and what it left alone (someone else's) and why."""

    lab_dir: str
    sshds_stopped: int = 0
    other_processes_stopped: int = 0
    namespaces_deleted: list[str] = field(default_factory=list)
    links_deleted: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)
    not_removed: list[str] = field(default_factory=list)
    """The lab's own objects still there after `down` (then `lab.json` is kept, so
    that `down` can be run again)."""


def lab_down(lab_dir: str | Path) -> DownReport | None:
    """Tear down the lab recorded in `lab_dir`; None if there is none (a no-op)."""
    state = load_state(lab_dir)
    if state is None:
        return None
    check_can_host_lab()  # as another user every deletion would fail, and lab.json be lost
    return teardown(state)


def teardown(state: LabState) -> DownReport:
    report = DownReport(lab_dir=state.dir)
    owned = [h for h in state.hosts if network.owns_namespace(h.namespace, state.owner_alias)]
    _stop_sshds(state, report)
    _stop_the_rest(owned, report)
    for host in state.hosts:
        for qdisc in host.qdiscs:
            in_owned = qdisc.netns is None or any(h.namespace == qdisc.netns for h in owned)
            if in_owned and network.link_alias(qdisc.dev, qdisc.netns) == state.owner_alias:
                shaping.unshape(qdisc)
        if network.delete_link_if_owned(host.veth, state.owner_alias):
            report.links_deleted.append(host.veth)
    for host in owned:
        if network.delete_namespace(host.namespace):
            report.namespaces_deleted.append(host.namespace)
    for host in state.hosts:
        if host not in owned and host.namespace in network.namespaces():
            report.left_alone.append(f"namespace {host.namespace}: not this lab's")
    if network.delete_link_if_owned(state.bridge, state.owner_alias):
        report.links_deleted.append(state.bridge)
    elif network.link_exists(state.bridge):
        report.left_alone.append(f"link {state.bridge}: not this lab's")
    report.not_removed = _still_there(state, owned)
    if not report.not_removed:
        _remove_files(state)
    return report


def _still_there(state: LabState, owned: list[HostRecord]) -> list[str]:
    existing = network.namespaces()
    left = [f"namespace {h.namespace}" for h in owned if h.namespace in existing]
    links = [state.bridge, *(h.veth for h in state.hosts)]
    return left + [f"link {n}" for n in links if network.link_alias(n) == state.owner_alias]


def _stop_sshds(state: LabState, report: DownReport) -> None:
    procs = []
    for host in state.hosts:
        proc = sshd.own_sshd(host.sshd)
        if proc is not None:
            procs.append(proc)
        elif host.sshd and psutil.pid_exists(int(host.sshd["pid"])):
            report.left_alone.append(f"pid {host.sshd['pid']}: no longer {host.name}'s sshd")
    report.sshds_stopped = sshd.stop_processes(procs)


def _stop_the_rest(owned: list[HostRecord], report: DownReport) -> None:
    procs = []
    for host in owned:
        for pid in network.namespace_pids(host.namespace):
            with contextlib.suppress(psutil.NoSuchProcess):
                procs.append(psutil.Process(pid))
    report.other_processes_stopped = sshd.stop_processes(procs)


def _remove_files(state: LabState) -> None:
    """The lab's own files: host folders (prefixes included), keys, inventory, state;
    the folder itself if that leaves it empty."""
    lab_dir = Path(state.dir)
    shutil.rmtree(lab_dir / "hosts", ignore_errors=True)
    for path in (state.client_key, state.client_key + ".pub", state.known_hosts, state.inventory):
        Path(path).unlink(missing_ok=True)
    state.path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        lab_dir.rmdir()
