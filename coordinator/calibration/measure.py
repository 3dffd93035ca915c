"""`testbed calibrate` on a live bench: the measured runs, the fit, the calibration file
and the fidelity report (docs/twin.md). The command (coordinator/commands/calibrate.py)
only reads its flags; `testbed experiment` (coordinator/experiments.py) calls
`calibrate_bench` too.

One bench is started and driven through these phases (every phase starts from the
edges' preload, so each sees the bench as a run starts):

1. fidelity run of `random` on slots 0 … S−1 (first, while each board's decision
   generator is fresh, so the twin can replay its draws), and right after it a
   calibration run of `random` on slots S … 2S−1 (the generators continued): the
   mixed slots' factors (mixed.py);
2. for `local`, then `offload`: a calibration run on slots S … 2S−1 (tasks the fidelity
   runs do not see) — per-unit compute and energy of agents and edges, upload and reply
   overheads — and right after it the policy's fidelity run on slots 0 … S−1 (back to
   back, so the host's load drifts least between them);
3. fidelity run of `greedy` on slots 0 … S−1;
3b. with `windows` W > 1, every heuristic on W − 1 more fidelity windows (windows.py:
   window w is slots (w+1)·S … (w+2)·S−1), the policies' order turned by one each
   window, so the report can give each gap with an interval over windows;
4. model switches measured with the edges' operator calls (evict + prefetch, `repeats`
   times per model): fetch overhead, verify, load, warm-up (switches.py).

Then `calibration.json` is written (fit.py, mixed.py), the twin replays the four
fidelity runs and the three calibration runs (same seed, same tasks), and the report
(markdown + JSON, fidelity.py) goes next to the calibration file. Every line for
people goes through `say` (default: print).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.bench_hosts import hosts_manifest
from coordinator.bench_run import record_slots
from coordinator.bench_setup import zoo_dir_of
from coordinator.boards import SlotResult
from coordinator.calibration.fidelity import (
    CALIBRATION_POLICIES,
    POLICIES,
    FidelityReport,
    RunMetrics,
    fidelity_report,
    live_metrics,
)
from coordinator.calibration.fit import bench_facts, fit_calibration
from coordinator.calibration.mixed import MIXED_POLICY, with_mixed
from coordinator.calibration.switches import (
    SWITCHES_CSV,
    SwitchSample,
    measure_switches,
    write_switches,
)
from coordinator.calibration.windows import first_slot, window_name
from coordinator.calibration_file import CALIBRATION_NAME, Calibration
from coordinator.envs import bench_ops
from coordinator.live import LiveBench
from coordinator.policy_choice import PolicySource
from coordinator.progress import ProgressBar
from coordinator.recorder import RunRecorder
from coordinator.run_folder import busy_cores, git_commit, host_facts, new_run_dir, write_manifest
from testbed.config import TestbedConfig
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.messages import TaskRecord
from testbed.zoo.catalog import Catalog

Say = Callable[[str], None]

DEFAULT_SLOTS = 20
"""Slots per measured run."""
DEFAULT_REPEATS = 3
"""Evict + prefetch repeats per model."""
DEFAULT_WINDOWS = 1
"""Fidelity windows per heuristic (windows.py)."""


def checked_catalog(cfg: TestbedConfig) -> Catalog:
    """The zoo catalog of a bench that can be calibrated: CONFIG_INVALID without agents
    or edges, the zoo checked as `testbed up` checks it (coordinator/bench_setup.py)."""
    if cfg.agents.count < 1 or cfg.edges.count < 1:
        raise TestbedExit(ExitCode.CONFIG_INVALID, "calibrate needs agents and edges on the bench")
    return zoo_dir_of(cfg)[1]


@dataclass(frozen=True)
class CalibrationRun:
    """What a calibrate run wrote: the calibration and its file, the fidelity report and
    its markdown and JSON files."""

    calibration: Calibration
    calibration_path: Path
    report: FidelityReport
    report_md: Path
    report_json: Path


@dataclass(frozen=True)
class Measurement:
    """A bench measured: the fitted calibration and the runs' task records by policy."""

    calibration: Calibration
    fidelity_runs: dict[str, list[TaskRecord]]
    """Slots 0 … S−1 of every policy in `POLICIES`."""
    calibration_runs: dict[str, list[TaskRecord]]
    """Slots S … 2S−1 of every policy in `CALIBRATION_POLICIES`, the fit's records."""
    windows: dict[str, list[list[TaskRecord]]]
    """Every policy's further fidelity windows, 1 … W−1 (windows.py); empty with W = 1."""


