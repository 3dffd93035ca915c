"""`testbed up`: start the bench, run an experiment for N slots, report, tear down."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from coordinator.bench_run import BenchRun, LiveRun, StreamRun
from coordinator.bench_sanity import bench_warnings
from coordinator.bench_setup import check_models, load_catalog
from coordinator.coedge_run import RECORDER_FILES, CoedgeRun, coedge_policy
from coordinator.command_help import add_inventory_flag, help_texts
from coordinator.commands.bench_state import write_bench_file
from coordinator.jsonout import add_json_flag, json_result
from coordinator.plots import plot_run
from coordinator.policy_choice import parse_policy
from coordinator.recorder import RunRecorder, RunStatus
from coordinator.records import format_table
from coordinator.run_folder import new_run_dir, write_config
from testbed.config import BenchSystem, TestbedConfig, load_config
from testbed.exit_codes import ExitCode, sigterm_as_interrupt

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", **help_texts(
        "start the bench and run an experiment (the main job)",
        "testbed up --policy greedy --slots 20",
        "testbed up --agents 0 --edges 2 --slots 10 --json > summary.json",
        details="Starts the broker, cloud, edges and agents, runs N slots, prints the results\n"
        "table, writes the run folder (runs/<experiment>__<policy>__<seed>__<utc>/) and\n"
        "tears the bench down. --json: summary.json on stdout, the table on stderr.\n"
        "On a bench of hosts (inventory: in the config, docs/bench-of-hosts.md) it starts\n"
        "no node: it waits for the nodes `testbed deploy` runs, and fetches their logs.",
    ))  # fmt: skip
    p.add_argument("-c", "--config", default=None, help="testbed YAML (default ./testbed.yaml)")
    p.add_argument("--policy", default=None, help="random|greedy|local|offload|PATH.onnx")
    p.add_argument("--slots", type=int, default=None, help="slots to run")
    p.add_argument("--agents", type=int, default=None, help="number of agents (end devices)")
    p.add_argument("--edges", type=int, default=None, help="number of edge servers")
    p.add_argument("--seed", type=int, default=None, help="master seed")
    p.add_argument("--keep", action="store_true", help="leave the bench running afterwards")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set edges.cache_capacity_mb=40",
    )
    add_inventory_flag(p)
    add_json_flag(p)
    p.set_defaults(func=run_up)


def resolve_config(args: argparse.Namespace) -> TestbedConfig:
    sets = list(args.set)
    for flag, key in (
        ("policy", "run.policy"),
        ("slots", "run.slots"),
        ("agents", "agents.count"),
        ("edges", "edges.count"),
        ("seed", "seed"),
    ):
        value = getattr(args, flag)
        if value is not None:
            sets.append(f"{key}={value}")
    return load_config(args.config, sets=sets, inventory=args.inventory)


def run_up(args: argparse.Namespace) -> int:
    return json_result(args.json, lambda: run_and_summarise(args))


def run_and_summarise(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    """The run; (exit code, the summary written to summary.json, or None if interrupted).
    Records are written as slots finish (coordinator/recorder.py): an interrupted run
    keeps every finished slot and says so in its summary."""
    cfg = resolve_config(args)
    zoo_dir, catalog = load_catalog(cfg)
    check_models(cfg, catalog)
    warnings = bench_warnings(cfg, catalog)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    coedge = cfg.run.system is BenchSystem.COEDGE  # §B: coordinator/coedge_run.py
    policy = parse_policy(cfg.run.policy) if cfg.agents.count > 0 and not coedge else None
    boards = policy.board_policies([s.id for s in cfg.agent_specs()]) if policy else None
    label = policy.label if policy else "stream"
    if coedge:
        label, coedge_boards = coedge_policy(cfg, cfg.run.policy)
    signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    run_dir = new_run_dir(cfg.run.out_dir, cfg.experiment, label, cfg.seed)
    config_path = write_config(run_dir, cfg)
    print(f"run folder: {run_dir}")
    runner: BenchRun
    if coedge:
        runner = CoedgeRun(cfg, run_dir, config_path, zoo_dir.resolve(), args.keep,
                           coedge_boards, label)  # fmt: skip
    elif boards is None:
        runner = StreamRun(cfg, run_dir, config_path, zoo_dir.resolve(), args.keep)
    else:
        runner = LiveRun(cfg, run_dir, config_path, zoo_dir.resolve(), args.keep, boards, label)
    recorder = RunRecorder(
        run_dir,
        extra=lambda: {"warnings": warnings, **runner.extra(final=False)},
        **(RECORDER_FILES if coedge else {}),
    )
    try:
        runner.start(catalog)
        runner.run(recorder)
        recorder.add_records(runner.end())
        extra = runner.extra(final=True)
    except KeyboardInterrupt:
        return _interrupted(runner, recorder), None
    except BaseException as exc:
        recorder.finish(RunStatus.FAILED, error=str(exc) or type(exc).__name__)
        runner.close(keep=False)
        raise
    if args.keep:
        write_bench_file(cfg.run.out_dir, runner.launcher.describe())
    runner.close(keep=args.keep)
    summary = recorder.finish(RunStatus.COMPLETED, warnings=warnings, **extra)
    records = recorder.records
    plots = plot_run(run_dir, records, f"{cfg.experiment} / {label}") if records else []
    print(format_table(summary, extra.get("cache")))
    for warning in warnings:  # again under the table: a run that did not do what was asked
        print(f"warning: {warning}")
    for line in extra.get("node_lines", []):
        print(line)
    if args.keep:
        print("bench left running (--keep): `testbed status` shows it, `testbed down` stops it")
    names = ", ".join(["config.yaml", "manifest.json", "tasks.csv", "slots.csv", "summary.json",
                       *(["shares.csv"] if coedge else []),
                       *(p.name for p in plots), "logs/"])  # fmt: skip
    print(f"\nwrote {run_dir}/ ({names})")
    return 0, summary


def _interrupted(runner: BenchRun, recorder: RunRecorder) -> int:
    """Ctrl-C or SIGTERM: the tasks in flight recorded as interrupted, the summary says
    where the run stopped, the bench torn down."""
    print("\ninterrupted: recording the tasks in flight, tearing the bench down", file=sys.stderr)
    try:
        recorder.add_records(runner.interrupted())
        in_flight = 0 if recorder.last_slot is None else recorder.last_slot + 1
        recorder.finish(RunStatus.INTERRUPTED, interrupted_in_slot=in_flight,
                        **runner.extra(final=False))  # fmt: skip
    finally:
        runner.close(keep=False)
    done = "no slot" if recorder.last_slot is None else f"slots 0-{recorder.last_slot}"
    print(f"kept {done} ({len(recorder.records)} tasks) in {recorder.run_dir}", file=sys.stderr)
    return int(ExitCode.INTERRUPTED)
