"""The §C experiments live (docs/quality-experiments.md, "Live"): the assignment
(probabilistic vs Direct vs Random, each slot allocated by one method) and the
allocation (annealing vs Equal-allocation vs Optimal-step vs the exhaustive optimum,
one assignment), each cell one `testbed quality run` (coordinator/commands/quality.py)
on one real edge with the shares executor, per seed; every figure is **live**: scores of
samples the edge returned, latencies the users waited. 95 % Student-t intervals are
over seeds (each seed one run's mean). `testbed quality experiment live SPEC` runs it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from coordinator.quality_profile import interval
from coordinator.quality_report import PAPER_ALLOCATION, PAPER_ASSIGNMENT, _ci, _table
from testbed.config import AssignmentMethod, load_config
from testbed.config.quality_live import AllocationMethod
from testbed.schema import dump_dataclass, load_dataclass, meta

LIVE = "live (one edge, shares executor; samples scored by the zoo's evaluator)"
LIVE_FILE = "live.json"
PARTS = ("assignment", "allocation")
EDGE_KEYS = ("compute_ms", "queue_ms", "planned_utility_per_slot", "plan_ms")
QualityRunner = Callable[[argparse.Namespace], tuple[int, dict[str, Any] | None]]
"""`testbed quality run`'s body (coordinator/commands/quality.py `run_quality`)."""


@dataclass(frozen=True)
class LiveQualitySpec:
    name: str = field(default="quality_live", metadata=meta("Name of the experiment."))
    config: str = field(default="testbed.yaml", metadata=meta("The bench's testbed file."))
    profile: str = field(
        default="docs/results/quality_demo/measured-allocation.yaml",
        metadata=meta("measured-allocation.yaml of the zoo the bench uses (μ_c, σ_c, θ)."),
    )
    offline: str = field(
        default="docs/results/quality_demo",
        metadata=meta("The offline results to show beside (their assignment.json)."),
    )
    sets: list[str] = field(
        default_factory=list, metadata=meta("--set KEY=VALUE items for every run.")
    )
    seeds: list[int] = field(
        default_factory=lambda: [0, 1, 2],
        metadata=meta("Seeds (one run per method and seed).", ge=0, min_len=1, max_len=20),
    )
    slots: int = field(default=4, metadata=meta("Slots per run.", ge=1, le=1000))
    requests_per_slot: int = field(default=12, metadata=meta("Requests per slot.", ge=1, le=1000))
    assignment_methods: list[AssignmentMethod] = field(
        default_factory=lambda: list(AssignmentMethod),
        metadata=meta("The assignment part's methods (the first is compared with the rest)."),
    )
    assignment_allocation: AllocationMethod = field(
        default=AllocationMethod.SA, metadata=meta("The assignment part's allocation.")
    )
    allocation_methods: list[AllocationMethod] = field(
        default_factory=lambda: [
            AllocationMethod.SA,
            AllocationMethod.EQUAL,
            AllocationMethod.OPTIMAL_STEP,
            AllocationMethod.EXHAUSTIVE,
        ],
        metadata=meta("The allocation part's methods (the first is compared with the rest)."),
    )
    allocation_assignment: AssignmentMethod = field(
        default=AssignmentMethod.PROBABILISTIC,
        metadata=meta("The allocation part's assignment."),
    )
    latency_weights_per_s: list[float] = field(
        default_factory=list,
        metadata=meta("λ sweep: the allocation part once per λ (allocation."
                      "latency_weight_per_s); empty: the config's λ only.", ge=0, max_len=10),
    )  # fmt: skip
    interleave: bool = field(
        default=False,
        metadata=meta("Run each seed's cells together, in an order shuffled by the seed "
                      "(the host's drift then falls on no method in particular); off: "
                      "method by method."),
    )  # fmt: skip
    shared_calibration: bool = field(
        default=False,
        metadata=meta("Every run of a seed plans on the latency fits of that seed's first "
                      "run (each run still measures its own, as a check)."),
    )  # fmt: skip