def calibrate_bench(
    cfg: TestbedConfig,
    catalog: Catalog,
    *,
    slots: int = DEFAULT_SLOTS,
    repeats: int = DEFAULT_REPEATS,
    windows: int = DEFAULT_WINDOWS,
    out: Path | None = None,
    report_md: Path | None = None,
    say: Say = print,
) -> CalibrationRun:
    """Start the bench of `cfg`, measure it (`windows` fidelity windows per heuristic),
    write the calibration file (`out`, default `<run folder>/calibration.json`) and the
    fidelity report (`report_md`, default fidelity.md beside the calibration file)."""
    run_dir = new_run_dir(cfg.run.out_dir, cfg.experiment, "calibrate", cfg.seed)
    out = out or run_dir / CALIBRATION_NAME
    say(f"run folder: {run_dir}")
    t0 = time.monotonic()
    bench = bench_ops.new_bench(cfg, "calibrate", run_dir=run_dir)
    with bench:
        measured = measure_bench(cfg, catalog, bench, slots, repeats, say, windows)
    out.parent.mkdir(parents=True, exist_ok=True)
    measured.calibration.save(out)
    say(f"\nwrote {out} ({time.monotonic() - t0:.0f} s on the bench)")
    say(measured.calibration.summary())
    print("\ntwin replays (calibrated and paper model) ...", file=sys.stderr)
    live = {p: live_metrics(measured.fidelity_runs[p]) for p in POLICIES}
    runs = {p: live_metrics(measured.calibration_runs[p]) for p in CALIBRATION_POLICIES}
    more = {p: [live_metrics(r) for r in w] for p, w in measured.windows.items()}
    return report_run(cfg, catalog, measured.calibration, out, live, runs, slots, report_md,
                      say, more)  # fmt: skip


def report_run(
    cfg: TestbedConfig,
    catalog: Catalog,
    calibration: Calibration,
    out: Path,
    live: dict[str, RunMetrics],
    runs: dict[str, RunMetrics],
    slots: int,
    report_md: Path | None,
    say: Say,
    windows: dict[str, list[RunMetrics]] | None = None,
) -> CalibrationRun:
    """The fidelity report of a calibrate run (`out`: its calibration file) written and
    said; `report_md` (default: fidelity.md beside `out`) and its .json sibling."""
    report_md = report_md or out.with_name("fidelity.md")
    report = fidelity_report(cfg, catalog, calibration, out, live, runs, slots, windows)
    report_md.parent.mkdir(parents=True, exist_ok=True)
    md, js = report.write(report_md.parent, report_md.stem)
    say("")
    say(report.markdown())
    say(f"wrote {md} and {js}")
    say(f"use it: set `twin.calibration: {out}` in the testbed file")
    return CalibrationRun(calibration, out, report, md, js)


