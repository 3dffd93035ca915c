"""`testbed calibrate`: measure the live bench for the twin, then report the twin's
fidelity gap (docs/twin.md).

One bench is started and driven through these phases (every phase starts from the
edges' preload, so each sees the bench as a run starts):

1. fidelity run of `random` on slots 0 … S−1 (first, while each board's decision
   generator is fresh, so the twin can replay its draws);
2. for `local`, then `offload`: a calibration run on slots S … 2S−1 (tasks the fidelity
   runs do not see) — per-unit compute and energy of agents and edges, upload and reply
   overheads — and right after it the policy's fidelity run on slots 0 … S−1 (back to
   back, so the host's load drifts least between them);
3. fidelity run of `greedy` on slots 0 … S−1;
4. model switches measured with the edges' operator calls (evict + prefetch, `--repeats`
   times per model): fetch overhead, verify, load, warm-up.

Then `calibration.json` is written, the twin replays the four fidelity runs (same seed,
same tasks), and the report (markdown + JSON) goes next to the calibration file.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from coordinator.boards import SlotResult
from coordinator.command_help import help_texts
from coordinator.envs import bench_ops
from coordinator.envs.calibration import CALIBRATION_NAME, Calibration
from coordinator.envs.calibration_fit import bench_facts, fit_calibration
from coordinator.envs.fidelity import (
    POLICIES,
    FidelityReport,
    PolicyGap,
    RunMetrics,
    csv_metrics,
    live_metrics,
    twin_metrics,
)
from coordinator.live import LiveBench
from coordinator.policy_choice import PolicySource
from coordinator.progress import ProgressBar
from coordinator.records import read_records, write_csv
from coordinator.run_folder import git_commit, host_facts, new_run_dir, write_manifest
from testbed.config import TestbedConfig, load_config
from testbed.exit_codes import ExitCode, TestbedExit, sigterm_as_interrupt
from testbed.messages import TaskRecord
from testbed.zoo.catalog import Catalog


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", **help_texts(
        "measure the live bench for the twin and report the twin's fidelity gap",
        "testbed calibrate --slots 20 --repeats 3",
        "testbed calibrate --from runs/default__calibrate__0__20250101T000000Z --refit",
        details="Writes calibration.json and fidelity.md: each heuristic live vs the twin on\n"
        "the same tasks (docs/twin.md).",
    ))  # fmt: skip
    p.add_argument("-c", "--config", default=None, help="testbed YAML (default ./testbed.yaml)")
    p.add_argument("--slots", type=int, default=20, help="slots per measured run (default 20)")
    p.add_argument(
        "--repeats", type=int, default=3, help="evict + prefetch repeats per model (default 3)"
    )
    p.add_argument(
        "--out", default=None, help=f"calibration file (default <run>/{CALIBRATION_NAME})"
    )
    p.add_argument(
        "--report", default=None, help="fidelity report .md (default: fidelity.md beside --out)"
    )
    p.add_argument("--seed", type=int, default=None, help="master seed")
    p.add_argument(
        "--from", dest="from_run", default=None, metavar="RUN",
        help="no bench: replay the twin against an earlier calibrate run (its folder or its "
        "calibration file) and write the report again",
    )  # fmt: skip
    p.add_argument(
        "--refit", action="store_true",
        help="with --from: fit the calibration again from the run's records (no bench)",
    )  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key")  # fmt: skip
    p.set_defaults(func=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    if args.slots < 1 or args.repeats < 1:
        raise TestbedExit(ExitCode.USAGE, "--slots and --repeats must be ≥ 1")
    sets = list(args.set) + ([f"seed={args.seed}"] if args.seed is not None else [])
    cfg = load_config(args.config, sets=sets)
    if cfg.agents.count < 1 or cfg.edges.count < 1:
        raise TestbedExit(ExitCode.CONFIG_INVALID, "calibrate needs agents and edges on the bench")
    _zoo_dir, catalog = bench_ops.zoo_dir_of(cfg)
    if args.from_run:
        return _replay(cfg, catalog, Path(args.from_run), args)
    signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    run_dir = new_run_dir(cfg.run.out_dir, cfg.experiment, "calibrate", cfg.seed)
    out = Path(args.out) if args.out else run_dir / CALIBRATION_NAME
    print(f"run folder: {run_dir}")
    t0 = time.monotonic()
    bench = bench_ops.new_bench(cfg, "calibrate", run_dir=run_dir)
    with bench:
        calibration, live, runs = _measure(cfg, catalog, bench, args.slots, args.repeats)
    out.parent.mkdir(parents=True, exist_ok=True)
    calibration.save(out)
    print(f"\nwrote {out} ({time.monotonic() - t0:.0f} s on the bench)")
    print(_summary(calibration))
    print("\ntwin replays (calibrated and paper model) ...", file=sys.stderr)
    live_m = {p: live_metrics(live[p]) for p in POLICIES}
    runs_m = {p: live_metrics(runs[p]) for p in ("local", "offload")}
    return _report(cfg, catalog, calibration, out, live_m, runs_m, args)


def _replay(cfg: TestbedConfig, catalog: Catalog, source: Path, args: argparse.Namespace) -> int:
    """The report of an earlier calibrate run, the twin replayed again (no bench).
    `source`: the run folder, or its calibration file (records: the run folder it names)."""
    default = Path(args.out) if args.out else source / CALIBRATION_NAME
    out = source if source.is_file() else default
    calibration = Calibration.load(out)
    records = source if source.is_dir() else Path(calibration.bench.run_dir)
    if args.refit:
        calibration = _refit(cfg, catalog, calibration, records)
        calibration.save(out)
        print(f"fitted again from {records}: wrote {out}")
        print(_summary(calibration))
    try:
        live = {p: csv_metrics(records / f"tasks-fidelity-{p}.csv") for p in POLICIES}
        runs = {
            p: csv_metrics(records / f"tasks-calibration-{p}.csv") for p in ("local", "offload")
        }
    except FileNotFoundError as exc:
        raise TestbedExit(ExitCode.USAGE, f"not a calibrate run folder: {exc}") from None
    if cfg.seed != calibration.bench.seed:
        raise TestbedExit(ExitCode.USAGE, f"{out}: measured with seed {calibration.bench.seed}")
    args.slots = calibration.bench.slots
    return _report(cfg, catalog, calibration, out, live, runs, args)


def _refit(cfg: TestbedConfig, catalog: Catalog, old: Calibration, records: Path) -> Calibration:
    try:
        local = read_records(records / "tasks-calibration-local.csv")
        offload = read_records(records / "tasks-calibration-offload.csv")
    except FileNotFoundError as exc:
        raise TestbedExit(ExitCode.USAGE, f"cannot fit again: {exc}") from None
    if (records / bench_ops.SWITCHES_CSV).is_file():
        switches = bench_ops.read_switches(records / bench_ops.SWITCHES_CSV)
    else:  # a run from before switches were kept: its switch figures stay as they were
        edge = cfg.edge_specs()[0]
        rate = edge.cloud_link_mbps if cfg.emulation.links else math.inf
        switches = [
            bench_ops.SwitchSample(
                m.model_id, edge.id, m.fetch_overhead_s + m.size_bytes * 8 / 1e6 / rate,
                m.verify_s, m.load_s, m.warmup_s, m.switch_s,
            )
            for m in old.models
        ]  # fmt: skip
    models = [m.model_id for m in old.models]
    return fit_calibration(
        cfg, catalog, models=models, local_records=local, offload_records=offload,
        switches=switches, facts=old.bench,
    )  # fmt: skip


def _report(
    cfg: TestbedConfig,
    catalog: Catalog,
    calibration: Calibration,
    out: Path,
    live: dict[str, RunMetrics],
    runs: dict[str, RunMetrics],
    args: argparse.Namespace,
) -> int:
    report_md = Path(args.report) if args.report else out.with_name("fidelity.md")
    gaps = [_gap(cfg, p, args.slots, live[p], calibration, catalog) for p in POLICIES]
    in_sample = [
        _gap(cfg, p, args.slots, runs[p], calibration, catalog, first_slot=args.slots)
        for p in ("local", "offload")
    ]
    host = calibration.bench.host
    context = (
        f"Host: {host.get('cpu_model', '?')}, {host.get('cpu_count', '?')} cores, 1-min load "
        f"average {host.get('load_avg_1min_before', '?')} before the bench started and "
        f"{host.get('load_avg_1min_after', '?')} when it stopped."
    )
    report = FidelityReport(args.slots, cfg.seed, str(out), gaps, in_sample, context)
    report_md.parent.mkdir(parents=True, exist_ok=True)
    md, js = report.write(report_md.parent, report_md.stem)
    print()
    print(report.markdown())
    print(f"wrote {md} and {js}")
    print(f"use it: set `twin.calibration: {out}` in the testbed file")
    return 0


def _measure(
    cfg: TestbedConfig, catalog: Catalog, bench: LiveBench, slots: int, repeats: int
) -> tuple[Calibration, dict[str, list[TaskRecord]], dict[str, list[TaskRecord]]]:
    t0 = time.monotonic()
    load_before = os.getloadavg()[0]
    bench.start(PolicySource("random"))  # the boards' random generators start fresh
    print(f"bench up in {time.monotonic() - t0:.1f} s: {cfg.edges.count} edge(s), "
          f"{cfg.agents.count} agent(s); broker {bench.launcher.broker_description}")  # fmt: skip
    live: dict[str, list[TaskRecord]] = {}
    runs: dict[str, list[TaskRecord]] = {}
    # a policy's calibration and fidelity runs back to back: the least drift between them
    phases = [("random", 0), ("local", slots), ("local", 0), ("offload", slots),
              ("offload", 0), ("greedy", 0), ("switches", -1)]  # fmt: skip
    spec_models = bench.obs_spec.models
    preload_only = [m for e in cfg.edge_specs() for m in e.preload if m not in spec_models]
    models = list(dict.fromkeys([*spec_models, *preload_only]))
    switches: list[bench_ops.SwitchSample] = []
    for policy, first in phases:
        bench_ops.restore_caches(bench)
        bench_ops.wait_settled()
        if policy == "switches":
            switches = bench_ops.measure_switches(
                bench, models, repeats, progress=_bar(len(models) * repeats, "model switches")
            )
            bench_ops.write_switches(bench.run_dir / bench_ops.SWITCHES_CSV, switches)
            continue
        purpose = "calibration" if first else "fidelity"
        records = bench_ops.run_policy(
            bench, policy, first, slots, _progress(policy, purpose, slots)
        )
        write_csv(bench.run_dir / f"tasks-{purpose}-{policy}.csv", records)
        (runs if first else live)[policy] = records
    bench_ops.restore_caches(bench)
    write_manifest(bench.run_dir, cfg, {
        "broker": bench.launcher.broker_description,
        "zoo": {"scale": catalog.scale.value, "models": [e.key for e in catalog.entries]},
        "policy": "calibrate", "slots_per_run": slots, "switch_repeats": repeats,
    })  # fmt: skip
    facts = bench_facts(
        cfg, catalog, broker=bench.launcher.broker_description, slots=slots,
        run_dir=str(bench.run_dir), git_commit=git_commit(),
        host={**host_facts(), "load_avg_1min_before": round(load_before, 2),
              "load_avg_1min_after": round(os.getloadavg()[0], 2)},
    )  # fmt: skip
    calibration = fit_calibration(
        cfg, catalog, models=models, local_records=runs["local"],
        offload_records=runs["offload"], switches=switches, facts=facts,
    )  # fmt: skip
    return calibration, live, runs


def _gap(
    cfg: TestbedConfig,
    policy: str,
    slots: int,
    live: RunMetrics,
    calibration: Calibration,
    catalog: Catalog,
    first_slot: int = 0,
) -> PolicyGap:
    return PolicyGap(
        policy,
        live,
        twin_metrics(cfg, policy, slots, calibration, catalog, first_slot=first_slot),
        twin_metrics(cfg, policy, slots, None, catalog, first_slot=first_slot),
    )


def _bar(total: int, label: str) -> Any:
    bar = ProgressBar(total, label)
    return lambda line: bar.update(1, line)


def _progress(policy: str, purpose: str, slots: int) -> Any:
    bar = ProgressBar(slots, f"{purpose} {policy}")
    tally = [0, 0]

    def update(result: SlotResult) -> None:
        tally[0] += sum(r.completed for r in result.records)
        tally[1] += len(result.records)
        bar.update(1, f"tasks {tally[1]}, completed {100 * tally[0] / max(1, tally[1]):.0f}%")

    return update


def _summary(cal: Calibration) -> str:
    lines = [
        f"overheads: upload {cal.upload_overhead_s * 1e3:.1f} ms, reply "
        f"{cal.reply_overhead_s * 1e3:.1f} ms, local {cal.local_overhead_s * 1e3:.1f} ms",
        "model          agent GHz·s/unit  J/unit   edge ms/unit  J/unit   fetch+ ms  load ms  "
        "warm-up ms",
    ]
    for m in cal.models:
        lines.append(
            f"{m.model_id:<14} {m.local_ghz_s_per_unit:>16.5f}  {m.local_j_per_unit:>6.4f}   "
            f"{m.edge_s_per_unit * 1e3:>12.3f}  {m.edge_j_per_unit:>6.4f}   "
            f"{m.fetch_overhead_s * 1e3:>9.1f}  {m.load_s * 1e3:>7.1f}  {m.warmup_s * 1e3:>10.1f}"
        )
    for name, p in cal.power.items():
        busy = f"{p.busy_w:.1f} W" if p.busy_w is not None else "–"
        idle = f"{p.idle_w:.1f} W" if p.idle_w is not None else "–"
        lines.append(f"power {name}: busy {busy}, idle {idle} ({p.method})")
    return "\n".join(lines)