def load_live_spec(path: str | Path) -> LiveQualitySpec:
    data: Any = yaml.safe_load(Path(path).read_text()) or {}
    return load_dataclass(LiveQualitySpec, data, "")


Cell = tuple[str, str, float | None]
"""(assignment, allocation, λ per s or None: the config's)."""


def _cells(spec: LiveQualitySpec) -> dict[str, list[Cell]]:
    """Per part, its (assignment, allocation, λ) cells; a λ sweep makes one allocation
    part per λ (`allocation λ=…`)."""
    parts: dict[str, list[Cell]] = {}
    if spec.assignment_methods:
        parts["assignment"] = [
            (a.value, spec.assignment_allocation.value, None) for a in spec.assignment_methods
        ]
    weights: list[float | None] = list(spec.latency_weights_per_s) or [None]
    for lam in weights:
        name = "allocation" if lam is None else f"allocation λ={lam:g}"
        parts[name] = [
            (spec.allocation_assignment.value, m.value, lam) for m in spec.allocation_methods
        ]
    return parts


def _run_key(cell: Cell, seed: int) -> str:
    assignment, allocation, lam = cell
    return f"{assignment}-{allocation}-s{seed}" + ("" if lam is None else f"-l{lam:g}")


def _one_run(spec: LiveQualitySpec, out: Path, cell: Cell, seed: int, runner: QualityRunner,
             calibration: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """One `testbed quality run` in-process (`runner` is its body), planning on
    `calibration` when given; its summary and run folder."""
    assignment, allocation, lam = cell
    runs = out / "runs" / _run_key(cell, seed)
    weight = [] if lam is None else [f"allocation.latency_weight_per_s={lam}"]
    args = argparse.Namespace(
        config=spec.config,
        assignment=assignment,
        allocation=allocation,
        slots=spec.slots,
        requests=spec.requests_per_slot,
        seed=seed,
        profile=spec.profile,
        set=[*spec.sets, *weight, f"run.out_dir={runs}"],
        calibration=None if calibration is None else str(calibration),
        json=False,
    )
    code, summary = runner(args)
    if code != 0 or summary is None:
        raise RuntimeError(
            f"testbed quality run {assignment}/{allocation} seed {seed}: exit {code}"
        )
    (folder,) = [p for p in runs.iterdir() if p.is_dir()]
    return {"run_dir": str(folder), "summary": {**summary, "edge": _edge_means(folder)},
            "calibration": _calibration_check(folder)}  # fmt: skip


def _calibration_check(folder: Path) -> dict[str, Any]:
    """Per model: this run's own fit (fixed, per-step seconds, R²) and, when it planned on
    a shared one, that one's and the ratio of their predicted compute at the model's
    calibration steps' mean (1.0: the run's host was as fast as the shared run's)."""
    data = json.loads((folder / "calibration.json").read_text())
    shared = data.get("planned_with") or {}
    out: dict[str, Any] = {"shared_from": shared.get("from", "")}
    for model, own in data["latency"].items():
        steps = [p["steps"] for p in own["points"]]
        k = sum(steps) / len(steps)
        row = {"fixed_s": own["fixed_s"], "per_step_s": own["per_step_s"],
               "r_squared": own["r_squared"]}  # fmt: skip
        if model in shared:
            theirs = shared[model]["fixed_s"] + shared[model]["per_step_s"] * k
            row["own_over_shared"] = (own["fixed_s"] + own["per_step_s"] * k) / theirs
        out[model] = row
    return out


def _edge_means(folder: Path) -> dict[str, float]:
    """What the run's CSVs say beyond its summary: the edge's mean compute and queueing
    time per completed request (what the allocation can change; the rest of a request's
    latency is the round trip), the solver's planned utility per slot (twin, on the
    fitted curves) and its time per allocation."""
    with open(folder / "tasks.csv", newline="") as f:
        done = [r for r in csv.DictReader(f) if r["outcome"] == "completed"]
    with open(folder / "slots.csv", newline="") as f:
        slots = list(csv.DictReader(f))

    def mean(rows: list[dict[str, str]], key: str) -> float:
        values = [float(r[key]) for r in rows if r[key] not in ("", "nan")]
        return sum(values) / len(values) if values else float("nan")

    return {"compute_ms": mean(done, "t_edge_compute_ms"),
            "queue_ms": mean(done, "t_edge_queue_ms"),
            "planned_utility_per_slot": mean(slots, "planned_utility"),
            "plan_ms": mean(slots, "plan_ms")}  # fmt: skip


def _per_seed(summaries: list[dict[str, Any]], models: list[str]) -> dict[str, Any]:
    """The method's cell: intervals over seeds of each run's means."""

    def over(get: Any) -> dict[str, float]:
        return interval([float(get(s)) for s in summaries])

    def model_mean(s: dict[str, Any], m: str) -> float:
        return float(s["by_model"].get(m, {}).get("score", {}).get("mean", float("nan")))

    return {
        "score": over(lambda s: s["score"]["mean"]),
        "latency_ms": over(lambda s: s["latency_ms"]["mean"]),
        "utility_per_slot": over(lambda s: s["utility_per_slot"]["mean"]),
        "completed_fraction": over(lambda s: s["completed"] / max(1, s["requests"])),
        **{f"edge_{k}": over(lambda s, k=k: s["edge"][k]) for k in EDGE_KEYS},
        "score_by_model": {m: interval([model_mean(s, m) for s in summaries]) for m in models},
        "requests_by_model": {
            m: sum(s["by_model"].get(m, {}).get("requests", 0) for s in summaries) for m in models
        },
    }


def _versus(first: list[dict[str, Any]], other: list[dict[str, Any]]) -> dict[str, Any]:
    """Paired over seeds: the first method's score and utility against another's."""
    pairs = list(zip(first, other, strict=True))

    def pct(a: float, b: float) -> float:
        return 100.0 * (a - b) / abs(b) if b else float("nan")

    return {
        "score": interval([a["score"]["mean"] - b["score"]["mean"] for a, b in pairs]),
        "utility_per_slot": interval(
            [a["utility_per_slot"]["mean"] - b["utility_per_slot"]["mean"] for a, b in pairs]
        ),
        "utility_percent": interval(
            [pct(a["utility_per_slot"]["mean"], b["utility_per_slot"]["mean"]) for a, b in pairs]
        ),
        "time_reduction_percent": interval(
            [-pct(a["latency_ms"]["mean"], b["latency_ms"]["mean"]) for a, b in pairs]
        ),
        "planned_utility_per_slot": interval(
            [
                a["edge"]["planned_utility_per_slot"] - b["edge"]["planned_utility_per_slot"]
                for a, b in pairs
            ]
        ),
    }


def _meta(spec: LiveQualitySpec, command: str | None) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "spec": dump_dataclass(spec),
        "command": command or "",
        "commit": commit,
        "label": LIVE,
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_before": list(os.getloadavg()),
    }


