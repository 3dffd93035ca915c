"""`testbed up` with an output folder it cannot write, or a configured port already
taken: a clear error naming the folder or the port, the documented exit code, no
traceback, nothing left running."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from testbed.exit_codes import ExitCode

ROOT = Path(__file__).resolve().parents[2]


def bench_config(tmp_path: Path, tiny_zoo: Path, **sections: object) -> Path:
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "tiny").symlink_to(tiny_zoo)
    data = {
        "zoo": {"scale": "tiny", "dir": str(tmp_path / "zoo")},
        "edges": {"count": 1, "energy": {"meter": "estimated"}},
        "agents": {"count": 1, "energy": {"meter": "estimated"}},
        "cloud": {"energy": {"meter": "estimated"}},
        "tasks": {"num_types": 3},
        "run": {"out_dir": str(tmp_path / "runs"), "slots": 1},
        **sections,
    }
    path = tmp_path / "testbed.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_up(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "up", "-c", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_an_unwritable_out_dir_is_a_clear_error(tmp_path: Path, tiny_zoo: Path) -> None:
    (tmp_path / "a-file").write_text("in the way")
    out_dir = tmp_path / "a-file" / "runs"
    config = bench_config(tmp_path, tiny_zoo, run={"out_dir": str(out_dir)})
    out = run_up(config)
    assert out.returncode == ExitCode.OUTPUT_UNWRITABLE, out.stderr
    assert str(out_dir) in out.stderr and "run.out_dir" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("where", ["edge", "agent", "broker"])
def test_a_taken_port_is_port_in_use_naming_it(
    tmp_path: Path, tiny_zoo: Path, taken_port: int, where: str
) -> None:
    sections: dict[str, object] = {
        "edge": {"edges": {"count": 1, "energy": {"meter": "estimated"},
                           "nodes": [{"port": taken_port}]}},
        "agent": {"agents": {"count": 1, "energy": {"meter": "estimated"},
                             "nodes": [{"port": taken_port}]}},
        "broker": {"broker": {"port": taken_port}},
    }[where]  # fmt: skip
    out = run_up(bench_config(tmp_path, tiny_zoo, **sections))
    assert out.returncode == ExitCode.PORT_IN_USE, out.stderr
    assert f"127.0.0.1:{taken_port}" in out.stderr and "Traceback" not in out.stderr
