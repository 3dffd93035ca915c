"""An interrupted `testbed up` keeps every slot it finished: Ctrl-C and SIGTERM record
the slot in flight as interrupted and say where in the summary; a coordinator killed
outright (SIGKILL) loses at most the slot in flight. An interrupted `testbed eval` keeps
the evaluations it finished."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.processes import default_sigint
from tests.waiting import wait_until
from tests.zoo_fixtures import tiny_bench

from .test_up import ROOT, bench_config

pytestmark = pytest.mark.slow
AGENTS = ("agent-0", "agent-1", "agent-2")


def _start(config: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "coordinator.cli", "up", "-c", str(config), "--slots", "100000"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=default_sigint,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("run folder: "):
            return proc, Path(line.removeprefix("run folder: ").strip())
    proc.kill()
    raise AssertionError(f"no run folder in the output (exit {proc.wait()})")


def _rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "tasks.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _last_slot(run_dir: Path) -> int:
    try:
        last = json.loads((run_dir / "summary.json").read_text())["last_slot"]
    except (OSError, ValueError, KeyError):
        return -1
    return -1 if last is None else int(last)


def _run_until_slots(config: Path, slots: int) -> tuple[subprocess.Popen[str], Path]:
    proc, run_dir = _start(config)
    ok = wait_until(lambda: _last_slot(run_dir) >= slots - 1, timeout_s=180)
    if not ok:
        proc.kill()
    assert ok, f"fewer than {slots} slots recorded in {run_dir}"
    return proc, run_dir


def _assert_one_record_per_task(rows: list[dict[str, str]], last_slot: int) -> None:
    ids = [r["task_id"] for r in rows]
    assert len(ids) == len(set(ids)), "a task recorded twice"
    per_slot = Counter((r["agent_id"], int(r["slot"])) for r in rows)
    for agent in AGENTS:
        for slot in range(last_slot + 1):
            assert per_slot[(agent, slot)] == 1, (agent, slot)
    assert all(int(r["slot"]) <= last_slot + 1 for r in rows)  # + the slot in flight
    assert all(n == 1 for n in per_slot.values())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_keeps_its_finished_slots(
    tmp_path: Path, tiny_zoo: Path, sig: signal.Signals
) -> None:
    proc, run_dir = _run_until_slots(bench_config(tmp_path, tiny_zoo), 3)
    proc.send_signal(sig)
    output = proc.communicate(timeout=90)[0]
    assert proc.returncode == 130, output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    last = summary["last_slot"]
    assert last >= 2 and summary["interrupted_in_slot"] == last + 1
    rows = _rows(run_dir)
    _assert_one_record_per_task(rows, last)
    assert summary["tasks"] == len(rows)
    stopped = [r for r in rows if r["reason"] == "interrupted"]
    assert all(int(r["slot"]) == last + 1 for r in stopped)
    with open(run_dir / "slots.csv", newline="") as f:
        assert [int(r["slot"]) for r in csv.DictReader(f)] == list(range(last + 1))
    assert f"kept slots 0-{last}" in output and "Traceback" not in output


def test_a_killed_coordinator_loses_at_most_the_slot_in_flight(
    tmp_path: Path, tiny_zoo: Path
) -> None:
    proc, run_dir = _run_until_slots(bench_config(tmp_path, tiny_zoo), 3)
    proc.kill()
    proc.wait(30)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "running" and summary["last_slot"] >= 2
    rows = _rows(run_dir)
    assert all(r["outcome"] in ("completed", "failed") and r["reason"] for r in rows)
    _assert_one_record_per_task(rows, summary["last_slot"])
    assert summary["tasks"] <= len(rows) <= summary["tasks"] + len(AGENTS)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_eval_keeps_the_evaluations_it_finished(
    tmp_path: Path, tiny_zoo: Path, sig: signal.Signals
) -> None:
    config = tmp_path / "testbed.yaml"
    config.write_text(
        yaml.safe_dump(tiny_bench(tmp_path, tiny_zoo, run={"out_dir": str(tmp_path / "runs")}))
    )
    seeds = ",".join(str(s) for s in range(50))  # far more than it runs before the stop
    proc = subprocess.Popen(
        [sys.executable, "-m", "coordinator.cli", "eval", "-c", str(config), "--backend",
         "twin", "--policies", "greedy,local", "--seeds", seeds, "--slots", "200"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=default_sigint,
    )  # fmt: skip

    def finished() -> list[dict[str, object]]:
        for path in (tmp_path / "runs").glob("*/eval.json"):
            try:
                return list(json.loads(path.read_text())["results"])
            except (OSError, ValueError):  # being replaced
                pass
        return []

    deadline = time.monotonic() + 120
    while not finished() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, out
    (run_dir,) = (tmp_path / "runs").iterdir()
    doc = json.loads((run_dir / "eval.json").read_text())
    assert doc["status"] == "interrupted"
    kept = [(r["policy"], r["seed"]) for r in doc["results"]]
    assert 1 <= len(kept) < 100, out
    assert kept == [(p, s) for s in range(50) for p in ("greedy", "local")][: len(kept)]
    assert f"interrupted: {len(kept)} evaluation(s) kept in {run_dir}/eval.json" in out
