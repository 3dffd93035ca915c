"""How a daemon is kept running on a host (docs/deploy.md, "Service managers"):

- `systemd`: one unit per daemon, `testbed-<node>.service` (restart on failure, a stop
  timeout, output appended to `<prefix>/logs/<node>.log`, no secret anywhere in it: the
  daemon reads its key and password files from `<prefix>/certs`);
- `process` (no systemd as PID 1: containers, CI, the lab): `<prefix>/bin/supervise.py`
  (coordinator/deploy/supervise.py), started detached over SSH (`setsid nohup`), with
  its pid file and state in `<prefix>/run` and the same log file.

Each manager turns "start / stop / status / remove node X" into shell commands; the
daemon's command line is the same for both (`daemon_argv`).
"""

from __future__ import annotations

import json
import posixpath
import shlex
from dataclasses import dataclass

from coordinator.deploy.layout import HostLayout, NodeSlot
from coordinator.deploy.ssh import q
from testbed.config import DeployConfig, ServiceManager
from testbed.types import NodeKind

UNIT_DIR_SYSTEM = "/etc/systemd/system"
UNIT_DIR_USER = ".config/systemd/user"
"""Under the user's home: units of a non-root user (`systemctl --user`)."""


@dataclass(frozen=True)
class DaemonTargets:
    """Where every daemon finds the coordinator's services."""

    broker_url: str
    registry: str


def daemon_argv(slot: NodeSlot, layout: HostLayout, targets: DaemonTargets) -> list[str]:
    """The daemon's command line: its config, id, the broker and registry addresses,
    its port (the cloud's: no config key holds it) and its own folders. No secret:
    keys and passwords stay in files the daemon reads by its node id."""
    argv = [posixpath.join(layout.venv, "bin", slot.daemon), "-c", layout.config,
            "--id", slot.node_id, "--broker", targets.broker_url,
            "--ready-file", posixpath.join(layout.run, f"{slot.node_id}.ready.json")]  # fmt: skip
    if targets.registry:
        argv += ["--registry", targets.registry]
    if slot.kind is NodeKind.CLOUD:
        argv += ["--port", str(slot.port)]
    if slot.kind is NodeKind.EDGE:
        argv += ["--cache-dir", posixpath.join(layout.cache, slot.node_id)]
    return argv


@dataclass(frozen=True)
class ServiceState:
    running: bool
    detail: str
    """How the manager says it: `active (running), pid 123`, `2 restarts, last exit 6`."""