def measure_bench(
    cfg: TestbedConfig,
    catalog: Catalog,
    bench: LiveBench,
    slots: int,
    repeats: int,
    say: Say,
    windows: int = DEFAULT_WINDOWS,
) -> Measurement:
    """Every phase of the module doc on `bench` (started here), and the fit."""
    t0 = time.monotonic()
    load_before = os.getloadavg()[0]
    busy_before = busy_cores()  # the host's other work, measured now (1 s)
    bench.start(PolicySource("random"))  # the boards' random generators start fresh
    say(f"bench up in {time.monotonic() - t0:.1f} s: {cfg.edges.count} edge(s), "
        f"{cfg.agents.count} agent(s); broker {bench.launcher.broker_description}")  # fmt: skip
    spec_models = bench.obs_spec.models
    preload_only = [m for e in cfg.edge_specs() for m in e.preload if m not in spec_models]
    models = list(dict.fromkeys([*spec_models, *preload_only]))
    live, runs, more, switches = _run_phases(bench, models, slots, repeats, windows)
    remote = {"nodes": bench.nodes.describe(), "hosts": hosts_manifest(cfg, bench.nodes)}
    write_manifest(bench.run_dir, cfg, {
        "broker": bench.launcher.broker_description, **(remote if bench.nodes.remote else {}),
        "zoo": {"scale": catalog.scale.value, "models": [e.key for e in catalog.entries]},
        "policy": "calibrate", "slots_per_run": slots, "switch_repeats": repeats,
        "fidelity_windows": windows,
    })  # fmt: skip
    facts = bench_facts(
        cfg, catalog, broker=bench.launcher.broker_description, slots=slots,
        run_dir=str(bench.run_dir), git_commit=git_commit(),
        host={**host_facts(), "load_avg_1min_before": round(load_before, 2),
              "busy_cores_before": round(busy_before, 2),
              "load_avg_1min_after": round(os.getloadavg()[0], 2)},
    )  # fmt: skip
    calibration = fit_calibration(
        cfg, catalog, models=models, local_records=runs["local"],
        offload_records=runs["offload"], switches=switches, facts=facts,
    )  # fmt: skip
    calibration = with_mixed(cfg, catalog, calibration, runs[MIXED_POLICY])
    return Measurement(calibration, live, runs, more)


Runs = dict[str, list[TaskRecord]]


def _run_phases(
    bench: LiveBench, models: list[str], slots: int, repeats: int, windows: int
) -> tuple[Runs, Runs, dict[str, list[list[TaskRecord]]], list[SwitchSample]]:
    """The runs and the switch measurements, each from the edges' preload; their
    records and samples are written to the run folder as they finish."""
    live: Runs = {}
    runs: Runs = {}
    more: dict[str, list[list[TaskRecord]]] = {}
    # a policy's calibration and fidelity runs back to back: the least drift between them
    phases = [("random", 0, 0), ("random", slots, 0), ("local", slots, 0), ("local", 0, 0),
              ("offload", slots, 0), ("offload", 0, 0), ("greedy", 0, 0)]  # fmt: skip
    for w in range(1, windows):  # each window's order turned by one: drift spread evenly
        turned = POLICIES[w % len(POLICIES) :] + POLICIES[: w % len(POLICIES)]
        phases += [(p, first_slot(w, slots), w) for p in turned]
    switches: list[SwitchSample] = []
    for policy, first, window in [*phases, ("switches", -1, 0)]:
        bench_ops.restore_caches(bench)  # `random` runs in slot order: its boards' draws go on
        bench_ops.wait_settled()
        if policy == "switches":
            switches = measure_switches(
                bench, models, repeats, progress=_bar(len(models) * repeats, "model switches")
            )
            write_switches(bench.run_dir / SWITCHES_CSV, switches)
            continue
        purpose = "fidelity" if first == 0 or window else "calibration"
        fidelity = purpose == "fidelity"
        name = window_name(policy, window) if fidelity else f"tasks-{purpose}-{policy}.csv"
        bench.load_policy(PolicySource(policy))
        recorder = RunRecorder(
            bench.run_dir, tasks_name=name, slots_name=None,
            summary_name=name.replace("tasks-", "summary-").replace(".csv", ".json"),
        )  # fmt: skip
        label = f"{purpose} {policy}" + (f" (window {window + 1}/{windows})" if window else "")
        progress = _progress(label, slots)
        records = record_slots(bench, recorder, range(first, first + slots), progress)
        if window:
            more.setdefault(policy, []).append(records)
        else:
            (live if fidelity else runs)[policy] = records
    bench_ops.restore_caches(bench)
    return live, runs, more, switches


def _bar(total: int, label: str) -> Any:
    bar = ProgressBar(total, label)
    return lambda line: bar.update(1, line)


def _progress(label: str, slots: int) -> Any:
    bar = ProgressBar(slots, label)
    tally = [0, 0]

    def update(result: SlotResult) -> None:
        tally[0] += sum(r.completed for r in result.records)
        tally[1] += len(result.records)
        bar.update(1, f"tasks {tally[1]}, completed {100 * tally[0] / max(1, tally[1]):.0f}%")

    return update