def _schedule(spec: LiveQualitySpec) -> list[tuple[Cell, int]]:
    """The (cell, seed) runs in the order they run: method by method, or (`interleave`)
    seed by seed, each seed's cells shuffled by random.Random(seed)."""
    cells = [c for part in _cells(spec).values() for c in part]
    if not spec.interleave:
        return [(c, s) for c in cells for s in spec.seeds]
    order = []
    for seed in spec.seeds:
        mine = list(cells)
        random.Random(seed).shuffle(mine)
        order += [(c, seed) for c in mine]
    return order


def run_live_experiment(
    spec: LiveQualitySpec, out: Path, runner: QualityRunner, command: str | None = None
) -> dict[str, Any]:
    """Every cell of both parts for every seed (a cell both parts share runs once);
    writes out/live.json and out/report.md."""
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {**_meta(spec, command), "runs": {}, "parts": {}}
    models = list(load_config(spec.config, sets=list(spec.sets)).allocation.models)
    shared: dict[int, Path] = {}  # seed: the calibration.json every later run plans on
    for cell, seed in _schedule(spec):
        key = _run_key(cell, seed)
        if key not in result["runs"]:
            run = _one_run(spec, out, cell, seed, runner, shared.get(seed))
            result["runs"][key] = run
            if spec.shared_calibration and seed not in shared:
                shared[seed] = Path(run["run_dir"]) / "calibration.json"
    result["order"] = list(result["runs"])
    for part, cells in _cells(spec).items():
        table: dict[str, Any] = {}
        for cell in cells:
            summaries = [result["runs"][_run_key(cell, seed)]["summary"] for seed in spec.seeds]
            method = cell[0] if part == "assignment" else cell[1]
            table[method] = {"per_seed": summaries}
        first = next(iter(table.values()))["per_seed"]
        result["parts"][part] = {
            "summary": {m: _per_seed(c["per_seed"], models) for m, c in table.items()},
            "first_vs": {m: _versus(first, c["per_seed"]) for m, c in list(table.items())[1:]},
        }
    result["models"] = models
    result["finished_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["load_average_after"] = list(os.getloadavg())
    result["offline"] = _offline(Path(spec.offline))
    result["calibration_spread"] = _calibration_spread(result["runs"])
    (out / LIVE_FILE).write_text(json.dumps(result, indent=1, allow_nan=True) + "\n")
    write_live_report(out)
    return result


def _offline(folder: Path) -> dict[str, Any]:
    """The offline profile's assignment summary beside the live one (if present)."""
    try:
        data = json.loads((folder / "assignment.json").read_text())
    except (OSError, ValueError):
        return {}
    return {
        "folder": str(folder),
        "label": data.get("label", ""),
        "assignment": {m: {"score": s["score"]} for m, s in data["summary"].items()},
        "probabilistic_vs": {m: {"score": v["score"]} for m, v in data["probabilistic_vs"].items()},
    }


def _calibration_spread(runs: dict[str, Any]) -> dict[str, Any]:
    """Over the runs that planned on a shared calibration: per model, their own fit's
    predicted compute over the shared one's (how far each run's host speed was from the
    calibrating run's), and the own fits' R²."""
    out: dict[str, Any] = {}
    for run in runs.values():
        for model, row in run.get("calibration", {}).items():
            if isinstance(row, dict) and "own_over_shared" in row:
                cell = out.setdefault(model, {"own_over_shared": [], "r_squared": []})
                cell["own_over_shared"].append(row["own_over_shared"])
                cell["r_squared"].append(row["r_squared"])
    return {m: {"runs": len(c["r_squared"]),
                "own_over_shared": {"min": min(c["own_over_shared"]),
                                    "max": max(c["own_over_shared"]),
                                    **interval(c["own_over_shared"])},
                "r_squared": {"min": min(c["r_squared"]), "max": max(c["r_squared"])}}
            for m, c in out.items()}  # fmt: skip


PAPER = {
    "assignment": {m: PAPER_ASSIGNMENT for m in ("direct", "random")},
    "allocation": {
        "equal": PAPER_ALLOCATION["equal_allocation"],
        "optimal_step": PAPER_ALLOCATION["optimal_step"],
    },
}


def _part_lines(part: str, cell: dict[str, Any], title: str, models: list[str]) -> list[str]:
    rows = [
        [m, _ci(s["score"]), _ci(s["latency_ms"], 1), _ci(s["edge_compute_ms"], 2),
         _ci(s["edge_queue_ms"], 2), _ci(s["utility_per_slot"], 1),
         _ci(s["edge_planned_utility_per_slot"], 1), _ci(s["edge_plan_ms"], 2),
         " / ".join(_ci(s["score_by_model"][x], 1) for x in models),
         " / ".join(str(s["requests_by_model"][x]) for x in models)]
        for m, s in cell["summary"].items()
    ]  # fmt: skip
    per_model = " / ".join(models)
    header = ["method", "score", "latency (ms)", "edge compute (ms)", "edge queue (ms)",
              "utility per slot", "planned utility per slot (twin)", "plan (ms)",
              f"score per model ({per_model})", "requests per model (all seeds)"]  # fmt: skip
    lines = [title, "", *_table(header, rows), ""]
    first = next(iter(cell["summary"]))
    rows = [
        [o, _ci(v["score"]), _ci(v["utility_per_slot"], 1),
         _ci(v["utility_percent"], 1) + " %", _ci(v["time_reduction_percent"], 1) + " %",
         _ci(v["planned_utility_per_slot"], 2) if "planned_utility_per_slot" in v else "–",
         PAPER[part.split(" ")[0]].get(o, "–")]
        for o, v in cell["first_vs"].items()
    ]  # fmt: skip
    header = ["vs", "score difference", "utility difference per slot",
              "utility difference (of theirs)", "time saved",
              "planned utility difference per slot (twin)", "paper"]  # fmt: skip
    lines += [f"{first} against the others (paired by seed):", ""]
    return [*lines, *_table(header, rows), ""]


def _spread_lines(spread: dict[str, Any]) -> list[str]:
    rows = [[m, str(c["runs"]), _ci(c["own_over_shared"], 3),
             f"{c['own_over_shared']['min']:.3f}–{c['own_over_shared']['max']:.3f}",
             f"{c['r_squared']['min']:.3f}–{c['r_squared']['max']:.3f}"]
            for m, c in spread.items()]  # fmt: skip
    header = [
        "model",
        "runs",
        "own fit / shared fit (compute at the calibration steps)",
        "range",
        "own fit's R² (range)",
    ]
    title = (
        "## The check: each run's own calibration against its seed's shared one "
        "(the runs after each seed's first)"
    )
    return [title, "", *_table(header, rows), ""]


def _offline_lines(off: dict[str, Any]) -> list[str]:
    rows = [[m, _ci(s["score"])] for m, s in off["assignment"].items()]
    rows += [[f"probabilistic − {m}", _ci(v["score"])] for m, v in off["probabilistic_vs"].items()]
    title = f"## Beside: the offline profile ({off['folder']}, {off['label']})"
    return [title, "", *_table(["assignment", "score"], rows), ""]


def write_live_report(folder: Path) -> Path:
    """folder/report.md from folder/live.json."""
    data = json.loads((folder / LIVE_FILE).read_text())
    spec, models = data["spec"], data["models"]
    lines = [
        f"# The §C experiments, {data['label']}",
        "",
        f"{len(spec['seeds'])} seeds × {spec['slots']} slots × "
        f"{spec['requests_per_slot']} requests per run; mean over seeds [95 % "
        "Student-t interval over the seeds' run means]; a utility difference in % is of "
        "the other method's |utility|.",
        "",
    ]
    for part, cell in data["parts"].items():
        if part == "assignment":
            title = f"## Assignment (allocation {spec['assignment_allocation']})"
        else:
            title = f"## {part.capitalize()} (assignment {spec['allocation_assignment']})"
        lines += _part_lines(part, cell, title, models)
    if data.get("calibration_spread"):
        lines += _spread_lines(data["calibration_spread"])
    if data.get("offline"):
        lines += _offline_lines(data["offline"])
    lines += [
        f"Command: `{data['command']}`; commit {data['commit']}, started "
        f"{data['started_utc']} (load average {data['load_average_before']}), finished "
        f"{data['finished_utc']} (load average {data['load_average_after']})."
    ]
    out = folder / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return out
