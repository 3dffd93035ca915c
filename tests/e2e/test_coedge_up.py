"""`testbed up` on the live §B bench as a user runs it (examples/coedge-live.yaml on the
tiny zoo): the run folder's tasks, shares and clocked slots, and SIGTERM mid-run."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from coordinator.coedge_shares import CLOCKED_SLOT_FIELDS, SHARE_FIELDS
from testbed.coedge.tasks import slot_tasks
from testbed.config import load_config
from tests.processes import default_sigint
from tests.waiting import wait_until

from .test_up import ROOT, run_testbed

pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "examples" / "coedge-live.yaml"


def coedge_config(tmp_path: Path, tiny_zoo: Path, **run: object) -> Path:
    """The example on the tiny zoo (its cgan-s is ~10x cheaper: tasks of ~170 units),
    energy estimated, every task arriving, slots of 0.5 s."""
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "tiny").symlink_to(tiny_zoo)
    data = yaml.safe_load(EXAMPLE.read_text())
    data["zoo"] = {"scale": "tiny", "dir": str(tmp_path / "zoo")}
    for section in ("edges", "agents", "cloud"):
        data.setdefault(section, {})["energy"] = {"meter": "estimated"}
    data["coedge"] |= {"arrival_prob": 1.0, "slot_s": 0.5}
    data["run"] |= {"out_dir": str(tmp_path / "runs"), **run}
    path = tmp_path / "testbed.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def owed(config: Path, slots: range) -> set[str]:
    cfg = load_config(config, env={})
    return {
        t.task_id
        for spec in cfg.agent_specs()
        for slot in slots
        for t in slot_tasks(cfg, cfg.seed, spec.id, slot)
    }


def check_shares(tasks: list[dict[str, str]], shares: list[dict[str, str]]) -> None:
    """shares.csv: every completed task's shares sum to 1 and to its units, its latency
    is the later finish, its edge_id names the edges that got units."""
    by_task = defaultdict(list)
    for share in shares:
        by_task[share["task_id"]].append(share)
    for task in tasks:
        if task["outcome"] != "completed":
            continue
        mine = by_task[task["task_id"]]
        assert mine, task["task_id"]
        assert sum(float(s["share"]) for s in mine) == pytest.approx(1.0, abs=1e-6)
        assert sum(int(s["units"]) for s in mine) == int(task["units"])
        assert task["edge_id"] == "+".join(s["edge_id"] for s in mine)
        later = max(float(s["finish_ms"]) for s in mine)
        assert float(task["latency_ms"]) == pytest.approx(later, abs=1.0)


def test_up_runs_the_coedge_bench_and_writes_its_run_folder(tmp_path: Path, tiny_zoo: Path) -> None:
    config = coedge_config(tmp_path, tiny_zoo)
    out = run_testbed("up", "-c", str(config), "--slots", "4")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "clocked slots of 0.5 s; policy split-all" in out.stdout
    assert "§B             mean delay" in out.stdout and "shares.csv" in out.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    tasks, shares = rows(run_dir / "tasks.csv"), rows(run_dir / "shares.csv")
    ids = [t["task_id"] for t in tasks]
    assert len(ids) == len(set(ids)) and set(ids) == owed(config, range(4))
    assert all(t["outcome"] == "completed" for t in tasks)
    assert list(shares[0]) == SHARE_FIELDS
    check_shares(tasks, shares)
    assert any(t["edge_id"].count("+") >= 1 for t in tasks), "split-all split no task"
    slots = rows(run_dir / "slots.csv")
    assert list(slots[0]) == CLOCKED_SLOT_FIELDS
    assert [float(s["planned_start_s"]) for s in slots] == [0.0, 0.5, 1.0, 1.5]
    assert [int(s["drawn"]) for s in slots] == [2 * 3] * 4
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["tasks"] == len(tasks)
    assert summary["system"] == "coedge" and summary["slot_mode"] == "clocked"
    assert summary["coedge"]["share_finish_spread_ms"]["tasks"] > 0


def test_sigterm_records_what_is_in_flight_as_interrupted(tmp_path: Path, tiny_zoo: Path) -> None:
    config = coedge_config(tmp_path, tiny_zoo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "coordinator.cli", "up", "-c", str(config), "--slots", "100000"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=default_sigint,
    )  # fmt: skip
    summary_path: list[Path] = []

    def slots_done(n: int) -> bool:
        runs = list((tmp_path / "runs").glob("*/summary.json"))
        if not runs:
            return False
        summary_path[:] = runs
        last = json.loads(runs[0].read_text()).get("last_slot")
        return last is not None and last >= n - 1

    ok = wait_until(lambda: slots_done(3), timeout_s=180)
    if not ok:
        proc.kill()
    assert ok, "fewer than 3 slots recorded"
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=90)[0]
    assert proc.returncode == 130, output
    summary = json.loads(summary_path[0].read_text())
    assert summary["status"] == "interrupted"
    last = summary["last_slot"]
    assert summary["interrupted_in_slot"] == last + 1
    tasks = rows(summary_path[0].parent / "tasks.csv")
    ids = [t["task_id"] for t in tasks]
    # every task drawn up to the last finished slot, and maybe the slot in flight
    assert len(ids) == len(set(ids)) and summary["tasks"] == len(tasks)
    assert owed(config, range(last + 1)) <= set(ids) <= owed(config, range(last + 2))
    assert all(t["outcome"] == "completed" or t["reason"] == "interrupted" for t in tasks)
    check_shares(tasks, rows(summary_path[0].parent / "shares.csv"))
    assert "Traceback" not in output