class ProcessManager:
    """`supervise.py` per daemon, started detached over SSH."""

    kind = ServiceManager.PROCESS

    def __init__(self, layout: HostLayout, settings: DeployConfig) -> None:
        self.layout = layout
        self.settings = settings

    def _supervise(self, mode: str, slot: NodeSlot) -> str:
        return (f"{q(self.layout.venv_python)} {q(self.layout.supervisor)} {mode} "
                f"--name {q(slot.node_id)} --run-dir {q(self.layout.run)} "
                f"--stop-timeout-s {self.settings.stop_timeout_s:g}")  # fmt: skip

    def unit_files(self, slot: NodeSlot, argv: list[str]) -> dict[str, str]:
        return {}

    def status_command(self, slot: NodeSlot) -> str:
        return f"[ -x {q(self.layout.venv_python)} ] && {self._supervise('status', slot)}"

    def parse_status(self, text: str) -> ServiceState:
        try:
            state = json.loads(text.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return ServiceState(False, "not installed")
        if not state.get("running"):
            last = state.get("last_exit")
            return ServiceState(False, "stopped" + (f" (last exit {last})" if last else ""))
        restarts = state.get("restarts") or 0
        child = state.get("child_pid")
        detail = f"running, supervisor pid {state['supervisor_pid']}"
        detail += f", daemon pid {child}" if child else ", daemon restarting"
        if restarts:
            detail += f", {restarts} restart(s), last exit {state.get('last_exit')}"
        return ServiceState(bool(child), detail)

    def start_command(self, slot: NodeSlot, argv: list[str]) -> str:
        """Stop a running supervisor of the node, start a new one detached, and wait
        (5 s at most) until it has written its pid file."""
        run = (f"{self._supervise('run', slot)} --log {q(self.layout.log(slot.node_id))} "
               f"--restart-delay-s {self.settings.restart_delay_s:g} -- "
               f"{shlex.join(argv)}")  # fmt: skip
        pid_file = q(posixpath.join(self.layout.run, f"{slot.node_id}.pid"))
        return (f"{self._supervise('stop', slot)} >/dev/null && cd {q(self.layout.prefix)} && "
                f"(setsid nohup {run} </dev/null >/dev/null 2>&1 &) && "
                f"for i in $(seq 50); do [ -s {pid_file} ] && exit 0; sleep 0.1; done; "
                f"echo 'the supervisor did not start' >&2; exit 1")  # fmt: skip

    def stop_command(self, slot: NodeSlot) -> str:
        return f"[ ! -x {q(self.layout.venv_python)} ] || {self._supervise('stop', slot)}"

    def remove_command(self, slot: NodeSlot) -> str:
        files = [posixpath.join(self.layout.run, f"{slot.node_id}{suffix}")
                 for suffix in (".pid", ".json", ".ready.json")]  # fmt: skip
        return f"{self.stop_command(slot)} >/dev/null; rm -f {' '.join(q(f) for f in files)}"


class SystemdManager:
    """A systemd unit per daemon: system units for root, user units otherwise."""

    kind = ServiceManager.SYSTEMD

    def __init__(self, layout: HostLayout, settings: DeployConfig, *, user: str,
                 home: str) -> None:  # fmt: skip
        self.layout = layout
        self.settings = settings
        self.system = user == "root"
        self.systemctl = "systemctl" if self.system else "systemctl --user"
        self.unit_dir = UNIT_DIR_SYSTEM if self.system else posixpath.join(home, UNIT_DIR_USER)

    def unit_path(self, slot: NodeSlot) -> str:
        return posixpath.join(self.unit_dir, f"{slot.service}.service")

    def unit_files(self, slot: NodeSlot, argv: list[str]) -> dict[str, str]:
        return {self.unit_path(slot): unit_text(slot, argv, self.layout, self.settings,
                                                system=self.system)}  # fmt: skip

    def status_command(self, slot: NodeSlot) -> str:
        return (f"{self.systemctl} show -p ActiveState -p SubState -p MainPID -p NRestarts "
                f"-p LoadState {q(slot.service)}.service")  # fmt: skip

    def parse_status(self, text: str) -> ServiceState:
        props = dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)
        if props.get("LoadState") in (None, "not-found"):
            return ServiceState(False, "not installed")
        active, sub = props.get("ActiveState", "?"), props.get("SubState", "?")
        detail = f"{active} ({sub})"
        if props.get("MainPID", "0") != "0":
            detail += f", pid {props['MainPID']}"
        if props.get("NRestarts", "0") not in ("0", ""):
            detail += f", {props['NRestarts']} restart(s)"
        return ServiceState(active == "active" and sub == "running", detail)

    def start_command(self, slot: NodeSlot, argv: list[str]) -> str:
        unit = q(f"{slot.service}.service")
        return (f"{self.systemctl} daemon-reload && {self.systemctl} enable -q {unit} && "
                f"{self.systemctl} restart {unit}")  # fmt: skip

    def stop_command(self, slot: NodeSlot) -> str:
        return f"{self.systemctl} stop {q(slot.service)}.service 2>/dev/null || true"

    def remove_command(self, slot: NodeSlot) -> str:
        unit = q(f"{slot.service}.service")
        return (f"{self.systemctl} disable --now -q {unit} 2>/dev/null; "
                f"rm -f {q(self.unit_path(slot))}; {self.systemctl} daemon-reload")  # fmt: skip


Manager = ProcessManager | SystemdManager


def unit_text(slot: NodeSlot, argv: list[str], layout: HostLayout, settings: DeployConfig,
              *, system: bool = True) -> str:  # fmt: skip
    """The systemd unit of one daemon. `Environment=` holds no secret (none is needed:
    the daemon reads its key and password files by its node id); the output goes to
    the same log file as under the process manager."""
    wanted_by = "multi-user.target" if system else "default.target"
    return f"""\
[Unit]
Description=testbed {slot.kind.value} node {slot.node_id}
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={" ".join(_systemd_quote(a) for a in argv)}
WorkingDirectory={layout.prefix}
Environment=PYTHONUNBUFFERED=1
Restart=on-failure
RestartSec={settings.restart_delay_s:g}
TimeoutStopSec={settings.stop_timeout_s:g}
KillSignal=SIGTERM
StandardOutput=append:{layout.log(slot.node_id)}
StandardError=inherit

[Install]
WantedBy={wanted_by}
"""


def _systemd_quote(arg: str) -> str:
    """One ExecStart argument: quoted when it holds a blank or a quote; `%` and `$`
    escaped (systemd would expand specifiers and variables)."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if any(c in arg for c in " \t\"'\\"):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def manager_for(manager: ServiceManager, systemd_runs: bool, layout: HostLayout,
                settings: DeployConfig, *, user: str, home: str) -> Manager:  # fmt: skip
    """`auto`: systemd where it is PID 1, else the process manager."""
    if manager is ServiceManager.SYSTEMD or (manager is ServiceManager.AUTO and systemd_runs):
        return SystemdManager(layout, settings, user=user, home=home)
    return ProcessManager(layout, settings)
