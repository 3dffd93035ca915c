"""`testbed quality run` on the tiny quality zoo, as a user runs it: a real broker, a
real cloud and one real edge process with the share executor; the coordinator plays
the users, sets each slot's allocation on the edge, and scores every returned sample
with the zoo's evaluator. Every request ends in exactly one record; a zoo whose
quality gate failed is refused before anything starts."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from coordinator.cli import main
from coordinator.quality_stream import draw_requests
from testbed.allocation import matrix_from_config
from testbed.config import AssignmentMethod, load_config
from testbed.exit_codes import ExitCode
from testbed.quality.gate import PASSED_METRIC
from tests.quality_fixtures import tiny_quality_zoo  # noqa: F401

pytest.importorskip("onnxruntime")


def bench_file(folder: Path, zoo: Path, **live: Any) -> Path:
    (folder / "zoo").mkdir(exist_ok=True)
    if not (folder / "zoo" / "tiny").exists():
        (folder / "zoo" / "tiny").symlink_to(zoo)
    data = {
        "zoo": {"scale": "tiny", "dir": str(folder / "zoo")},
        "agents": {"count": 0},
        "edges": {"count": 1, "executor": "shares"},
        "run": {"out_dir": str(folder / "runs")},
        "quality": {"live": {"requests_per_slot": 5, "calibration_requests": 1, **live}},
    }
    path = folder / "quality.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def per_model(cell: str) -> dict[str, str]:
    return dict(part.split("=") for part in cell.split(";"))


def the_run(folder: Path) -> Path:
    (run,) = (folder / "runs").iterdir()
    return run


def test_every_request_is_served_scored_and_recorded_once(
    tiny_quality_zoo: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    path = bench_file(tmp_path, tiny_quality_zoo)
    args = ["quality", "run", "-c", str(path), "--assignment", "random",
            "--allocation", "exhaustive", "--slots", "3"]  # fmt: skip
    assert main(args) == 0
    run = the_run(tmp_path)
    tasks, slots = rows(run / "tasks.csv"), rows(run / "slots.csv")
    cfg = load_config(path, sets=["quality.live.assignment=random"])
    matrix = matrix_from_config(cfg.allocation, AssignmentMethod.RANDOM)
    owed = [r for slot in range(3) for r in draw_requests(cfg, slot, matrix)]
    assert sorted(t["task_id"] for t in tasks) == sorted(r.task_id for r in owed)
    by_id = {r.task_id: r for r in owed}
    for task in tasks:
        assert task["outcome"] == "completed", task
        assert math.isfinite(float(task["score"])) and 0 <= float(task["score"]) <= 100
        assert task["score_method"] == "builtin:digits-eval@1"
        assert len(bytes.fromhex(task["output_sha256"])) == 32
        request = by_id[task["task_id"]]
        assert (task["category"], task["model"]) == (request.category, request.model)
        plan = slots[int(task["slot"])]  # the slot's allocation, as set on the edge
        assert int(task["steps"]) == int(per_model(plan["steps_per_model"])[task["model"]])
        assert float(task["compute_share"]) == float(
            per_model(plan["share_per_model"])[task["model"]]
        )
    assert [int(s["slot"]) for s in slots] == [0, 1, 2]
    for slot in slots:
        shares = [float(v) for v in per_model(slot["share_per_model"]).values()]
        assert sum(shares) <= 1 + 1e-9 and int(slot["completed"]) == 5
        steps = per_model(slot["steps_per_model"])
        assert steps["small"] == "1" and int(steps["large"]) in cfg.allocation.step_grid
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["requests"] == 15
    assert summary["allocation"] == "exhaustive" and summary["evaluator"] == "builtin:digits-eval@1"
    calibration = json.loads((run / "calibration.json").read_text())
    assert set(calibration["latency"]) == {"digits-s", "digits-m", "digits-l"}


def test_outputs_larger_than_asked_are_not_returned_and_the_request_fails_once(
    tiny_quality_zoo: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """One 8 × 8 sample is 256 bytes: asking for 200 gets none back, and each request
    ends in one failed record saying so (the edge's sha256 cannot be checked)."""
    path = bench_file(tmp_path, tiny_quality_zoo, max_output_kb=0.2)
    args = ["quality", "run", "-c", str(path), "--assignment", "random",
            "--allocation", "equal", "--slots", "1"]  # fmt: skip
    assert main(args) == 0
    tasks = rows(the_run(tmp_path) / "tasks.csv")
    assert len(tasks) == 5 and len({t["task_id"] for t in tasks}) == 5
    for task in tasks:
        assert (task["outcome"], task["reason"]) == ("failed", "checksum_mismatch")
        assert "0 bytes" in task["detail"] and task["score"] == "nan"


def test_a_zoo_whose_quality_gate_failed_is_refused(
    tiny_quality_zoo: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    zoo = tmp_path / "failed-zoo"
    shutil.copytree(tiny_quality_zoo, zoo)
    catalog = json.loads((zoo / "catalog.json").read_text())
    (entry,) = [m for m in catalog["models"] if m["id"] == "digits-eval"]
    entry["metrics"][PASSED_METRIC] = 0.0
    (zoo / "catalog.json").write_text(json.dumps(catalog))
    path = bench_file(tmp_path, zoo)
    before = hashlib.sha256((zoo / "catalog.json").read_bytes()).hexdigest()
    assert main(["quality", "run", "-c", str(path), "--assignment", "random"]) == int(
        ExitCode.MODEL_INVALID
    )
    assert "did not pass its quality gate" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before a run folder or a node
    assert hashlib.sha256((zoo / "catalog.json").read_bytes()).hexdigest() == before


def test_a_run_stopped_mid_slot_records_the_slots_requests_as_interrupted(
    tiny_quality_zoo: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C while slot 1's requests are out: slot 0 stays recorded, each request of
    slot 1 ends in one `interrupted` record, the summary says so, exit 130."""
    from coordinator.quality_live import QualityBench

    send = QualityBench._send

    def stopped_in_slot_1(self: QualityBench, request: Any, steps: int) -> Any:
        if request.slot == 1:
            raise KeyboardInterrupt
        return send(self, request, steps)

    monkeypatch.setattr(QualityBench, "_send", stopped_in_slot_1)
    path = bench_file(tmp_path, tiny_quality_zoo)
    args = ["quality", "run", "-c", str(path), "--assignment", "random",
            "--allocation", "equal", "--slots", "3"]  # fmt: skip
    assert main(args) == int(ExitCode.INTERRUPTED)
    run = the_run(tmp_path)
    tasks = rows(run / "tasks.csv")
    assert [t["slot"] for t in tasks].count("0") == 5 and len(tasks) == 10
    assert {t["reason"] for t in tasks if t["slot"] == "1"} == {"interrupted"}
    assert len({t["task_id"] for t in tasks}) == 10
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["last_slot"] == 0
    assert summary["interrupted_in_slot"] == 1


def test_a_fifo_edge_and_unmeasured_categories_are_refused_before_anything_starts(
    tiny_quality_zoo: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = bench_file(tmp_path, tiny_quality_zoo)
    fifo = ["--assignment", "random", "--set", "edges.executor=fifo"]
    assert main(["quality", "run", "-c", str(path), *fifo]) == int(ExitCode.CONFIG_INVALID)
    assert "edges.executor=shares" in capsys.readouterr().err
    assert main(["quality", "run", "-c", str(path)]) == int(ExitCode.CONFIG_INVALID)
    assert "score_mean" in capsys.readouterr().err  # probabilistic needs the measured μ_c
    assert not (tmp_path / "runs").exists()
