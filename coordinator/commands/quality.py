"""`testbed quality run`: the §C system on the live bench (docs/quality-live.md).

Checks before anything starts, each a registered exit code: the zoo (ZOO_MISSING), its
quality gate (MODEL_INVALID: a zoo whose score failed the gate is not measured with),
the evaluator, the serving edge's executor, the models and the measured category
scores the assignment needs (CONFIG_INVALID).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from coordinator.bench_setup import load_catalog
from coordinator.command_help import help_texts
from coordinator.commands.quality_offline import register_offline
from coordinator.jsonout import add_json_flag, json_result
from coordinator.quality_live import QualityBench, serving_edge
from coordinator.quality_plan import PlanError, gate_score_fits, profiles
from coordinator.quality_recorder import QualityRecorder, format_quality_table
from coordinator.recorder import RunStatus
from coordinator.records import write_json
from coordinator.run_folder import new_run_dir, write_config, write_manifest
from testbed.allocation import matrix_from_config
from testbed.config import AssignmentMethod, TestbedConfig, load_config
from testbed.config.edge_executor import EdgeExecutorKind
from testbed.config.overrides import SetItem
from testbed.exit_codes import ExitCode, TestbedExit, sigterm_as_interrupt
from testbed.quality.evaluator import (
    EvaluatorInputError,
    OperatorClipEvaluator,
    open_evaluator,
)
from testbed.quality.gate import GATE_FILE, quality_gate_passed
from testbed.zoo.catalog import Catalog

FLAG_KEYS = (
    ("assignment", "quality.live.assignment"),
    ("allocation", "quality.live.allocation_method"),
    ("requests", "quality.live.requests_per_slot"),
    ("slots", "run.slots"),
    ("seed", "seed"),
)


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("quality", **help_texts(
        "the §C system live: requests by category, models with compute shares, scored",
        "testbed quality run --assignment probabilistic --allocation sa --slots 10",
    ))  # fmt: skip
    commands = group.add_subparsers(dest="quality_command", required=True, metavar="COMMAND")
    p = commands.add_parser("run", **help_texts(
        "play the users of one edge for N slots and score every sample",
        "testbed quality run --allocation equal --slots 5",
        "testbed quality run --assignment random --set edges.executor=shares --json",
        details="Starts the broker, the cloud and one edge (edges.executor: shares), times\n"
        "each model on it, then every slot draws requests by category, assigns them to\n"
        "models, sets each model's steps and compute share on the edge, sends them and\n"
        "scores each returned sample with the evaluator. Writes a run folder\n"
        "(tasks.csv, slots.csv, summary.json, calibration.json, ...). Refuses a zoo\n"
        "whose quality gate failed (exit 9, MODEL_INVALID).",
    ))  # fmt: skip
    p.add_argument("-c", "--config", default=None, help="testbed YAML (default ./testbed.yaml)")
    p.add_argument("--assignment", choices=["probabilistic", "direct", "random"], default=None)
    p.add_argument("--allocation", default=None,
                   choices=["sa", "equal", "optimal-step", "exhaustive", "fixed"])  # fmt: skip
    p.add_argument("--slots", type=int, default=None, help="slots to run")
    p.add_argument("--requests", type=int, default=None, help="requests per slot")
    p.add_argument("--seed", type=int, default=None, help="master seed")
    p.add_argument("--profile", default=None, metavar="FILE",
                   help="the measured categories (μ_c, σ_c) and thresholds θ from "
                   "`testbed quality profile` (OUT/measured-allocation.yaml)")  # fmt: skip
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set allocation.latency_weight_per_s=1",
    )  # fmt: skip
    p.add_argument("--calibration", default=None, metavar="FILE",
                   help="plan with the latency fits of another run's calibration.json "
                   "(this run's own is still measured and recorded)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=lambda args: json_result(args.json, lambda: run_quality(args)))
    register_offline(commands, run_quality)


def profile_sets(path: str | None) -> list[SetItem]:
    """The measured `allocation.categories` and `allocation.score_thresholds` of a
    `testbed quality profile` output (its `allocation:` section) as --set items; the
    rest of that section (grid, λ) is the profile's spec, not the measurement."""
    if path is None:
        return []
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
        section = data["allocation"]
        measured = [(f"allocation.{key}", section[key])
                    for key in ("categories", "score_thresholds")]  # fmt: skip
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise TestbedExit(ExitCode.CONFIG_INVALID,
                          f"--profile {path}: expected a measured-allocation.yaml written by "
                          f"`testbed quality profile` ({why})") from None  # fmt: skip
    return list(measured)


def resolve_config(args: argparse.Namespace) -> TestbedConfig:
    sets: list[SetItem] = [*profile_sets(getattr(args, "profile", None)), *args.set]
    for flag, key in FLAG_KEYS:
        value = getattr(args, flag)
        if value is not None:
            text = value.replace("-", "_") if isinstance(value, str) else value  # optimal-step
            sets.append(f"{key}={text}")
    return load_config(args.config, sets=sets)


