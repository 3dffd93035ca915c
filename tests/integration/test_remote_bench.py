"""A bench of hosts (`inventory:`, docs/bench-of-hosts.md): the coordinator starts no
node, waits until every node of the inventory has registered, and drives them as it
drives its own.

First without SSH: the "hosts" are this machine (127.0.0.1) and the test starts the
daemons itself, with their own CLIs, before the coordinator (tests/integration/
remote_nodes.py). Then on a lab of namespaced hosts with real sshd, deployed with
`testbed deploy` (tests/lab_fixtures.py): test_lab_bench.py.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordinator.live import LiveBench
from coordinator.policy_choice import PolicySource
from coordinator.run_folder import write_config
from testbed.broker import EmbeddedBroker, free_port
from testbed.config import BrokerConfig, TestbedConfig, load_config
from testbed.daemon import PARENT_ENV
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.types import Outcome
from tests.waiting import wait_until

from .harness import write_config as write_test_config
from .remote_nodes import DeployedNodes

pytestmark = pytest.mark.slow

HOSTS = {"host-a": ["cloud", "edge-0", "edge-1"], "host-b": ["agent-0", "agent-1"]}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """The bench's broker, run by someone else (as a broker service would be)."""
    with EmbeddedBroker.start(BrokerConfig(), tmp_path / "broker") as running:
        yield running


def remote_config(tmp_path: Path, zoo: Path, broker_url: str, hosts: dict[str, list[str]],
                  **sections: Any) -> tuple[Path, TestbedConfig]:  # fmt: skip
    """A bench of hosts on 127.0.0.1: the registry on a fixed port, SSH on a port
    nothing serves (no logs to fetch: the run must not care)."""
    closed_port = free_port()
    inventory = {"hosts": [
        {"name": name, "address": "127.0.0.1", "ssh_port": closed_port, "nodes": nodes}
        for name, nodes in hosts.items()
    ]}  # fmt: skip
    sections.setdefault("edges", {
        "count": 2, "cache_capacity_mb": 8.0, "energy": {"meter": "estimated"},
        "nodes": [{"preload": ["diffusion-s"]}, {"preload": ["cgan-s"]}],
    })  # fmt: skip
    sections.setdefault("agents", {"count": 2, "energy": {"meter": "estimated"}})
    path = write_test_config(
        tmp_path / "testbed.yaml", broker_url, zoo, inventory=inventory,
        registry={"listen": f"127.0.0.1:{free_port()}", "heartbeat_interval_s": 0.3},
        deploy={"known_hosts": str(tmp_path / "known_hosts"), "connect_timeout_s": 2.0},
        tasks={"num_types": 3, "flops_per_cycle": 1.0}, **sections,
    )  # fmt: skip
    return path, load_config(path, env={})


def new_bench(tmp_path: Path, cfg: TestbedConfig, zoo: Path) -> LiveBench:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return LiveBench(cfg, run_dir, write_config(run_dir, cfg), zoo)


def test_the_coordinator_drives_nodes_it_did_not_start(
    tmp_path: Path, tiny_zoo: Path, broker: EmbeddedBroker
) -> None:
    path, cfg = remote_config(tmp_path, tiny_zoo, broker.url, HOSTS)
    assert not cfg.emulation.links_paced(cfg.inventory.remote)  # real networks: no pacing
    nodes = DeployedNodes(path, tiny_zoo, cfg.registry.listen, broker.url, tmp_path / "hosts")
    try:
        # deployed services start before the coordinator and wait for it, past their
        # own start timeout (1 s here)
        nodes.start_bench(cfg.node_ids(), "--set", "run.start_timeout_s=1")
        assert wait_until(
            lambda: all("not reachable" in nodes.log(n) for n in cfg.node_ids()), 60
        ), {n: nodes.log(n)[-600:] for n in cfg.node_ids()}
        time.sleep(1.5)
        assert sorted(nodes.running()) == sorted(cfg.node_ids())
        with new_bench(tmp_path, cfg, tiny_zoo) as bench:
            bench.start(PolicySource("greedy"))
            assert not bench.launcher.nodes and bench.launcher.broker is None  # none started
            for node_id in cfg.node_ids():
                assert bench.nodes.address(node_id).startswith("127.0.0.1:")
                assert bench.nodes.alive(node_id)
            results = [bench.step(slot) for slot in range(3)]
            records = [r for res in results for r in res.records] + bench.drain()
            ids = Counter(r.task_id for r in records)
            assert len(records) == 2 * 3 and set(ids.values()) == {1}  # one record per task
            failures = Counter(r.reason.value for r in records if r.outcome is Outcome.FAILED)
            assert all(r.outcome is Outcome.COMPLETED for r in records), failures
            assert any(r.edge_id for r in records)  # greedy offloads to an edge holding the model
        manifest = json.loads((bench.run_dir / "manifest.json").read_text())
        host_a, host_b = manifest["hosts"]["host-a"], manifest["hosts"]["host-b"]
        assert host_a["nodes"] == HOSTS["host-a"] and host_b["registered"] == HOSTS["host-b"]
        assert host_a["python"] == platform.python_version() and "grpcio=" in host_a["packages"]
        assert abs(host_b["clock_offset_ms"]) < 1000  # the same clock, off by the delivery time
        assert manifest["nodes"]["agent-1"]["host"] == "host-b"
        # the services outlive the run: the coordinator stops none of them
        assert sorted(nodes.running()) == sorted(cfg.node_ids())
    finally:
        nodes.stop()


