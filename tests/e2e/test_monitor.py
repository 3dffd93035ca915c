"""`testbed up` leaves `telemetry.jsonl`, and `testbed monitor --replay RUN --once --json`
reproduces the run's nodes and the edges' final cached models from it
(coordinator/monitor/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_up import bench_config, run_testbed

pytestmark = pytest.mark.slow


def _last_cached_models(recording: Path) -> dict[str, set[str]]:
    """Per edge, the models its last edge state or cache telemetry named."""
    out: dict[str, set[str]] = {}
    for raw in recording.read_text().splitlines():
        payload = json.loads(raw)["payload"]
        if not isinstance(payload, dict):
            continue
        if payload.get("schema") == "edge-state/v1":
            out[payload["edge_id"]] = {c["model"]["model_id"] for c in payload["cached"]}
        elif payload.get("schema") == "telemetry/v1" and "cache" in payload:
            out[payload["node_id"]] = set(payload["cache"]["model_ids"])
    return out


def test_up_records_telemetry_and_replay_reproduces_it(tmp_path: Path, tiny_zoo: Path) -> None:
    config = bench_config(tmp_path, tiny_zoo)
    up = run_testbed("up", "-c", str(config), "--slots", "3")
    assert up.returncode == 0, up.stdout + up.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    recording = run_dir / "telemetry.jsonl"
    lines = [json.loads(line) for line in recording.read_text().splitlines()]
    assert lines and {"received_unix_s", "topic", "payload"} <= set(lines[0])
    assert any(line["topic"].endswith("/status") for line in lines)

    out = run_testbed("monitor", "-c", str(config), "--replay", str(run_dir), "--once", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    snapshot = json.loads(out.stdout)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert set(manifest["nodes"]) <= set(snapshot["nodes"])
    want = _last_cached_models(recording)
    assert set(want) == {"edge-0", "edge-1"}
    got = {e: set(v["cached_models"]) for e, v in snapshot["edges"].items()}
    assert got == want
