"""Each host's own OpenSSH server: Debian's `/usr/sbin/sshd`, started inside the
host's namespace with `ip netns exec`, with its own config, host key, authorized
keys, log and pid file in the host's folder (docs/lab.md).

sshd rewrites its command line as it runs (`sshd: /usr/sbin/sshd -f CONF [listener]
0 of 10-100 startups`, the count changing with each connection being set up), so the
identity the lab records and checks (coordinator/process_identity.py) is the command
line cut before `[listener]`.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import replace
from pathlib import Path

import psutil

from coordinator.lab.tools import run_tool
from coordinator.process_identity import ProcessIdentity, read_process
from testbed.exit_codes import ExitCode, TestbedExit

SSHD = "/usr/sbin/sshd"
SSHD_PRIVSEP_DIR = Path("/run/sshd")
"""sshd refuses to start without its privilege separation folder (made by systemd's
unit on a normal Debian host, by nobody here)."""
SSHD_START_TIMEOUT_S = 10.0
SSHD_STOP_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0
"""How long to wait for an SSH banner: a few seconds, like ssh's ConnectTimeout; one second
was too tight for sshd on a loaded 2-core host (its first greeting forks and loads keys)."""
_LISTENER_MARK = "[listener]"

_CONFIG = """\
# Written by `testbed lab up` (coordinator/lab/sshd.py) for lab host {name}.
Port {port}
ListenAddress {address}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
# No PAM stack to set up in a namespace; keys only.
UsePAM no
# The lab's files live under its folder, which may sit in world-writable /tmp: sshd's
# strict modes would refuse the authorized_keys there.
StrictModes no
PrintMotd no
X11Forwarding no
Subsystem sftp internal-sftp
"""


def generate_key(path: Path, comment: str) -> Path:
    """A new ed25519 key pair (`path`, 0600, and `path`.pub); an old one is replaced."""
    for old in (path, path.with_name(path.name + ".pub")):
        old.unlink(missing_ok=True)
    run_tool(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path


def public_key(private_key: Path) -> str:
    return private_key.with_name(private_key.name + ".pub").read_text().strip()


def write_config(host_dir: Path, name: str, address: str, port: int, client_key: Path) -> Path:
    """The host's sshd config, host key and authorized_keys (the lab's client key)."""
    host_key = generate_key(host_dir / "ssh_host_ed25519_key", f"testbed-lab {name}")
    authorized = host_dir / "authorized_keys"
    authorized.write_text(public_key(client_key) + "\n")
    authorized.chmod(0o600)
    config = host_dir / "sshd_config"
    config.write_text(_CONFIG.format(
        name=name, port=port, address=address, host_key=host_key,
        pid_file=host_dir / "sshd.pid", authorized_keys=authorized,
    ))  # fmt: skip
    return config


def stable_identity(pid: int | None) -> ProcessIdentity | None:
    """The identity of sshd listener `pid`, its command line without its title."""
    found = _read_sshd(pid)
    return found[1] if found else None


def _read_sshd(pid: int | None) -> tuple[psutil.Process, ProcessIdentity] | None:
    found = read_process(pid)
    if found is None:
        return None
    proc, identity = found
    return proc, replace(identity, cmdline=without_title(identity.cmdline))


def without_title(cmdline: tuple[str, ...]) -> tuple[str, ...]:
    """sshd's command line, the same whether it is read before or after sshd sets its
    listener title. Once it listens, sshd replaces its command line with `sshd: ARGV
    [listener] 0 of 10-100 startups` (the count changing with each connection), which
    psutil splits at spaces. Its pid file is written a moment before, so the identity
    `start_sshd` records may be either. Both come out as ARGV split at spaces."""
    if _LISTENER_MARK in cmdline:
        cmdline = cmdline[: cmdline.index(_LISTENER_MARK)]
    words = " ".join(cmdline).split()
    return tuple(words[1:] if words[:1] == ["sshd:"] else words)


def start_sshd(namespace: str, config: Path) -> ProcessIdentity:
    """Start sshd in `namespace` (it daemonizes; the lab's processes are not the
    command's children) and wait for its pid file; its identity."""
    SSHD_PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    pid_file = config.with_name("sshd.pid")
    pid_file.unlink(missing_ok=True)
    log = config.with_name("sshd.log")
    run_tool([SSHD, "-t", "-f", str(config)])  # a bad config fails here, with sshd's reason
    run_tool(["ip", "netns", "exec", namespace, SSHD, "-f", str(config), "-E", str(log)])
    deadline = time.monotonic() + SSHD_START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, ValueError):
            identity = stable_identity(int(pid_file.read_text().strip()))
            if identity is not None:
                return identity
        time.sleep(0.02)
    raise TestbedExit(ExitCode.NODE_START_FAILED, f"sshd in {namespace} did not write "
                      f"{pid_file} in {SSHD_START_TIMEOUT_S:g} s; its log: {log}")  # fmt: skip


def own_sshd(record: dict[str, object] | None) -> psutil.Process | None:
    """The sshd `record` describes if its PID still is that process; else None."""
    recorded = ProcessIdentity.from_record(dict(record)) if record else None
    found = _read_sshd(recorded.pid) if recorded is not None else None
    if recorded is None or found is None:
        return None
    proc, current = found  # psutil re-checks this process's start time per signal
    recorded = replace(recorded, cmdline=without_title(recorded.cmdline))  # and of before
    return proc if recorded.matches(current) else None


def stop_processes(procs: list[psutil.Process]) -> int:
    """SIGTERM, then SIGKILL after SSHD_STOP_TIMEOUT_S; how many were signalled."""
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    alive = _wait_gone(procs, SSHD_STOP_TIMEOUT_S)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    _wait_gone(alive, SSHD_STOP_TIMEOUT_S)
    return len(procs)


def _wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Those of `procs` still running after up to `timeout_s`. A zombie counts as gone:
    the lab's processes are not its children, and `psutil.wait_procs` would wait for
    PID 1 to reap them (a second or more in a container)."""
    deadline = time.monotonic() + timeout_s
    alive = list(procs)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        if alive:
            time.sleep(0.01)
    return alive


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def answers(address: str, port: int, timeout_s: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether something accepts a TCP connection at `address:port` and greets like an
    SSH server (`SSH-2.0-...`)."""
    try:
        with socket.create_connection((address, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False