def test_a_node_that_never_registers_is_named_with_its_host(tmp_path: Path, tiny_zoo: Path) -> None:
    broker_url = f"mqtt://127.0.0.1:{free_port()}"  # nothing there: the coordinator serves it
    hosts = {"host-a": ["cloud", "edge-0"], "host-b": ["agent-0"]}
    path, cfg = remote_config(
        tmp_path, tiny_zoo, broker_url, hosts, edges={"count": 1, "energy": {"meter": "estimated"}},
        agents={"count": 1, "energy": {"meter": "estimated"}}, run={"start_timeout_s": 12.0},
    )  # fmt: skip
    nodes = DeployedNodes(path, tiny_zoo, cfg.registry.listen, broker_url, tmp_path / "hosts")
    try:
        with new_bench(tmp_path, cfg, tiny_zoo) as bench:
            nodes.start("cloud")  # they find the broker once the coordinator has started it
            nodes.start("edge-0")
            with pytest.raises(TestbedExit) as failed:
                bench.start(PolicySource("greedy"))
            assert bench.launcher.broker is not None and bench.launcher.broker_url == broker_url
            assert not bench.launcher.nodes  # it started no node
        assert failed.value.code is ExitCode.NODE_START_FAILED
        message = failed.value.message
        assert "agent-0 (host host-b at 127.0.0.1)" in message, message
        assert "run.start_timeout_s" in message and "edge-0" not in message, message
    finally:
        nodes.stop()


def test_a_node_of_the_embedded_bench_still_gives_up_on_an_absent_registry(
    tmp_path: Path, tiny_zoo: Path, broker: EmbeddedBroker
) -> None:
    """The local default: the launcher starts its nodes after its registry, so one that
    cannot register by run.start_timeout_s has failed (NODE_START_FAILED), as before."""
    path = write_test_config(tmp_path / "testbed.yaml", broker.url, tiny_zoo,
                             run={"start_timeout_s": 1.0})  # fmt: skip
    argv = [sys.executable, "-m", "cloud_node", "-c", str(path), "--zoo", str(tiny_zoo),
            "--registry", f"127.0.0.1:{free_port()}"]  # fmt: skip
    env = {**os.environ, PARENT_ENV: str(os.getpid())}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == ExitCode.NODE_START_FAILED, done.stderr[-1000:]
    assert "cannot register" in done.stderr


def test_up_eval_and_calibrate_one_after_the_other_on_the_same_deployed_nodes(
    tmp_path: Path, tiny_zoo: Path, broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commands as a user runs them: the services outlive each run and register
    with the next coordinator by themselves."""
    from coordinator.cli import main as run_cli

    zoo = tmp_path / "zoo" / "tiny"  # where the command looks: <zoo.dir>/<zoo.scale>
    zoo.parent.mkdir()
    zoo.symlink_to(tiny_zoo)
    path, cfg = remote_config(tmp_path, zoo, broker.url, HOSTS,
                              run={"out_dir": str(tmp_path / "runs")})  # fmt: skip
    nodes = DeployedNodes(path, tiny_zoo, cfg.registry.listen, broker.url, tmp_path / "hosts")
    try:
        nodes.start_bench(cfg.node_ids())
        for run in range(2):  # `testbed up` twice
            capsys.readouterr()
            code = run_cli(["up", "-c", str(path), "--slots", "2", "--policy", "greedy", "--json"])
            out, err = capsys.readouterr()
            assert code == 0, err[-2000:]
            summary = json.loads(out)
            assert summary["tasks"] == 2 * 2 and summary["completed"] == 4, (run, summary)
            assert "waiting for its 5 node(s) to register" in err
            assert sorted(summary["nodes"]) == sorted(cfg.node_ids())
        runs = sorted((tmp_path / "runs").iterdir())
        assert len(runs) == 2
        manifest = json.loads((runs[-1] / "manifest.json").read_text())
        assert set(manifest["hosts"]) == set(HOSTS)
        assert "clock_offset_ms" in manifest["hosts"]["host-a"]
        evals = ["eval", "-c", str(path), "--policies", "greedy,local", "--backend", "live",
                 "--seeds", "0", "--slots", "2", "--json"]  # fmt: skip
        assert run_cli(evals) == 0, capsys.readouterr().err[-2000:]
        results = json.loads(capsys.readouterr().out)["results"]
        assert [r["completion_rate"] for r in results] == [1.0, 1.0]
        out = tmp_path / "calibration.json"
        calibrate = ["calibrate", "-c", str(path), "--slots", "2", "--repeats", "1",
                     "--out", str(out)]  # fmt: skip
        assert run_cli(calibrate) == 0, capsys.readouterr().err[-2000:]
        assert json.loads(out.read_text())["bench"]["slots"] == 2
    finally:
        nodes.stop()


def test_a_waiting_node_stops_at_once_on_sigterm(
    tmp_path: Path, tiny_zoo: Path, broker: EmbeddedBroker
) -> None:
    """A deployed service waits for the coordinator without a deadline, but a stop
    (systemd, deploy --stop) ends the wait at once, cleanly."""
    path, cfg = remote_config(tmp_path, tiny_zoo, broker.url, HOSTS)
    nodes = DeployedNodes(path, tiny_zoo, cfg.registry.listen, broker.url, tmp_path / "hosts")
    try:
        proc = nodes.start("agent-0")
        assert wait_until(lambda: "not reachable" in nodes.log("agent-0"), 60), nodes.log("agent-0")
        t0 = time.monotonic()
        proc.terminate()
        assert proc.wait(10) == 0, nodes.log("agent-0")[-1500:]
        assert time.monotonic() - t0 < 5
    finally:
        nodes.stop()
