"""`testbed deploy`'s pieces without SSH (docs/deploy.md): systemd units that
`systemd-analyze verify` accepts and that hold no secret, the process manager's
supervisor (restart with backoff, stop, status, pid identity), the Python and extras
decisions for boards, fixed ports, the host's config (secrets redacted, paths on the
host), the clock bound, the quick check of copied folders, the command line."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordinator.cli import main
from coordinator.deploy.artifacts import Target, _platform_flags, requirements
from coordinator.deploy.facts import HostFacts, check_clock, python_choice
from coordinator.deploy.host_config import host_config_text
from coordinator.deploy.layout import Extra, HostLayout, extras_for, host_slots, node_slots
from coordinator.deploy.operations import FileOp, TreeOp
from coordinator.deploy.services import unit_text
from coordinator.deploy.ssh import HostFailure
from testbed.config import BoardClass, HostConfig, config_from_dict
from testbed.exit_codes import TestbedExit
from tests.waiting import wait_until

SUPERVISOR = Path(__file__).resolve().parents[2] / "coordinator" / "deploy" / "supervise.py"


def bench(**sections: object) -> dict:
    hosts = [{"name": "board-1", "address": "10.0.0.5", "nodes": ["agent-0", "agent-1"]},
             {"name": "server-1", "address": "10.0.0.2", "nodes": ["cloud", "edge-0"]}]  # fmt: skip
    return {"edges": {"count": 1, "nodes": []}, "agents": {"count": 2},
            "broker": {"url": "mqtt://10.0.0.2:1883"}, "inventory": {"hosts": hosts},
            **sections}  # fmt: skip


def facts(**kw: object) -> HostFacts:
    base: dict = dict(home="/root", arch="aarch64", os_name="Ubuntu 20.04", glibc="2.31",
                      pid1="systemd", clock_offset_s=0.0, clock_uncertainty_s=0.001)  # fmt: skip
    return HostFacts(**{**base, **kw})


# ------------------------------------------------------------------------ systemd


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_generated_units_pass_systemd_analyze_verify_and_hold_no_secret(tmp_path: Path) -> None:
    cfg = config_from_dict(bench(broker={"url": "mqtt://10.0.0.2:1883", "password": "s3cret-pw"}))
    layout = HostLayout(str(tmp_path / "prefix"))
    from coordinator.deploy.services import DaemonTargets, daemon_argv

    for slot in node_slots(cfg).values():
        argv = daemon_argv(slot, layout, DaemonTargets(cfg.broker.url or "", "10.0.0.1:50051"))
        Path(argv[0]).parent.mkdir(parents=True, exist_ok=True)
        Path(argv[0]).write_text("#!/bin/sh\n")
        Path(argv[0]).chmod(0o755)
        text = unit_text(slot, argv, layout, cfg.deploy)
        unit = tmp_path / f"{slot.service}.service"
        unit.write_text(text)
        done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0 and done.stderr == "", (slot.node_id, done.stderr, text)
        assert "Restart=on-failure" in text and "TimeoutStopSec=" in text
        environment = [line for line in text.splitlines() if line.startswith("Environment=")]
        assert environment == ["Environment=PYTHONUNBUFFERED=1"]
        assert "s3cret-pw" not in text and "PRIVATE KEY" not in text


# ------------------------------------------------------------------------ supervisor


def supervise(*args: str) -> dict:
    out = subprocess.run([sys.executable, str(SUPERVISOR), *args], capture_output=True,
                         text=True, timeout=60, check=True)  # fmt: skip
    return json.loads(out.stdout)


def test_the_supervisor_restarts_with_backoff_and_stops_on_request(tmp_path: Path) -> None:
    run_dir, log = tmp_path / "run", tmp_path / "x.log"
    proc = subprocess.Popen([sys.executable, str(SUPERVISOR), "run", "--name", "x",
                             "--run-dir", str(run_dir), "--log", str(log),
                             "--restart-delay-s", "0.2", "--stop-timeout-s", "2", "--",
                             "/bin/sh", "-c", "echo started; exit 3"])  # fmt: skip
    try:
        assert wait_until(lambda: log.exists() and log.read_text().count("started") >= 3, 20)
        state = supervise("status", "--name", "x", "--run-dir", str(run_dir))
        assert state["running"] and state["restarts"] >= 2 and state["last_exit"] == 3
        text = log.read_text()
        assert "exited with 3; restarting in 0.2 s" in text
        assert "restarting in 0.4 s" in text  # the delay doubles
        assert supervise("stop", "--name", "x", "--run-dir", str(run_dir))["stopped"]
        assert proc.wait(10) == 0
        assert not (run_dir / "x.pid").exists()
        assert not supervise("status", "--name", "x", "--run-dir", str(run_dir))["running"]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_supervisor_stops_its_daemon_and_trusts_no_stale_pid(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "y.pid").write_text(f"{os.getpid()}\n")  # a pid that is not a supervisor
    assert not supervise("status", "--name", "y", "--run-dir", str(run_dir))["running"]
    assert supervise("stop", "--name", "y", "--run-dir", str(run_dir)) == {
        "stopped": False, "reason": "not running"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, str(SUPERVISOR), "run", "--name", "y",
                             "--run-dir", str(run_dir), "--log", str(tmp_path / "y.log"),
                             "--", "/bin/sleep", "300"])  # fmt: skip
    try:
        assert wait_until(lambda: supervise("status", "--name", "y", "--run-dir",
                                            str(run_dir))["child_pid"] is not None)  # fmt: skip
        child = supervise("status", "--name", "y", "--run-dir", str(run_dir))["child_pid"]
        supervise("stop", "--name", "y", "--run-dir", str(run_dir))
        assert proc.wait(10) == 0
        assert not Path(f"/proc/{child}").exists() or _zombie(child)
    finally:
        if proc.poll() is None:
            proc.kill()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


# ------------------------------------------------------------------------ boards


def test_an_old_python_without_python_dist_is_refused_saying_what_to_do() -> None:
    host = HostConfig(name="xavier-1", board=BoardClass.JETSON_XAVIER)
    old = facts(python_path="/usr/bin/python3", python_version="3.8.10", l4t="R35.4.1")
    cfg = config_from_dict(bench())
    with pytest.raises(HostFailure) as info:
        python_choice(host, old, cfg.deploy, HostLayout("/opt/testbed"))
    assert "3.8.10" in str(info.value) and "deploy.python_dist" in str(info.value)
    assert "aarch64" in str(info.value)


def test_a_standalone_python_is_provisioned_for_its_architecture_only(tmp_path: Path) -> None:
    archive = tmp_path / "cpython-3.11.9+20240814-aarch64-unknown-linux-gnu-install_only.tar.gz"
    archive.write_bytes(b"not really")
    cfg = config_from_dict(bench(deploy={"python_dist": str(archive)}))
    host = HostConfig(name="orin-1", board=BoardClass.JETSON_ORIN)
    old = facts(python_path="/usr/bin/python3", python_version="3.10.12", l4t="R36.3.0")
    choice = python_choice(host, old, cfg.deploy, HostLayout("/opt/testbed"))
    assert choice.provision and choice.version == "3.11.9"
    assert choice.path == "/opt/testbed/python/bin/python3"
    assert "TensorRT" in choice.note and "CPU" in choice.note
    with pytest.raises(HostFailure, match="not for x86_64"):
        python_choice(host, facts(arch="x86_64", python_version="3.10.12"), cfg.deploy,
                      HostLayout("/opt/testbed"))  # fmt: skip
    new = python_choice(host, facts(python_path="/usr/bin/python3.12", python_version="3.12.3"),
                        cfg.deploy, HostLayout("/opt/testbed"))  # fmt: skip
    assert not new.provision and new.path == "/usr/bin/python3.12"


def test_jetpack_is_read_from_the_l4t_release() -> None:
    assert facts(l4t="R35.4.1").jetpack == "5"
    assert facts(l4t="R36.3.0").jetpack == "6"
    assert facts().jetpack == ""


def test_extras_follow_the_roles_and_the_gpu() -> None:
    cfg = config_from_dict(bench())
    slots = node_slots(cfg)
    agent, edge, cloud = slots["agent-0"], slots["edge-0"], slots["cloud"]
    assert extras_for([agent], BoardClass.GENERIC, nvidia_gpu=True) == [Extra.CPU]
    assert extras_for([cloud], BoardClass.GPU_SERVER, nvidia_gpu=True) == []
    assert extras_for([cloud, edge], BoardClass.GPU_SERVER, nvidia_gpu=True) == [Extra.GPU]
    assert extras_for([edge], BoardClass.GENERIC, nvidia_gpu=False) == [Extra.CPU]
    assert extras_for([edge, agent], BoardClass.JETSON_ORIN, nvidia_gpu=True) == [Extra.CPU]


def test_the_clock_bound_refuses_a_host_far_off() -> None:
    cfg = config_from_dict(bench(deploy={"max_clock_skew_s": 2.0}))
    check_clock(facts(clock_offset_s=1.5), cfg.deploy)
    with pytest.raises(HostFailure, match=r"\+30.0 s off .*max_clock_skew_s"):
        check_clock(facts(clock_offset_s=30.0), cfg.deploy)


# ------------------------------------------------------------------------ ports, config


def test_nodes_get_fixed_ports_configured_or_deterministic() -> None:
    cfg = config_from_dict(bench(agents={"count": 2, "nodes": [{}, {"port": 6000}]}))
    ports = {n: s.port for n, s in node_slots(cfg).items()}
    assert ports == {"cloud": 50500, "edge-0": 50501, "agent-0": 51000, "agent-1": 6000}
    assert node_slots(cfg) == node_slots(config_from_dict(bench(
        agents={"count": 2, "nodes": [{}, {"port": 6000}]})))  # fmt: skip


def test_two_nodes_on_one_port_of_a_host_are_a_config_error_naming_the_key() -> None:
    cfg = config_from_dict(bench(agents={"count": 2, "nodes": [{}, {"port": 51000}]}))
    with pytest.raises(TestbedExit) as info:
        host_slots(cfg, cfg.inventory.hosts[0])
    assert info.value.code == 2 and "agents.nodes[1].port" in info.value.message


def test_the_host_config_redacts_secrets_and_points_to_the_hosts_files() -> None:
    cfg = config_from_dict(bench(broker={"url": "mqtt://10.0.0.2:1883", "password": "pw-9q8"},
                                 security={"certs_dir": "/home/me/certs"}))  # fmt: skip
    layout = HostLayout("/opt/testbed")
    text = host_config_text(cfg, layout)
    assert "pw-9q8" not in text and "/home/me" not in text
    assert text == host_config_text(cfg, layout)  # deterministic: a redeploy changes nothing
    import yaml

    data = yaml.safe_load(text)
    assert data["zoo"]["dir"] == "/opt/testbed/zoo"
    assert data["security"]["certs_dir"] == "/opt/testbed/certs"
    assert data["agents"]["nodes"][1] == {"port": 51001, "host": "10.0.0.5"}
    assert data["edges"]["nodes"][0] == {"port": 50501, "host": "10.0.0.2"}
    assert data["cloud"]["host"] == "10.0.0.2"
    assert config_from_dict(data).inventory.remote  # the host reads it as a bench of hosts


# ------------------------------------------------------------------------ operations


def test_a_folder_is_copied_again_only_where_size_mtime_or_sha_changed(tmp_path: Path) -> None:
    for name in ("a.whl", "b.whl"):
        (tmp_path / name).write_bytes(name.encode() * 100)
    op = TreeOp("wheelhouse", "the wheelhouse", "/p/wheelhouse",
                {n: tmp_path / n for n in ("a.whl", "b.whl")})  # fmt: skip
    index = {n: [op.shas[n], "200", "1700000000"] for n in op.files}
    stats = "644 200 1700000000 ./a.whl\n644 200 1700000000 ./b.whl\n"
    assert op.diff(f"{json.dumps(index)}\n@@stat\n{stats}", set()) is None
    touched = stats.replace("./b.whl", "").replace("644 200 1700000000 \n", "") + (
        "644 200 1700000099 ./b.whl\n644 5 1 ./old.whl\n")  # fmt: skip
    change = op.diff(f"{json.dumps(index)}\n@@stat\n{touched}", set())
    assert change == "the wheelhouse: copy 1 file(s) (0.0 MB), remove 1 stale file(s)"
    assert op.to_copy == ["b.whl"] and op.to_remove == ["old.whl"]
    assert op.diff("", set()) is not None and op.to_copy == ["a.whl", "b.whl"]


def test_a_file_is_written_when_missing_changed_or_of_another_mode() -> None:
    op = FileOp("config", "testbed.yaml", "/p/testbed.yaml", data=b"x: 1\n", mode=0o600)
    assert op.diff("", set()) == "write testbed.yaml"
    same = f"{op.sha}  /p/testbed.yaml\n600 /p/testbed.yaml"
    assert op.diff(same, set()) is None
    assert op.diff(same.replace("600", "644"), set()) == "chmod 600 testbed.yaml"
    assert op.diff(f"{'0' * 64}  /p/testbed.yaml\n600 /p/testbed.yaml", set()).startswith("update")


# ------------------------------------------------------------------------ artifacts


def test_wheels_for_another_machine_are_asked_for_by_platform() -> None:
    reqs = requirements(("cpu",))
    assert any(r.startswith("onnxruntime") for r in reqs) and any("grpcio" in r for r in reqs)
    assert not any(r.startswith("torch") for r in reqs)
    here = Target(platform.machine(), f"{sys.version_info[0]}.{sys.version_info[1]}",
                  platform.libc_ver()[1], ("cpu",))  # fmt: skip
    assert _platform_flags(here) == []
    board = _platform_flags(Target("aarch64", "3.11", "2.31", ("cpu",)))
    assert "manylinux2014_aarch64" in board and "manylinux_2_31_aarch64" in board
    assert "manylinux_2_32_aarch64" not in board and board[:2] == ["--python-version", "3.11"]


# ------------------------------------------------------------------------ command line


def test_deploy_help_starts_with_what_it_does_and_shows_examples(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["deploy", "--help"])
    out = capsys.readouterr().out
    assert "\nInstall and start the bench's daemons" in out and "testbed deploy --status" in out


def test_deploy_without_hosts_or_with_an_unknown_host_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["deploy", "--status"]) == 2
    assert "inventory.hosts" in capsys.readouterr().err
    (tmp_path / "inventory.yaml").write_text(json.dumps({"hosts": bench()["inventory"]["hosts"]}))
    (tmp_path / "testbed.yaml").write_text(json.dumps({k: v for k, v in bench().items()
                                                       if k != "inventory"}))  # fmt: skip
    assert main(["deploy", "--inventory", "inventory.yaml", "--hosts", "nope", "--stop"]) == 3
    assert "no host nope" in capsys.readouterr().err
    assert main(["deploy", "--inventory", "inventory.yaml", "--json"]) == 3
    assert "--json goes with --status" in capsys.readouterr().err
    assert main(["deploy", "--inventory", "inventory.yaml", "--logs", "agent-9"]) == 3
    assert "no host runs agent-9" in capsys.readouterr().err


def test_an_unreachable_host_is_reported_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = bench(deploy={"connect_timeout_s": 2.0, "known_hosts": str(tmp_path / "kh")})
    data["inventory"]["hosts"][0].update(address="127.0.0.1", ssh_port=_closed_port())
    data["inventory"]["hosts"] = data["inventory"]["hosts"][:1]
    data["inventory"]["hosts"][0]["nodes"] = ["cloud", "edge-0", "agent-0", "agent-1"]
    (tmp_path / "testbed.yaml").write_text(json.dumps(data))
    started = time.monotonic()
    assert main(["deploy", "--stop"]) == 18
    assert "[board-1] FAILED: unreachable: connection refused" in capsys.readouterr().err
    assert time.monotonic() - started < 10


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------ the plan


def test_a_systemd_hosts_plan_writes_units_retires_old_nodes_and_lists_what_it_made(
    tmp_path: Path,
) -> None:
    from coordinator.deploy.facts import PythonChoice
    from coordinator.deploy.plan import Artifacts, HostPlan, build_operations
    from coordinator.deploy.services import DaemonTargets, SystemdManager

    cfg = config_from_dict(bench())
    wheel, house = tmp_path / "aigc_testbed-0.1.0-py3-none-any.whl", tmp_path / "house"
    wheel.write_bytes(b"wheel")
    house.mkdir()
    (house / "pip-24.0-py3-none-any.whl").write_bytes(b"pip")
    host = cfg.inventory.hosts[1]  # server-1: the cloud (it needs the zoo) and edge-0
    layout = HostLayout("/opt/testbed")
    manager = SystemdManager(layout, cfg.deploy, user="root", home="/root")
    python = PythonChoice("/usr/bin/python3.11", "3.11.9", False, "own")
    plan = HostPlan(host, layout, host_slots(cfg, host), manager, python, [Extra.GPU])
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "catalog.json").write_text("{}")
    art = Artifacts(wheel, "0.1.0", "k" * 64, house, zoo)
    build_operations(plan, cfg, art, DaemonTargets("mqtt://10.0.0.2:1883", "10.0.0.1:50051"),
                     {"cloud": "cloud", "agent-7": "agent"})  # fmt: skip
    keys = [op.key for op in plan.operations]
    assert keys[:4] == ["dirs", "wheel", "wheelhouse", "venv"]
    assert "unit:cloud" in keys and "unit:edge-0" in keys and "supervisor" not in keys
    assert keys.index("retire:agent-7") < keys.index("service:cloud") and keys[-1] == "manifest"
    units = [op for op in plan.operations if op.key.startswith("unit:")]
    assert {op.remote for op in units} == {  # type: ignore[attr-defined]
        "/etc/systemd/system/testbed-cloud.service",
        "/etc/systemd/system/testbed-edge-0.service",
    }
    manifest = json.loads(plan.operations[-1].data)  # type: ignore[attr-defined]
    assert manifest["manager"] == "systemd" and manifest["nodes"] == {
        "cloud": "cloud",
        "edge-0": "edge",
    }
    assert "/opt/testbed/venv" in manifest["made"] and len(manifest["units"]) == 2
