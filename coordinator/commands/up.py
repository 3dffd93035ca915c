"""`testbed up`: start the bench, run an experiment for N slots, report, tear down."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from coordinator.commands.bench_state import write_bench_file
from coordinator.launcher import Launcher
from coordinator.progress import ProgressBar
from coordinator.records import TaskRecord, format_table, summarise, write_csv, write_json
from coordinator.run_folder import new_run_dir, write_config, write_manifest
from coordinator.stream import EdgeStream, StreamEdge
from testbed.config import TestbedConfig, load_config
from testbed.edge_client import EdgeClient
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.types import Outcome
from testbed.zoo.catalog import Catalog, CatalogError, CatalogNotFound

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="start the bench and run an experiment (the main job)")
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


def load_catalog(cfg: TestbedConfig) -> tuple[Path, Catalog]:
    zoo_dir = Path(cfg.zoo.dir) / cfg.zoo.scale.value
    try:
        return zoo_dir, Catalog.load(zoo_dir)
    except CatalogNotFound:
        raise TestbedExit(
            ExitCode.ZOO_MISSING,
            f"no model zoo at {zoo_dir}: run `testbed zoo build --scale {cfg.zoo.scale.value}`",
        ) from None
    except CatalogError as exc:
        raise TestbedExit(ExitCode.ZOO_MISSING, str(exc)) from None


def check_models(cfg: TestbedConfig, catalog: Catalog) -> None:
    missing = sorted({t.model for t in cfg.tasks.active_types} - set(catalog.ids()))
    if missing:
        raise TestbedExit(
            ExitCode.CONFIG_INVALID,
            f"tasks.types name models the zoo does not have: {', '.join(missing)} "
            f"(it has {', '.join(catalog.ids())})",
        )


def _sigterm_as_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def run_up(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    zoo_dir, catalog = load_catalog(cfg)
    check_models(cfg, catalog)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    run_dir = new_run_dir(cfg.run.out_dir, cfg.experiment, cfg.run.policy, cfg.seed)
    config_path = write_config(run_dir, cfg)
    print(f"run folder: {run_dir}")
    launcher = Launcher(cfg, run_dir, config_path, zoo_dir=zoo_dir.resolve(), keep=args.keep)
    try:
        rows, extra = _run(cfg, launcher, catalog, run_dir)
    except KeyboardInterrupt:
        print("\ninterrupted: tearing the bench down", file=sys.stderr)
        launcher.stop_all()
        return int(ExitCode.INTERRUPTED)
    except BaseException:
        launcher.stop_all()
        raise
    if args.keep:
        write_bench_file(cfg.run.out_dir, launcher.describe())
        print("bench left running (--keep): `testbed status` shows it, `testbed down` stops it")
    else:
        launcher.stop_all()
    summary = summarise(rows, extra)
    write_csv(run_dir / "tasks.csv", rows)
    write_json(run_dir / "summary.json", summary)
    print(format_table(summary, extra.get("cache")))
    print(f"\nwrote {run_dir}/ (config.yaml, manifest.json, tasks.csv, summary.json, logs/)")
    return 0


def _run(
    cfg: TestbedConfig, launcher: Launcher, catalog: Catalog, run_dir: Path
) -> tuple[list[TaskRecord], dict[str, Any]]:
    t0 = time.monotonic()
    broker_url = launcher.start_broker()
    print(f"broker: {launcher.broker_description}")
    cloud = launcher.start_cloud()
    edges = [launcher.start_edge(spec) for spec in cfg.edge_specs()]
    launcher.wait_ready([cloud, *edges])
    print(f"bench up in {time.monotonic() - t0:.1f} s: cloud, {len(edges)} edge(s)")
    write_manifest(run_dir, cfg, {
        "broker": launcher.broker_description,
        "broker_url": broker_url,
        "nodes": {n.node_id: {**n.info, "log": str(n.log_path)} for n in launcher.nodes.values()},
        "zoo": {"dir": str(launcher.zoo_dir), "scale": catalog.scale.value,
                "models": [e.key for e in catalog.entries]},
    })  # fmt: skip
    stream_edges = [
        StreamEdge(spec.id, launcher.nodes[spec.id].address, spec.position_m or (0.0, 0.0))
        for spec in cfg.edge_specs()
    ]
    stream = EdgeStream(cfg, catalog, stream_edges, devices=max(1, cfg.agents.count))
    bar = ProgressBar(cfg.run.slots, "slots")
    completed = [0, 0]

    def progress(_slot: int, slot_rows: list[TaskRecord]) -> None:
        completed[0] += sum(r.outcome is Outcome.COMPLETED for r in slot_rows)
        completed[1] += len(slot_rows)
        bar.update(
            1, f"tasks {completed[1]}, completed {100 * completed[0] / max(1, completed[1]):.0f}%"
        )

    try:
        rows = stream.run(cfg.run.slots, progress)
    finally:
        stream.close()
    cache = {}
    for spec in cfg.edge_specs():
        node = launcher.nodes[spec.id]
        if not node.alive():
            continue
        with EdgeClient(node.address, spec.id) as client:
            c = client.state().counters
        cache[spec.id] = {
            "hits": c.hits,
            "misses": c.misses,
            "evictions": c.evictions,
            "bytes_fetched": c.bytes_fetched,
        }
    extra = {
        "mode": "edges-only stream (the coordinator is the task source)",
        "slots": cfg.run.slots,
        "broker": launcher.broker_description,
        "cache": cache,
        "wall_s": round(time.monotonic() - t0, 2),
        "run_dir": os.fspath(run_dir),
    }
    return rows, extra