def checked_inputs(cfg: TestbedConfig) -> tuple[Path, Catalog, Any, Any, Any]:
    """(zoo folder, catalog, evaluator, assignment matrix, score fits), or TestbedExit."""
    zoo_dir, catalog = load_catalog(cfg)
    zoo_dir = zoo_dir.resolve()
    if not quality_gate_passed(catalog):
        why = _gate_failures(zoo_dir)
        raise TestbedExit(ExitCode.MODEL_INVALID,
                          f"the zoo at {zoo_dir} did not pass its quality gate ({why}): its "
                          "scores are not worth fitting curves to; rebuild it "
                          "(`testbed zoo build`, docs/quality.md)")  # fmt: skip
    try:
        evaluator = open_evaluator(cfg.quality, catalog)
    except EvaluatorInputError as exc:
        raise TestbedExit(ExitCode.MODEL_INVALID, str(exc)) from None
    if isinstance(evaluator, OperatorClipEvaluator):
        raise TestbedExit(ExitCode.CONFIG_INVALID,
                          "quality.evaluator: operator_clip scores text prompts and RGB images; "
                          "the zoo's digit generators make 8x8 samples of condition vectors "
                          "(use builtin, docs/quality-live.md)")  # fmt: skip
    spec = serving_edge(cfg)
    if spec.executor is not EdgeExecutorKind.SHARES:
        raise TestbedExit(ExitCode.CONFIG_INVALID,
                          f"edge {spec.id} runs edges.executor: {spec.executor.value}; the §C "
                          "run needs shares (--set edges.executor=shares)")  # fmt: skip
    ids = list(cfg.quality.live.model_ids.values())
    missing = sorted(set(ids) - set(catalog.ids()))
    if missing:
        raise TestbedExit(ExitCode.CONFIG_INVALID,
                          f"quality.live.model_ids: the zoo has no {', '.join(missing)} "
                          f"(it has {', '.join(catalog.ids())})")  # fmt: skip
    unmeasured = [c.name for c in cfg.allocation.categories if not c.measured]
    if unmeasured and cfg.quality.live.assignment is not AssignmentMethod.RANDOM:
        raise TestbedExit(ExitCode.CONFIG_INVALID,
                          f"--assignment {cfg.quality.live.assignment.value} needs the measured "
                          f"score_mean/score_std of {', '.join(unmeasured)} "
                          "(allocation.categories): run `testbed quality profile --zoo "
                          f"{zoo_dir} --out DIR` on this zoo and pass `--profile "
                          "DIR/measured-allocation.yaml` (or --assignment random)")  # fmt: skip
    try:
        matrix = matrix_from_config(cfg.allocation, cfg.quality.live.assignment)
        fits = gate_score_fits(zoo_dir, ids)
    except (ValueError, PlanError) as exc:
        raise TestbedExit(ExitCode.CONFIG_INVALID, f"{exc} (or --assignment random)") from None
    return zoo_dir, catalog, evaluator, matrix, fits


def _gate_failures(zoo_dir: Path) -> str:
    try:
        failures = json.loads((zoo_dir / GATE_FILE).read_text()).get("failures") or []
    except (OSError, ValueError):
        return f"no {GATE_FILE}"
    return "; ".join(failures) or "marked failed in the catalog"


def run_quality(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    cfg = resolve_config(args)
    zoo_dir, catalog, evaluator, matrix, score_fits = checked_inputs(cfg)
    live = cfg.quality.live
    label = f"quality-{live.assignment.value}-{live.allocation_method.value}"
    signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    run_dir = new_run_dir(cfg.run.out_dir, cfg.experiment, label, cfg.seed)
    config_path = write_config(run_dir, cfg)
    print(f"run folder: {run_dir}")
    extra = {"assignment": live.assignment.value, "allocation": live.allocation_method.value,
             "evaluator": evaluator.method, "edge": serving_edge(cfg).id,
             "latency_weight_per_s": cfg.allocation.latency_weight_per_s}  # fmt: skip
    recorder = QualityRecorder(run_dir, cfg.allocation.latency_weight_per_s, extra)
    bench = QualityBench(cfg, run_dir, config_path, zoo_dir, catalog, evaluator, matrix)
    t0 = time.monotonic()
    try:
        bench.start()
        write_manifest(run_dir, cfg, {"broker": bench.launcher.broker_description,
                                      "zoo": {"dir": str(zoo_dir), "models": catalog.ids()},
                                      **extra})  # fmt: skip
        calibration = bench.calibrate()
        write_json(run_dir / "calibration.json", {
            "latency": calibration,
            "score_curves": {m: {"ceiling_score": f.curve.ceiling_score,
                                 "gap_score": f.curve.gap_score,
                                 "scale_steps": f.curve.scale_steps, "r_squared": f.r_squared}
                             for m, f in score_fits.items()},
        })  # fmt: skip
        if getattr(args, "calibration", None):  # one calibration per seed, shared
            own = json.loads((run_dir / "calibration.json").read_text())
            shared = bench.use_calibration(Path(args.calibration))
            write_json(run_dir / "calibration.json", {**own, "planned_with": shared})
        bench.models = profiles(cfg, score_fits, bench.latency_fits)
        for slot in range(cfg.run.slots):
            done = bench.run_slot(slot)
            recorder.add_slot(slot, done.records, done.row)
            print(f"slot {slot}: {done.row['completed']}/{done.row['requests']} completed, "
                  f"utility {done.row['utility']:.2f}", file=sys.stderr)  # fmt: skip
    except KeyboardInterrupt:
        recorder.add_records(bench.interrupted())
        in_flight = 0 if recorder.last_slot is None else recorder.last_slot + 1
        recorder.finish(RunStatus.INTERRUPTED, interrupted_in_slot=in_flight)
        bench.close()
        print(f"interrupted: kept {len(recorder.records)} records in {run_dir}", file=sys.stderr)
        return int(ExitCode.INTERRUPTED), None
    except BaseException as exc:
        recorder.finish(RunStatus.FAILED, error=str(exc) or type(exc).__name__)
        bench.close()
        raise
    bench.close()
    summary = recorder.finish(RunStatus.COMPLETED, wall_s=round(time.monotonic() - t0, 2))
    print(format_quality_table(summary))
    print(f"\nwrote {run_dir}/ (config.yaml, manifest.json, calibration.json, tasks.csv, "
          "slots.csv, summary.json, logs/)")  # fmt: skip
    return 0, summary
