"""The `process` service manager: keep one daemon running on a host without systemd
(containers, CI, the lab). Deploy copies this file to `<prefix>/bin/supervise.py` and
starts it detached over SSH; it uses the standard library only, so it runs with the
venv's interpreter whatever is installed in it (docs/deploy.md, "Service managers").

    supervise.py run --name NODE --run-dir DIR --log FILE [--stop-timeout-s S]
                     [--restart-delay-s S] -- ARGV...
    supervise.py stop --name NODE --run-dir DIR [--stop-timeout-s S]
    supervise.py status --name NODE --run-dir DIR

`run` writes its pid to `DIR/NODE.pid` and its state to `DIR/NODE.json` (the daemon's
pid, restarts, last exit status), starts ARGV with stdout and stderr appended to the log
file, and restarts it whenever it exits, after a delay that doubles from
`--restart-delay-s` up to 30 s (reset once a run lasted a minute). SIGTERM stops the
daemon (SIGTERM, SIGKILL after `--stop-timeout-s`) and then itself. `stop` does that to
a running supervisor — only to a process that still is this node's supervisor —
and `status` prints the state as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MAX_DELAY_S = 30.0
STABLE_RUN_S = 60.0
"""A run this long resets the restart delay: the daemon was fine, something new failed."""


def _pid_file(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.pid"


def _state_file(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.json"


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def supervisor_pid(run_dir: Path, name: str) -> int | None:
    """The pid of this node's running supervisor: the pid file's, if that process
    still runs this script for this node (a reused pid is someone else's)."""
    try:
        pid = int(_pid_file(run_dir, name).read_text().strip())
    except (OSError, ValueError):
        return None
    argv = _cmdline(pid)
    script = Path(__file__).name
    mine = any(a.endswith(script) for a in argv) and "run" in argv and name in argv
    return pid if mine else None


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_dir = Path(args.run_dir)
        self.stopping = False
        # The handler only sets the flag and writes here; a restart delay waits on the
        # read end. A handler that set a threading.Event could deadlock: it runs in the
        # main thread, maybe inside that event's wait, which holds the event's lock.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self.child: subprocess.Popen | None = None
        self.state: dict[str, Any] = {
            "supervisor_pid": os.getpid(), "child_pid": None, "restarts": 0, "last_exit": None,
            "started_unix_s": round(time.time(), 3),
        }  # fmt: skip

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self.stopping = True
        with contextlib.suppress(OSError):  # a full pipe: the wake-up is there already
            os.write(self._wake_write, b"\0")
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def _log(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.args.log, "a") as fh:
            fh.write(f"{stamp} supervise {self.args.name}: {text}\n")

    def _spawn(self) -> subprocess.Popen:
        with open(self.args.log, "ab") as log:
            return subprocess.Popen(self.args.argv, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)  # fmt: skip

    def _stop_child(self) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(self.args.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self._log(f"no exit {self.args.stop_timeout_s:g} s after SIGTERM: SIGKILL")
            child.kill()
            child.wait()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        state_path = _state_file(self.run_dir, self.args.name)
        pid_file = _pid_file(self.run_dir, self.args.name)
        pid_file.with_suffix(".pid.tmp").write_text(f"{os.getpid()}\n")
        pid_file.with_suffix(".pid.tmp").replace(pid_file)
        delay = self.args.restart_delay_s
        try:
            while not self.stopping:
                started = time.monotonic()
                self.child = self._spawn()
                self.state["child_pid"] = self.child.pid
                _write_json(state_path, self.state)
                code = self.child.wait()
                if self.stopping:
                    break
                self.state.update(last_exit=code, restarts=int(self.state["restarts"]) + 1)
                _write_json(state_path, {**self.state, "child_pid": None})
                if time.monotonic() - started >= STABLE_RUN_S:
                    delay = self.args.restart_delay_s
                self._log(f"exited with {code}; restarting in {delay:g} s")
                select.select([self._wake_read], [], [], delay)  # or a signal
                delay = min(delay * 2, MAX_DELAY_S)
        finally:
            self._stop_child()
            _pid_file(self.run_dir, self.args.name).unlink(missing_ok=True)
            _write_json(state_path, {**self.state, "child_pid": None, "stopped": True})
        return 0


def _stop(args: argparse.Namespace) -> int:
    """SIGTERM the node's supervisor and wait for it (it stops the daemon first);
    SIGKILL both after the stop timeout and a margin."""
    run_dir = Path(args.run_dir)
    pid = supervisor_pid(run_dir, args.name)
    if pid is None:
        print(json.dumps({"stopped": False, "reason": "not running"}))
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.stop_timeout_s + 5
    # Gone once its pid is no longer this node's supervisor (exited, or a zombie: no
    # command line left), or once it removed its pid file on the way out.
    while time.monotonic() < deadline and supervisor_pid(run_dir, args.name) == pid:
        time.sleep(0.05)
    if supervisor_pid(run_dir, args.name) == pid:
        state = _read_state(run_dir, args.name)
        for victim in (state.get("child_pid"), pid):
            if isinstance(victim, int):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
        _pid_file(run_dir, args.name).unlink(missing_ok=True)
    print(json.dumps({"stopped": True, "pid": pid}))
    return 0


def _read_state(run_dir: Path, name: str) -> dict:
    try:
        return json.loads(_state_file(run_dir, name).read_text())
    except (OSError, ValueError):
        return {}


def _status(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    pid = supervisor_pid(run_dir, args.name)
    state = _read_state(run_dir, args.name)
    child = state.get("child_pid")
    child_alive = isinstance(child, int) and pid is not None and Path(f"/proc/{child}").exists()
    print(json.dumps({"running": pid is not None, "supervisor_pid": pid,
                      "child_pid": child if child_alive else None,
                      "restarts": state.get("restarts", 0),
                      "last_exit": state.get("last_exit")}))  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="supervise.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["run", "stop", "status"])
    parser.add_argument("--name", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--log", default=os.devnull)
    parser.add_argument("--stop-timeout-s", type=float, default=15.0)
    parser.add_argument("--restart-delay-s", type=float, default=2.0)
    argv = list(sys.argv[1:] if argv is None else argv)
    daemon = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    args.argv = daemon
    if args.mode == "stop":
        return _stop(args)
    if args.mode == "status":
        return _status(args)
    if not args.argv:
        parser.error("run needs the daemon's command line after --")
    Path(args.run_dir).mkdir(parents=True, exist_ok=True)
    if supervisor_pid(Path(args.run_dir), args.name) is not None:
        print(f"supervise.py: {args.name} is already supervised", file=sys.stderr)
        return 1
    return Supervisor(args).run()


if __name__ == "__main__":
    raise SystemExit(main())
