"""`testbed certs` then `testbed up` over mutual TLS, as a user runs them: subprocesses,
their output, their exit codes (docs/security.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testbed.exit_codes import ExitCode

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, tiny_zoo: Path, certs_dir: Path) -> Path:
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "tiny").symlink_to(tiny_zoo)  # <zoo.dir>/<scale>
    data = {
        "zoo": {"scale": "tiny", "dir": str(tmp_path / "zoo")},
        "edges": {"count": 1, "energy": {"meter": "estimated"}, "nodes": [{"preload": ["ae-s"]}]},
        "agents": {"count": 2, "energy": {"meter": "estimated"}},
        "cloud": {"energy": {"meter": "estimated"}},
        "tasks": {"num_types": 3, "flops_per_cycle": 1.0},
        "run": {"out_dir": str(tmp_path / "runs"), "slots": 2},
        "security": {"grpc_tls": "on", "certs_dir": str(certs_dir)},
    }
    path = tmp_path / "testbed.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _testbed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coordinator.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)  # fmt: skip


def test_certs_then_up_over_mutual_tls(tmp_path: Path, tiny_zoo: Path) -> None:
    certs_dir = tmp_path / "certs"
    config = str(_config(tmp_path, tiny_zoo, certs_dir))
    no_certs = _testbed("up", "-c", config)
    assert no_certs.returncode == ExitCode.CERTIFICATE_INVALID, no_certs.stderr
    assert "testbed certs" in no_certs.stderr
    assert _testbed("certs", "init", "-c", config).returncode == 0
    issued = _testbed("certs", "issue", "--all", "-c", config)
    assert issued.returncode == 0, issued.stderr
    assert "agent-1 (agent): issued" in issued.stdout
    listed = _testbed("certs", "list", "--json", "-c", config)
    rows = json.loads(listed.stdout)["certificates"]
    assert {r["node_id"] for r in rows} == {"coordinator", "cloud", "edge-0", "agent-0", "agent-1"}
    assert all(r["verifies"] for r in rows)
    up = _testbed("up", "-c", config, "--json")
    assert up.returncode == 0, up.stderr[-3000:]
    summary = json.loads(up.stdout)
    assert summary["tasks"] == 4 and summary["completed"] == 4, summary["failure_reasons"]
    for path in (tmp_path / "runs").rglob("*"):  # paths to key files, never a key
        if path.is_file() and path.suffix in (".json", ".yaml", ".csv", ".log"):
            assert "PRIVATE KEY" not in path.read_text(errors="replace"), path
