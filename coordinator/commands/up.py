"""`testbed up`: start the bench, run an experiment for N slots, report, tear down."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from coordinator.bench_setup import check_models, load_catalog
from coordinator.boards import SlotResult
from coordinator.command_help import help_texts
from coordinator.commands.bench_state import write_bench_file
from coordinator.jsonout import add_json_flag, json_result
from coordinator.launcher import Launcher
from coordinator.live import LiveBench
from coordinator.plots import plot_run
from coordinator.policy_choice import BoardPolicies, parse_policy
from coordinator.progress import ProgressBar
from coordinator.records import format_table, percentile, summarise, write_csv, write_json
from coordinator.run_folder import new_run_dir, write_config, write_manifest
from coordinator.stream import EdgeStream, StreamEdge
from testbed.config import TestbedConfig, load_config
from testbed.edge_client import EdgeClient
from testbed.exit_codes import ExitCode, sigterm_as_interrupt
from testbed.messages import TaskRecord
from testbed.zoo.catalog import Catalog

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", **help_texts(
        "start the bench and run an experiment (the main job)",
        "testbed up --policy greedy --slots 20",
        "testbed up --agents 0 --edges 2 --slots 10 --json > summary.json",
        details="Starts the broker, cloud, edges and agents, runs N slots, prints the results\n"
        "table, writes the run folder (runs/<experiment>__<policy>__<seed>__<utc>/) and\n"
        "tears the bench down. --json: summary.json on stdout, the table on stderr.",
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
    return load_config(args.config, sets=sets)


def run_up(args: argparse.Namespace) -> int:
    return json_result(args.json, lambda: run_and_summarise(args))


def run_and_summarise(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    """The run; (exit code, the summary written to summary.json, or None if interrupted)."""
    cfg = resolve_config(args)
    zoo_dir, catalog = load_catalog(cfg)
    check_models(cfg, catalog)
    policy = parse_policy(cfg.run.policy) if cfg.agents.count > 0 else None
    boards = policy.board_policies([s.id for s in cfg.agent_specs()]) if policy else None
    signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    label = policy.label if policy else "stream"
    run_dir = new_run_dir(cfg.run.out_dir, cfg.experiment, label, cfg.seed)
    config_path = write_config(run_dir, cfg)
    print(f"run folder: {run_dir}")
    if boards is None:
        runner: _Runner = _StreamRun(cfg, run_dir, config_path, zoo_dir.resolve(), args.keep)
    else:
        runner = _LiveRun(cfg, run_dir, config_path, zoo_dir.resolve(), args.keep, boards, label)
    try:
        records, extra = runner.run(catalog)
    except KeyboardInterrupt:
        print("\ninterrupted: tearing the bench down", file=sys.stderr)
        runner.close(keep=False)
        return int(ExitCode.INTERRUPTED), None
    except BaseException:
        runner.close(keep=False)
        raise
    if args.keep:
        write_bench_file(cfg.run.out_dir, runner.launcher.describe())
    runner.close(keep=args.keep)
    summary = summarise(records, extra)
    write_csv(run_dir / "tasks.csv", records)
    write_json(run_dir / "summary.json", summary)
    plots = plot_run(run_dir, records, f"{cfg.experiment} / {label}") if records else []
    print(format_table(summary, extra.get("cache")))
    for line in extra.get("node_lines", []):
        print(line)
    if args.keep:
        print("bench left running (--keep): `testbed status` shows it, `testbed down` stops it")
    names = ", ".join(["config.yaml", "manifest.json", "tasks.csv", "summary.json",
                       *(p.name for p in plots), "logs/"])  # fmt: skip
    print(f"\nwrote {run_dir}/ ({names})")
    return 0, summary


class _Runner:
    launcher: Launcher

    def run(self, catalog: Catalog) -> tuple[list[TaskRecord], dict[str, Any]]:
        raise NotImplementedError

    def close(self, keep: bool) -> None:
        raise NotImplementedError


def _manifest(cfg: TestbedConfig, launcher: Launcher, run_dir: Path, catalog: Catalog,
              **extra: Any) -> None:  # fmt: skip
    write_manifest(run_dir, cfg, {
        "broker": launcher.broker_description,
        "broker_url": launcher.broker_url,
        "nodes": {n.node_id: {**n.info, "log": str(n.log_path)} for n in launcher.nodes.values()},
        "zoo": {"dir": str(launcher.zoo_dir), "scale": catalog.scale.value,
                "models": [e.key for e in catalog.entries]},
        **extra,
    })  # fmt: skip


class _LiveRun(_Runner):
    """Agents on (emulated) boards decide and execute; the coordinator drives slots."""

    def __init__(self, cfg: TestbedConfig, run_dir: Path, config_path: Path, zoo_dir: Path,
                 keep: bool, policy: BoardPolicies, label: str) -> None:  # fmt: skip
        self.cfg, self.run_dir, self.policy, self.label = cfg, run_dir, policy, label
        self.bench = LiveBench(cfg, run_dir, config_path, zoo_dir, keep=keep)
        self.launcher = self.bench.launcher

    def run(self, catalog: Catalog) -> tuple[list[TaskRecord], dict[str, Any]]:
        cfg = self.cfg
        t0 = time.monotonic()
        self.bench.start(self.policy)
        print(f"broker: {self.launcher.broker_description}")
        print(
            f"bench up in {time.monotonic() - t0:.1f} s: cloud, {cfg.edges.count} edge(s), "
            f"{cfg.agents.count} agent(s); policy {self.label}"
        )
        _manifest(cfg, self.launcher, self.run_dir, catalog, policy=self.label)
        bar = ProgressBar(cfg.run.slots, "slots")
        tally = [0, 0]

        def progress(result: SlotResult) -> None:
            tally[0] += sum(r.completed for r in result.records)
            tally[1] += len(result.records)
            bar.update(1, f"tasks {tally[1]}, completed {100 * tally[0] / max(1, tally[1]):.0f}%")

        results = self.bench.run(cfg.run.slots, progress)
        records = [r for res in results for r in res.records]
        _write_slots(self.run_dir / "slots.csv", results)
        overhead = [res.overhead_ms for res in results]
        states = self.bench.node_states()
        node_lines = [
            f"node {e.node_id}: {e.old} -> {e.new} at slot {max(e.slot, 0)} ({e.t_s:.1f} s)"
            for e in self.bench.events
            if e.old != "new"
        ]
        extra = {
            "mode": "live: agents decide on the boards",
            "policy": self.label,
            "slots": cfg.run.slots,
            "broker": self.launcher.broker_description,
            "cache": self.bench.cache_counters(),
            "nodes": states,
            "node_events": [e.__dict__ for e in self.bench.events if e.old != "new"],
            "node_lines": node_lines,
            "orchestration_overhead_ms": {
                "p50": percentile(overhead, 50),
                "p95": percentile(overhead, 95),
            },
            "reward_mean": sum(r.reward for r in records) / len(records) if records else 0.0,
            "wall_s": round(time.monotonic() - t0, 2),
        }
        return records, extra

    def close(self, keep: bool) -> None:
        self.bench.keep = keep
        self.bench.close()


def _write_slots(path: Path, results: list[SlotResult]) -> None:
    with open(path, "w") as f:
        f.write("slot,tasks,completed,wall_ms,max_step_ms,overhead_ms\n")
        for r in results:
            done = sum(x.completed for x in r.records)
            f.write(f"{r.slot},{len(r.records)},{done},{r.wall_ms:.3f},{r.max_step_ms:.3f},"
                    f"{r.overhead_ms:.3f}\n")  # fmt: skip


class _StreamRun(_Runner):
    """No agents: the coordinator itself sends a task stream to the edges."""

    def __init__(self, cfg: TestbedConfig, run_dir: Path, config_path: Path, zoo_dir: Path,
                 keep: bool) -> None:  # fmt: skip
        self.cfg, self.run_dir = cfg, run_dir
        self.launcher = Launcher(cfg, run_dir, config_path, zoo_dir=zoo_dir, keep=keep)

    def run(self, catalog: Catalog) -> tuple[list[TaskRecord], dict[str, Any]]:
        cfg, launcher = self.cfg, self.launcher
        t0 = time.monotonic()
        launcher.start_broker()
        print(f"broker: {launcher.broker_description}")
        cloud = launcher.start_cloud()
        edges = [launcher.start_edge(spec) for spec in cfg.edge_specs()]
        launcher.wait_ready([cloud, *edges])
        print(f"bench up in {time.monotonic() - t0:.1f} s: cloud, {len(edges)} edge(s), no agents")
        _manifest(cfg, launcher, self.run_dir, catalog, policy="stream")
        stream_edges = [
            StreamEdge(spec.id, launcher.nodes[spec.id].address, spec.position_m or (0.0, 0.0))
            for spec in cfg.edge_specs()
        ]
        stream = EdgeStream(cfg, catalog, stream_edges)
        bar = ProgressBar(cfg.run.slots, "slots")
        tally = [0, 0]

        def progress(_slot: int, rows: list[TaskRecord]) -> None:
            tally[0] += sum(r.completed for r in rows)
            tally[1] += len(rows)
            bar.update(1, f"tasks {tally[1]}, completed {100 * tally[0] / max(1, tally[1]):.0f}%")

        try:
            records = stream.run(cfg.run.slots, progress)
        finally:
            stream.close()
        cache = {}
        for spec in cfg.edge_specs():
            with EdgeClient(launcher.nodes[spec.id].address, spec.id) as client:
                c = client.state().counters
            cache[spec.id] = {"hits": c.hits, "misses": c.misses, "evictions": c.evictions,
                              "bytes_fetched": c.bytes_fetched}  # fmt: skip
        extra = {
            "mode": "edges-only stream (the coordinator is the task source)",
            "slots": cfg.run.slots,
            "broker": launcher.broker_description,
            "cache": cache,
            "wall_s": round(time.monotonic() - t0, 2),
        }
        return records, extra

    def close(self, keep: bool) -> None:
        if not keep:
            self.launcher.stop_all()
