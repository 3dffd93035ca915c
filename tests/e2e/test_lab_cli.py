"""`testbed lab up | status | down` as a user runs them (docs/lab.md): the exit codes,
the state file and inventory, `--json`, and a `down` that is safe twice. Needs root,
network namespaces and /usr/sbin/sshd: skips with the reason otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import yaml

from coordinator.lab.network import namespaces
from testbed.exit_codes import ExitCode
from tests.lab_fixtures import free_lab_name_and_subnet, skip_unless_lab_possible

ROOT = Path(__file__).resolve().parents[2]


def run_testbed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coordinator.cli", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_lab_up_status_down_from_the_command_line(tmp_path: Path) -> None:
    skip_unless_lab_possible()
    lab_dir = str(tmp_path / "lab")
    with free_lab_name_and_subnet() as (name, subnet):
        up = run_testbed("lab", "up", "--hosts", "2", "--dir", lab_dir, "--name", name,
                     "--subnet", subnet, "--rate-mbit", "50", "--delay-ms", "5")  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        assert "all hosts up" in up.stdout and "tbf 50 Mbit/s" in up.stdout
        state = json.loads((tmp_path / "lab" / "lab.json").read_text())
        if not state["shaping"]["netem_available"]:
            assert "delay 5 ms NOT applied" in up.stdout and "netem" in up.stderr
        hosts = yaml.safe_load((tmp_path / "lab" / "inventory.yaml").read_text())["hosts"]
        assert [h["name"] for h in hosts] == ["host-1", "host-2"]

        again = run_testbed("lab", "up", "--hosts", "2", "--dir", lab_dir, "--name", name)
        assert again.returncode == ExitCode.ALREADY_EXISTS and "--force" in again.stderr

        status = run_testbed("lab", "status", "--dir", lab_dir, "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        hosts_up = [h["ssh_answers"] for h in report["hosts"]]
        assert report["all_up"] and hosts_up == [True, True], status.stdout  # which, and why
        assert report["shaping"]["rate_mbit"] == 50
    finally:
        down = run_testbed("lab", "down", "--dir", lab_dir)
    assert down.returncode == 0 and "2 sshd(s)" in down.stdout, down.stderr
    assert not {f"{name}-host-1", f"{name}-host-2"} & namespaces()
    assert not [p for p in psutil.process_iter(["cmdline"]) if lab_dir in " ".join(
        p.info["cmdline"] or [])]  # fmt: skip
    twice = run_testbed("lab", "down", "--dir", lab_dir)
    assert twice.returncode == 0 and "nothing to do" in twice.stdout
    gone = run_testbed("lab", "status", "--dir", lab_dir, "--json")
    assert gone.returncode == ExitCode.NOT_RUNNING
    assert json.loads(gone.stdout)["running"] is False
