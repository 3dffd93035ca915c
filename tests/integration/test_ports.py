"""A configured port that is already taken ends the start with PORT_IN_USE naming the
port (docs/cli.md, exit 8), whether the launcher sees it before starting anything or
the node finds out when it binds (real processes: broker, edge)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordinator.launcher import Launcher
from testbed.broker import EmbeddedBroker, port_in_use
from testbed.config import BrokerConfig, load_config
from testbed.exit_codes import ExitCode, TestbedExit
from tests.integration.harness import write_config


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on for the whole test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _launcher(tmp_path: Path, zoo: Path, broker_url: str | None, **sections: object) -> Launcher:
    path = write_config(tmp_path / "t.yaml", broker_url, zoo, **sections)
    return Launcher(load_config(path, env={}), tmp_path / "run", path, zoo_dir=zoo)


def test_port_in_use_sees_a_listener_and_not_a_free_port(taken_port: int) -> None:
    assert port_in_use("127.0.0.1", taken_port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    assert not port_in_use("127.0.0.1", free)


def test_the_launcher_checks_configured_ports_before_starting_anything(
    tmp_path: Path, tiny_zoo: Path, taken_port: int
) -> None:
    edges = {"count": 2, "nodes": [{}, {"port": taken_port}]}
    launcher = _launcher(tmp_path, tiny_zoo, None, edges=edges)
    with pytest.raises(TestbedExit) as info:
        launcher.start_broker()
    assert info.value.code is ExitCode.PORT_IN_USE
    assert f"127.0.0.1:{taken_port}" in info.value.message
    assert "edge-1" in info.value.message and "edges.nodes[1].port" in info.value.message
    assert launcher.broker is None and not launcher.nodes  # nothing was started


def test_a_taken_broker_port_is_port_in_use(
    tmp_path: Path, tiny_zoo: Path, taken_port: int
) -> None:
    launcher = _launcher(tmp_path, tiny_zoo, None, broker={"url": None, "port": taken_port})
    with pytest.raises(TestbedExit) as info:
        launcher.start_broker()
    assert info.value.code is ExitCode.PORT_IN_USE
    assert str(taken_port) in info.value.message and "broker.port" in info.value.message


def test_a_node_that_cannot_bind_exits_port_in_use_and_so_does_the_start(
    tmp_path: Path, tiny_zoo: Path, taken_port: int
) -> None:
    # the port is taken after the launcher's check: the edge itself finds out
    with EmbeddedBroker.start(BrokerConfig(), tmp_path / "broker") as broker:
        edges = {"nodes": [{"port": taken_port}]}
        launcher = _launcher(tmp_path, tiny_zoo, broker.url, edges=edges)
        try:
            edge = launcher.start_edge(launcher.cfg.edge_specs()[0])
            with pytest.raises(TestbedExit) as info:
                launcher.wait_ready([edge])
        finally:
            launcher.stop_all()
    assert edge.proc is not None and edge.proc.returncode == ExitCode.PORT_IN_USE
    assert info.value.code is ExitCode.PORT_IN_USE
    assert f"127.0.0.1:{taken_port}" in info.value.message
    assert "Traceback" not in edge.log_tail(5000)
