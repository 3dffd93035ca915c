"""Node daemons started the way a deployed service runs them — their own CLIs, before
the coordinator, told where the registry and the broker are — for tests and
benchmarks of a bench of hosts whose hosts are this machine (no SSH).

Each daemon gets the parent-death signal (`TESTBED_PARENT_PID`, testbed/daemon.py), so
none outlives the test process, and `stop()` ends them in the order the launcher does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from testbed.daemon import PARENT_ENV
from tests.waiting import wait_until

MODULES = {"cloud": "cloud_node", "edge": "edge_node", "agent": "agent_node"}


@dataclass
class DeployedNodes:
    """Daemons of one bench, as processes of this machine."""

    config_path: Path
    zoo_dir: Path
    registry: str
    broker_url: str
    logs_dir: Path
    wrappers: dict[str, list[str]] = field(default_factory=dict)
    """Per node, what its command runs in (e.g. `ip netns exec <host's namespace>`)."""
    listen_host: str | None = None
    """`--host` for every node (None: the config's)."""
    log_dirs: dict[str, Path] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, node_id: str, *extra: str) -> subprocess.Popen:
        kind = node_id.split("-")[0]
        argv = [
            *self.wrappers.get(node_id, []),
            sys.executable, "-m", MODULES[kind], "-c", str(self.config_path), "--id", node_id,
            "--registry", self.registry, "--broker", self.broker_url, *extra,
        ]  # fmt: skip
        if self.listen_host is not None:
            argv += ["--host", self.listen_host]
        if kind in ("cloud", "agent"):
            argv += ["--zoo", str(self.zoo_dir)]
        else:
            argv += ["--cache-dir", str(self.logs_dir.parent / "cache" / node_id)]
        self.log_path(node_id).parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1",
               "OMP_NUM_THREADS": "1"}  # fmt: skip
        with open(self.log_path(node_id), "ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )  # fmt: skip
        self.procs[node_id] = proc
        return proc

    def log_path(self, node_id: str) -> Path:
        """Where the node's output goes: `logs_dir/<node>.log`, or as `log_dirs` says
        (a lab host's `<prefix>/logs`, where deploy's services write theirs)."""
        return self.log_dirs.get(node_id, self.logs_dir) / f"{node_id}.log"

    def log(self, node_id: str) -> str:
        return self.log_path(node_id).read_text(errors="replace")

    def start_bench(self, node_ids: list[str], *extra: str, timeout_s: float = 60.0) -> None:
        """The cloud first (edges fetch their preloads from it as they start), then
        the others, each with the `extra` flags; returns once the cloud serves."""
        if "cloud" in node_ids:
            self.start("cloud", *extra)
            served = wait_until(lambda: "serving" in self.log("cloud"), timeout_s)
            assert served, f"the cloud did not serve:\n{self.log('cloud')[-2000:]}"
        for node_id in node_ids:
            if node_id != "cloud":
                self.start(node_id, *extra)

    def running(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def stop(self, grace_s: float = 10.0) -> None:
        order = sorted(self.procs, key=lambda n: {"agent": 0, "edge": 1}.get(n.split("-")[0], 2))
        for node_id in order:
            if self.procs[node_id].poll() is None:
                self.procs[node_id].send_signal(signal.SIGTERM)
        for node_id in order:
            try:
                self.procs[node_id].wait(grace_s)
            except subprocess.TimeoutExpired:
                self.procs[node_id].kill()
                self.procs[node_id].wait()
