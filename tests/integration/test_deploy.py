"""`testbed deploy` for real (docs/deploy.md): a lab of namespaced hosts with their own
sshd (tests/lab_fixtures.py), the project's wheel and a wheelhouse (made once per
session: tests/deploy_fixtures.py), TLS on with the bench's certificates, the
`process` service manager. Install → start → health → `--status` → `--logs` → a
second deploy that changes nothing → `--stop` → `--uninstall`; a host with a wrong key
or no sshd fails alone while the other is deployed.

Needs root, network namespaces and /usr/sbin/sshd (skips with the reason otherwise)
and the wheelhouse (downloaded once from the index, then cached in .testbed/).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

from coordinator.cli import main
from coordinator.deploy.health import check_once
from testbed.config import load_config
from tests.deploy_fixtures import DeployArtifacts, LabBench, deploy_artifacts
from tests.lab_fixtures import LabFactory
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

PLACEMENT = {"host-1": ["cloud", "edge-0"], "host-2": ["agent-0"]}


@pytest.fixture(scope="session")
def artifacts() -> DeployArtifacts:
    return deploy_artifacts()


def deploy(bench: LabBench, *args: str) -> int:
    return main(["deploy", "-c", str(bench.config_path), *args])


def _status_json(bench: LabBench, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    capsys.readouterr()
    code = deploy(bench, "--status", "--json")
    return code, json.loads(capsys.readouterr().out)["hosts"]


def test_deploy_start_status_logs_redeploy_stop_uninstall(
    module_lab_hosts: LabFactory, tiny_zoo: Path, artifacts: DeployArtifacts,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    lab = module_lab_hosts(2)
    with LabBench(lab, tmp_path, tiny_zoo, PLACEMENT, artifacts) as bench:
        assert deploy(bench) == 0, capsys.readouterr()
        first = capsys.readouterr().out
        for node in ("cloud", "edge-0", "agent-0"):
            assert f"] {node} at " in first and ": serving" in first, first
        assert "onnxruntime providers: " in first and "CPUExecutionProvider" in first

        code, hosts = _status_json(bench, capsys)
        assert code == 0, hosts
        nodes = {**hosts["host-1"]["nodes"], **hosts["host-2"]["nodes"]}
        assert set(nodes) == {"cloud", "edge-0", "agent-0"}
        assert all(n["running"] and n["health"] == "serving" for n in nodes.values()), nodes
        assert hosts["host-1"]["installed"].startswith(bench.artifacts.wheel.version)

        _restarted_by_its_supervisor(bench, capsys)

        assert deploy(bench, "--logs", "agent-0", "--lines", "20") == 0
        assert "agent-0" in capsys.readouterr().out

        assert deploy(bench) == 0
        again = capsys.readouterr().out
        assert "0 changes" in again and "change(s)" in again, again
        assert all(line.endswith(" 0 change(s)") for line in again.splitlines()
                   if "] plan: " in line), again  # fmt: skip

        assert deploy(bench, "--stop") == 0
        code, hosts = _status_json(bench, capsys)
        assert code == 11, hosts  # NOT_RUNNING: installed, nothing runs
        assert not any(n["running"] for h in hosts.values() for n in h["nodes"].values())

        assert deploy(bench, "--uninstall") == 0
        for host in lab.hosts:
            assert not Path(host.prefix).exists() or not any(Path(host.prefix).iterdir())


def _restarted_by_its_supervisor(bench: LabBench, capsys: pytest.CaptureFixture[str]) -> None:
    """Kill the agent's daemon: its supervisor starts it again (and says so)."""
    _, hosts = _status_json(bench, capsys)
    service = hosts["host-2"]["nodes"]["agent-0"]["service"]
    daemon_pid = int(service.split("daemon pid ")[1].split(",")[0])
    os.kill(daemon_pid, signal.SIGKILL)
    cfg = load_config(bench.config_path)
    address = hosts["host-2"]["nodes"]["agent-0"]["address"]

    def back() -> bool:
        _, now = _status_json(bench, capsys)
        agent = now["host-2"]["nodes"]["agent-0"]
        return "1 restart(s)" in agent["service"] and check_once(cfg, address, "agent-0") == (
            "serving"
        )

    assert wait_until(back, timeout_s=60), "the supervisor did not restart agent-0"


