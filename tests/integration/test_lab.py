"""`testbed lab` for real (docs/lab.md): namespaced hosts whose own sshd answers the
lab's key, that reach each other and the coordinator, with their links shaped in the
kernel; and a `down` that leaves no namespace, link or sshd behind, twice over.

Needs root, network namespaces and /usr/sbin/sshd: skips with the reason otherwise
(tests/lab_fixtures.py).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml

from coordinator.lab import QdiscKind, lab_down, load_state, state_status, teardown
from coordinator.lab import sshd as lab_sshd
from coordinator.lab.network import namespaces
from coordinator.process_identity import ProcessIdentity
from testbed.config.inventory import InventoryConfig, ServiceManager
from testbed.schema import load_dataclass
from tests.lab_fixtures import LabFactory, LabHosts, skip_unless_lab_possible, start_lab

asyncssh = pytest.importorskip("asyncssh")


def _links() -> set[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True)
    return {link["ifname"] for link in json.loads(out.stdout)}


def _lab_left_nothing(lab: LabHosts, sshd_pids: list[int]) -> None:
    left_ns = {h.namespace for h in lab.state.hosts} & namespaces()
    assert not left_ns, f"namespaces left: {left_ns}"
    ours = {lab.state.bridge, *(h.veth for h in lab.state.hosts)}
    assert not ours & _links(), f"links left: {ours & _links()}"
    alive = [p for p in sshd_pids if _running(p)]
    assert not alive, f"sshd still running: {alive}"


def _running(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for PID 1 to reap it does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _run_over_ssh(lab: LabHosts, command: str) -> list[str]:
    """`command`'s output on every host, over SSH with the lab's key, host keys checked."""
    outputs = []
    for host in lab.hosts:
        async with asyncssh.connect(
            host.address, port=host.ssh_port, username=host.user,
            client_keys=[host.key], known_hosts=str(lab.known_hosts),
        ) as conn:  # fmt: skip
            outputs.append((await conn.run(command, check=True)).stdout)
    return outputs


def test_each_host_answers_ssh_with_the_lab_key_from_its_own_address(
    lab_hosts: LabFactory,
) -> None:
    lab = lab_hosts(2)
    outputs = asyncio.run(_run_over_ssh(lab, "ip -4 addr"))
    for host, out in zip(lab.hosts, outputs, strict=True):
        assert f"inet {host.address}/" in out
        others = [h.address for h in lab.hosts if h is not host]
        assert not any(f"inet {a}/" in out for a in others), out
    pythons = asyncio.run(_run_over_ssh(lab, f"{lab.hosts[0].python} --version"))
    assert all(p.startswith("Python 3.11") for p in pythons), pythons


def test_hosts_reach_each_other_and_the_coordinator(lab_hosts: LabFactory) -> None:
    lab = lab_hosts(2)
    host_2 = lab.hosts[1]
    connect = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)"
    to_host_2 = lab.in_host("host-1", sys.executable, "-c", connect, host_2.address, "22")
    assert subprocess.run(to_host_2, capture_output=True, timeout=30).returncode == 0
    with socket.socket() as listener:  # the coordinator's side, on its lab address
        listener.bind((lab.coordinator_address, 0))
        listener.listen()
        port = str(listener.getsockname()[1])
        to_coordinator = lab.in_host("host-2", sys.executable, "-c", connect,
                                     lab.coordinator_address, port)  # fmt: skip
        assert subprocess.run(to_coordinator, capture_output=True, timeout=30).returncode == 0


def test_status_says_all_up_and_inventory_loads_through_the_schema(
    lab_hosts: LabFactory,
) -> None:
    lab = lab_hosts(2)
    status = state_status(lab.state)
    assert status["all_up"] and [h["ssh_answers"] for h in status["hosts"]] == [True, True]
    inventory = load_dataclass(InventoryConfig, yaml.safe_load(lab.inventory_file.read_text()))
    assert [h.name for h in inventory.hosts] == ["host-1", "host-2"]
    assert all(h.manager is ServiceManager.PROCESS and h.nodes == [] for h in inventory.hosts)
    assert all(Path(h.python).exists() and Path(h.key) == lab.client_key for h in inventory.hosts)
    assert oct(lab.client_key.stat().st_mode & 0o777) == "0o600"


def test_tbf_shapes_both_ends_of_each_host_link(lab_hosts: LabFactory) -> None:
    lab = lab_hosts(1, rate_mbit=20, delay_ms=5)
    host = lab.state.hosts[0]
    for argv in (["tc", "-j", "qdisc", "show", "dev", host.veth],
                 ["tc", "-n", host.namespace, "-j", "qdisc", "show", "dev", "eth0"]):  # fmt: skip
        qdiscs = json.loads(subprocess.run(argv, capture_output=True, text=True).stdout)
        tbf = [q for q in qdiscs if q["kind"] == "tbf"]
        assert tbf and tbf[0]["options"]["rate"] == 20e6 / 8, qdiscs
    shaping = lab.state.shaping
    assert shaping.rate_applied and shaping.netem_available is not None
    assert shaping.delay_applied == shaping.netem_available
    if not shaping.netem_available:  # this kernel: said, in the state and in status
        assert "NOT applied" in shaping.summary and "netem" in shaping.summary
        assert all(q.kinds == [QdiscKind.TBF] for q in host.qdiscs)


def test_down_leaves_nothing_and_a_second_down_is_a_no_op(tmp_path: Path) -> None:
    lab = start_lab(tmp_path, 2, rate_mbit=10)
    sshd_pids = [int(h.sshd["pid"]) for h in lab.state.hosts if h.sshd]
    try:
        assert len(sshd_pids) == 2 and all(_running(p) for p in sshd_pids)
        report = lab_down(lab.dir)
        assert report is not None and report.sshds_stopped == 2 and not report.left_alone
        _lab_left_nothing(lab, sshd_pids)
        assert lab_down(lab.dir) is None and load_state(lab.dir) is None
    finally:
        teardown(lab.state)


def test_down_leaves_alone_a_pid_that_is_no_longer_the_sshd(tmp_path: Path) -> None:
    lab = start_lab(tmp_path, 1)
    stranger = subprocess.Popen(["sleep", "60"])  # a process that took over the sshd's PID
    try:
        identity = ProcessIdentity.of(stranger.pid)
        assert identity is not None
        assert identity.since_boot_s is not None  # the lab runs on Linux only
        lab.state.hosts[0].sshd = {**identity.to_record(), "started_at": identity.started_at - 5,
                                   "since_boot_s": identity.since_boot_s - 5}  # fmt: skip
        lab.state.save()
        report = lab_down(lab.dir)
        assert report is not None and stranger.poll() is None
        assert any(str(stranger.pid) in note for note in report.left_alone)
        _lab_left_nothing(lab, [])  # the real sshd went with its namespace's processes
    finally:
        stranger.kill()
        stranger.wait()
        teardown(lab.state)


def test_a_failed_up_tears_down_what_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skip_unless_lab_possible()
    started: list[int] = []
    real_start = lab_sshd.start_sshd

    def start_one_then_fail(namespace: str, config: Path) -> ProcessIdentity:
        if started:
            raise RuntimeError("sshd of the second host failed")
        identity = real_start(namespace, config)
        started.append(identity.pid)
        return identity

    monkeypatch.setattr(lab_sshd, "start_sshd", start_one_then_fail)
    before = namespaces()
    with pytest.raises(RuntimeError, match="second host"):
        start_lab(tmp_path, 2)
    assert started and namespaces() == before
    assert not _running(started[0])
    assert not list(tmp_path.rglob("lab.json"))


_SINK = """
import socket, sys, time
s = socket.socket(); s.bind((sys.argv[1], 5201)); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); got = 0; first = None
while data := c.recv(1 << 20):
    first = first or time.monotonic(); got += len(data)
print(got * 8 / (time.monotonic() - first) / 1e6)
"""
_SOURCE = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], 5201)); end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end: c.sendall(b"x" * 65536)
"""


def test_tbf_rate_is_what_a_tcp_stream_gets(lab_hosts: LabFactory) -> None:
    """20 Mbit/s asked: a TCP stream host-1 → host-2 gets about that (docs/lab.md)."""
    lab = lab_hosts(2, rate_mbit=20)
    to = lab.hosts[1].address
    sink = subprocess.Popen(lab.in_host("host-2", sys.executable, "-c", _SINK, to),
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        source = lab.in_host("host-1", sys.executable, "-c", _SOURCE, to, "2")
        subprocess.run(source, check=True, timeout=30)
        mbit_per_s = float(sink.stdout.readline())
    finally:
        sink.kill()
        sink.wait()
    assert 20 * 0.6 < mbit_per_s < 20 * 1.1, mbit_per_s
