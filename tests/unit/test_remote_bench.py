"""A bench of hosts without processes: the config keys it needs (registry.listen /
advertise, broker.url, emulation.links), where the coordinator finds each node
(coordinator/node_directory.py), the clock offsets registrations carry, and the host
facts nodes announce (testbed/host_facts.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from coordinator.launcher import Launcher
from coordinator.node_directory import NodeDirectory
from coordinator.registry import NodeTable, Registry, _clock_reading
from coordinator.remote_bench import (
    advertised_registry,
    check_remote_config,
    embedded_broker_config,
    remote_config_problems,
)
from testbed import host_facts
from testbed.broker import free_port
from testbed.config import ConfigError, LinkEmulation, TestbedConfig, config_from_dict, load_config
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.registration import CLOCK_FACT, NodeInfo
from testbed.types import NodeKind

REPO = Path(__file__).resolve().parents[2]
LAB = [{"name": "host-1", "address": "198.18.5.2", "nodes": ["cloud", "edge-0"]},
       {"name": "host-2", "address": "198.18.5.3", "nodes": ["agent-0"]}]  # fmt: skip


def bench(**sections: Any) -> TestbedConfig:
    base: dict[str, Any] = {"edges": {"count": 1}, "agents": {"count": 1},
                            "inventory": {"hosts": LAB}}  # fmt: skip
    return config_from_dict({**base, **sections})


# ---------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("value", "mode"),
    [(True, "on"), (False, "off"), ("on", "on"), ("off", "off"), ("auto", "auto")],
)
def test_emulation_links_takes_the_old_booleans_and_three_modes(value: object, mode: str) -> None:
    cfg = config_from_dict({"emulation": {"links": value}})
    assert cfg.emulation.links is LinkEmulation(mode)
    assert config_from_dict(cfg.to_dict()).emulation.links is LinkEmulation(mode)  # round trip


def test_links_are_paced_on_the_embedded_bench_and_not_on_hosts_by_default() -> None:
    default = load_config(REPO / "testbed.yaml", env={})
    assert default.emulation.links is LinkEmulation.AUTO
    assert default.emulation.links_paced(default.inventory.remote)  # as always, locally
    remote = bench()
    assert not remote.emulation.links_paced(remote.inventory.remote)
    forced = bench(emulation={"links": "on"})
    assert forced.emulation.links_paced(forced.inventory.remote)
    with pytest.raises(ConfigError, match=r"emulation\.links"):
        config_from_dict({"emulation": {"links": "sometimes"}})


def test_registry_addresses_are_checked_by_the_schema() -> None:
    with pytest.raises(ConfigError) as bad:
        config_from_dict({"registry": {"listen": "nowhere", "advertise": "198.18.0.1:0"}})
    assert "registry.listen" in str(bad.value) and "registry.advertise" in str(bad.value)
    cfg = config_from_dict({"registry": {"listen": "[::]:50051", "advertise": "10.0.0.1:50051"}})
    assert advertised_registry(cfg, 50051) == "10.0.0.1:50051"
    assert advertised_registry(TestbedConfig(), 41234) == "127.0.0.1:41234"  # local default


def test_a_bench_of_hosts_needs_addresses_its_hosts_reach() -> None:
    assert remote_config_problems(TestbedConfig()) == []  # the embedded bench: nothing asked
    keys = [key for key, _ in remote_config_problems(bench())]
    assert keys == ["registry.listen", "registry.listen", "registry.advertise", "broker.url"]
    with pytest.raises(TestbedExit) as exc:
        check_remote_config(bench())
    assert exc.value.code is ExitCode.CONFIG_INVALID and "registry.listen" in exc.value.message
    wildcard = bench(registry={"listen": "0.0.0.0:50051"}, broker={"url": "mqtt://198.18.5.1:1883"})
    assert [k for k, _ in remote_config_problems(wildcard)] == ["registry.advertise"]
    ready = bench(registry={"listen": "0.0.0.0:50051", "advertise": "198.18.5.1:50051"},
                  broker={"url": "mqtt://198.18.5.1:1883"})  # fmt: skip
    assert remote_config_problems(ready) == []
    local_hosts = [{**h, "address": "127.0.0.1"} for h in LAB]  # hosts of this machine
    loopback = bench(inventory={"hosts": local_hosts}, registry={"listen": "127.0.0.1:50051"},
                     broker={"url": "mqtt://127.0.0.1:1883"})  # fmt: skip
    assert remote_config_problems(loopback) == []


def test_the_broker_a_bench_of_hosts_uses() -> None:
    assert embedded_broker_config(TestbedConfig()) == TestbedConfig().broker  # embedded
    external = config_from_dict({"broker": {"url": "mqtt://127.0.0.1:1883"}})
    assert embedded_broker_config(external) is None  # local bench: broker.url is someone's
    port = free_port()
    mine = bench(broker={"url": f"mqtt://127.0.0.1:{port}", "host": "0.0.0.0"})
    started = embedded_broker_config(mine)  # this machine's address, nothing there: serve it
    assert started is not None
    assert (started.host, started.port, started.url) == ("0.0.0.0", port, None)
    elsewhere = bench(broker={"url": "mqtt://192.0.2.7:1883"})  # TEST-NET-1: not this machine
    assert embedded_broker_config(elsewhere) is None


# ---------------------------------------------------------------------------- directory


def directory(tmp_path: Path, cfg: TestbedConfig) -> NodeDirectory:
    registry = Registry(NodeTable(cfg.registry))
    launcher = Launcher(cfg, tmp_path / "run", tmp_path / "testbed.yaml", zoo_dir=tmp_path)
    return NodeDirectory(cfg, registry, launcher)


def test_nodes_are_where_they_registered_and_a_wildcard_is_their_host(tmp_path: Path) -> None:
    nodes = directory(tmp_path, bench())
    nodes.table.register(NodeInfo("edge-0", NodeKind.EDGE, "0.0.0.0:50501"))
    nodes.table.register(NodeInfo("agent-0", NodeKind.AGENT, "198.18.5.3:51000"))
    assert nodes.address("edge-0") == "198.18.5.2:50501"  # listens everywhere: its host's
    assert nodes.address("agent-0") == "198.18.5.3:51000"
    assert nodes.address("cloud") == "" and not nodes.alive("cloud")
    assert nodes.alive("edge-0")
    assert nodes.missing(["cloud", "edge-0", "agent-0"]) == "cloud (host host-1 at 198.18.5.2)"
    where = nodes.locate("agent-0")
    assert (where.host, where.host_address) == ("host-2", "198.18.5.3")
    described = nodes.describe()
    assert described["edge-0"]["host"] == "host-1" and described["edge-0"]["state"] == "alive"
    assert described["cloud"] == {"host": "host-1", "address": ""}


def test_nodes_of_the_embedded_bench_are_the_launchers(tmp_path: Path) -> None:
    nodes = directory(tmp_path, TestbedConfig())
    nodes.table.register(NodeInfo("edge-0", NodeKind.EDGE, "127.0.0.1:50501"))
    assert nodes.address("edge-0") == ""  # the launcher's processes decide: none started
    assert not nodes.alive("edge-0") and nodes.describe() == {}
    assert nodes.locate("edge-0").host == "localhost"


def test_a_registration_carries_the_nodes_clock() -> None:
    info = NodeInfo("agent-0", NodeKind.AGENT, "127.0.0.1:1", facts={
        "host": "board", CLOCK_FACT: f"{time.time() + 2.5:.6f}"})  # fmt: skip
    stored, offset_s = _clock_reading(info)
    assert stored.facts == {"host": "board"}  # the table keeps what the node said of itself
    assert offset_s is not None and 2.4 < offset_s <= 2.5
    for bad in ("soon", "nan", "inf"):
        assert (
            _clock_reading(NodeInfo("agent-0", NodeKind.AGENT, facts={CLOCK_FACT: bad}))[1] is None
        )


# ---------------------------------------------------------------------------- host facts


def test_a_node_announces_its_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = host_facts.announced_host_facts()
    assert facts["python"] and "grpcio=" in facts["packages"]
    assert "l4t_release" not in facts or facts["l4t_release"]  # only where the file is
    tegra = tmp_path / "nv_tegra_release"
    tegra.write_text("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref\nmore\n")
    devfreq = tmp_path / "devfreq"
    (devfreq / "17000000.gv11b").mkdir(parents=True)
    (devfreq / "17000000.gv11b" / "cur_freq").write_text("1109250000\n")
    monkeypatch.setattr(host_facts, "TEGRA_RELEASE", tegra)
    monkeypatch.setattr(host_facts, "DEVFREQ", devfreq)
    jetson = host_facts.announced_host_facts()
    assert jetson["l4t_release"] == "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref"
    assert "17000000.gv11b=1109" in jetson["clocks"]
    assert all(len(v) <= host_facts.FACT_MAX_LEN for v in jetson.values())