def test_a_host_with_a_wrong_key_or_no_sshd_fails_alone(
    module_lab_hosts: LabFactory, tiny_zoo: Path, artifacts: DeployArtifacts,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    lab = module_lab_hosts(2)
    nodes = {"host-1": ["cloud", "edge-0"], "host-2": ["agent-0"]}
    with LabBench(lab, tmp_path, tiny_zoo, nodes, artifacts) as bench:
        wrong_key = tmp_path / "not-the-lab-key"
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(wrong_key))
        data = bench.config_data()
        hosts = data["inventory"]["hosts"]
        hosts[1]["key"] = str(wrong_key)
        hosts.append({**hosts[0], "name": "host-9", "address": lab.coordinator_address,
                      "ssh_port": 9, "nodes": []})  # fmt: skip
        bench.write_config(data)

        assert deploy(bench) == 18, capsys.readouterr()  # DEPLOY_FAILED
        out, err = capsys.readouterr()
        assert "[host-2] FAILED: permission denied" in err, err
        assert "[host-9] FAILED: unreachable" in err, err
        assert "[host-1] cloud at " in out and "[host-1] edge-0 at " in out, out
        assert "failed: host-2, host-9" in out, out
        code, status = _status_json(bench, capsys)
        assert code == 18, status  # DEPLOY_FAILED: a host did not answer
        assert status["host-1"]["nodes"]["edge-0"]["health"] == "serving"
        assert not status["host-2"]["reachable"]


def test_the_console_script_answers_status_as_json(
    module_lab_hosts: LabFactory, tiny_zoo: Path, artifacts: DeployArtifacts, tmp_path: Path,
) -> None:  # fmt: skip
    """`testbed deploy --status --json` as a user runs it: nothing deployed yet."""
    lab = module_lab_hosts(2)
    with LabBench(lab, tmp_path, tiny_zoo, PLACEMENT, artifacts) as bench:
        testbed = Path(sys.executable).with_name("testbed")
        proc = subprocess.run([str(testbed), "deploy", "-c", str(bench.config_path),
                               "--status", "--json"], capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert proc.returncode == 11, proc.stderr  # NOT_RUNNING: nothing deployed
        hosts = json.loads(proc.stdout)["hosts"]
        assert all(h["reachable"] and h["installed"] is None for h in hosts.values()), hosts


def test_a_host_whose_python_is_too_old_is_refused_with_what_to_do(
    module_lab_hosts: LabFactory, tiny_zoo: Path, artifacts: DeployArtifacts,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A board's Python 3.8 (a stand-in interpreter that says so): refused at its facts,
    naming deploy.python_dist; with an archive for another architecture, refused too."""
    lab = module_lab_hosts(2)
    old_python = tmp_path / "python3.8"
    old_python.write_text("#!/bin/sh\necho 3.8.10\n")
    old_python.chmod(0o755)
    with LabBench(lab, tmp_path / "bench", tiny_zoo, PLACEMENT, artifacts) as bench:
        data = bench.config_data()
        data["inventory"]["hosts"][1]["python"] = str(old_python)
        bench.write_config(data)
        assert deploy(bench, "--dry-run") == 18
        out, err = capsys.readouterr()
        assert "[host-2] FAILED: " in err and "Python 3.8.10" in err, err
        assert "deploy.python_dist" in err and "x86_64" in err, err
        assert "[host-1] plan: " in out and "(dry run)" in out, out

        archive = tmp_path / "cpython-3.11.9+20240814-aarch64-unknown-linux-gnu-install_only.tar.gz"
        archive.write_bytes(b"an aarch64 interpreter")
        data["deploy"]["python_dist"] = str(archive)
        bench.write_config(data)
        assert deploy(bench, "--dry-run", "--hosts", "host-2") == 18
        assert "is not for x86_64" in capsys.readouterr().err
