"""`testbed calibrate` on the live §B bench (`run.system: coedge`, docs/coedge.md,
"Calibration and the twin's gap"): the runs, the fit, calibration.json and the
twin's fidelity report. The command (coordinator/commands/calibrate.py) routes here.

One bench is started; for each heuristic of `COEDGE_POLICIES` two clocked runs back
to back (the least drift of the shared host's load between them), each drained to
empty queues before the next: a calibration run on slots S … 2S−1, whose shares the
fit uses (coedge_fit.py), then a fidelity run on slots 0 … S−1, tasks the fit never
saw. Each run writes tasks-, shares-, slots- and summary-<purpose>-<policy> files in
the run folder. Then calibration.json is written, the twin replays every fidelity run
on its tasks (coedge_gap.py) and fidelity.md and fidelity.json go beside the
calibration. `--from RUN` does the fit and the replay again from a run folder's
files, without a bench.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from coordinator.bench_setup import zoo_dir_of
from coordinator.calibration.coedge_fit import ShareSample, fit_coedge, share_samples
from coordinator.calibration.coedge_gap import (
    COEDGE_POLICIES,
    CoedgeFidelity,
    PolicyGap,
    live_choices,
    live_metrics,
    replay_twin,
)
from coordinator.calibration.replay import unreadable_source
from coordinator.calibration_file import CALIBRATION_NAME
from coordinator.coedge_calibration_file import CoedgeCalibration, CoedgeCalibrationError
from coordinator.coedge_live import CoedgeBench, SlotClock
from coordinator.coedge_run import RECORDER_FILES
from coordinator.envs.coedge_twin import CoedgeParams
from coordinator.policy_choice import PolicySource
from coordinator.progress import ProgressBar
from coordinator.recorder import RunRecorder, RunStatus
from coordinator.records import read_records
from coordinator.run_folder import git_commit, new_run_dir, write_config
from testbed.coedge.tasks import slot_tasks
from testbed.config import TestbedConfig
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.messages import TaskRecord
from testbed.tasks import Task

Say = Callable[[str], None]

CALIBRATION_PURPOSE, FIDELITY_PURPOSE = "calibration", "fidelity"
IN_SAMPLE_NAME = "calibration-in-sample.json"
"""Beside calibration.json: the same fit on the fidelity runs (the report's in-sample
column)."""


class CalibrationBench(CoedgeBench):
    """The §B bench whose slot clock starts again for each run (every run's slot
    s at s·Δ after its own first slot)."""

    def restart_clock(self) -> None:
        self.clock = SlotClock(self.cfg.coedge.slot_s)
        self._first_slot = None


def calibrate_coedge(
    cfg: TestbedConfig, *, slots: int, out: Path | None, report_md: Path | None, say: Say = print
) -> tuple[CoedgeCalibration, CoedgeFidelity]:
    """Start the §B bench of `cfg`, run and fit (module doc); write the calibration
    (`out`, default `<run folder>/calibration.json`) and the report (`report_md`,
    default fidelity.md beside it)."""
    zoo_dir, _ = zoo_dir_of(cfg)
    run_dir = new_run_dir(cfg.run.out_dir, cfg.experiment, "calibrate", cfg.seed)
    say(f"run folder: {run_dir}")
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    bench = CalibrationBench(cfg, run_dir, write_config(run_dir, cfg), zoo_dir)
    with bench:
        bench.start(PolicySource(COEDGE_POLICIES[0]))
        say(f"§B bench up in {time.monotonic() - t0:.1f} s: {cfg.edges.count} edges, "
            f"{cfg.agents.count} schedulers, clocked slots of {cfg.coedge.slot_s:g} s")  # fmt: skip
        for policy in COEDGE_POLICIES:
            for purpose, first in ((CALIBRATION_PURPOSE, slots), (FIDELITY_PURPOSE, 0)):
                run_policy(bench, policy, purpose, range(first, first + slots))
    say(f"measured in {time.monotonic() - t0:.0f} s")
    measured = {
        "policies": list(COEDGE_POLICIES), "slots": slots, "seed": cfg.seed,
        "slot_s": cfg.coedge.slot_s, "run_dir": str(run_dir), "git_commit": git_commit(),
        "load_avg_1min_before": round(load_before, 2),
        "load_avg_1min_after": round(os.getloadavg()[0], 2),
    }  # fmt: skip
    return fit_and_report(cfg, run_dir, measured, out, report_md, say)


def run_policy(
    bench: CalibrationBench, policy: str, purpose: str, slots: range
) -> list[TaskRecord]:
    """One clocked run of `policy` on `slots`, drained, its files in the run folder;
    its records (with their shares)."""
    bench.load_policy(PolicySource(policy))
    bench.restart_clock()
    name = f"{purpose}-{policy}"
    recorder = RunRecorder(
        bench.run_dir, tasks_name=f"tasks-{name}.csv", slots_name=f"slots-{name}.csv",
        summary_name=f"summary-{name}.json", slot_fields=RECORDER_FILES["slot_fields"],
        shares_name=f"shares-{name}.csv",
    )  # fmt: skip
    bar = ProgressBar(len(slots), f"{purpose} {policy}")
    for slot in slots:
        result = bench.step(slot)
        recorder.add_slot(slot, result.records, result.timing())
        bar.update(1, f"in flight {result.in_flight}")
    recorder.add_records(bench.drain())
    recorder.finish(RunStatus.COMPLETED)
    return recorder.records


def run_tasks(cfg: TestbedConfig, slots: range) -> list[list[list[Task]]]:
    """[slot][station] the tasks each board draws (the boards' own draw)."""
    agents = [s.id for s in cfg.agent_specs()]
    return [[slot_tasks(cfg, cfg.seed, a, s) for a in agents] for s in slots]


def read_samples(
    cfg: TestbedConfig, run_dir: Path, purpose: str, slots: range
) -> list[ShareSample]:
    """The completed shares of every policy's `purpose` run (its tasks on `slots`)."""
    agents, edges = [s.id for s in cfg.agent_specs()], [e.id for e in cfg.edge_specs()]
    tasks = {t.task_id: t for slot in run_tasks(cfg, slots) for ts in slot for t in ts}
    samples: list[ShareSample] = []
    for policy in COEDGE_POLICIES:  # one run at a time: a task id is in every run
        with open(run_dir / f"shares-{purpose}-{policy}.csv", newline="") as f:
            samples += share_samples(csv.DictReader(f), tasks, agents, edges, policy)
    if not samples:
        raise TestbedExit(ExitCode.FAILURE, f"no share completed in the {purpose} runs: nothing "
                          "to fit (the runs' shares.csv and the nodes' logs say why)")  # fmt: skip
    return samples


def fit_and_report(
    cfg: TestbedConfig, run_dir: Path, measured: dict[str, Any], out: Path | None,
    report_md: Path | None, say: Say,
) -> tuple[CoedgeCalibration, CoedgeFidelity]:  # fmt: skip
    """The fit from the calibration runs' shares, saved (and one from the fidelity
    runs' own, calibration-in-sample.json beside it); the twin replayed against the
    fidelity runs; the report written. Reads only the run folder's files."""
    slots = int(measured["slots"])
    try:
        fits = {
            purpose: fit_coedge(
                read_samples(cfg, run_dir, purpose, first), [e.id for e in cfg.edge_specs()],
                [e.cpu_ghz for e in cfg.edge_specs()], cfg.coedge.rate_matrix_mbps(cfg.seed),
                measured,
            )
            for purpose, first in ((CALIBRATION_PURPOSE, range(slots, 2 * slots)),
                                   (FIDELITY_PURPOSE, range(slots)))
        }  # fmt: skip
        live = {
            p: read_records(run_dir / f"tasks-{FIDELITY_PURPOSE}-{p}.csv") for p in COEDGE_POLICIES
        }
    except FileNotFoundError as exc:
        raise TestbedExit(ExitCode.USAGE, f"not a §B calibrate run folder: {exc}") from None
    calibration = fits[CALIBRATION_PURPOSE]
    out = out or run_dir / CALIBRATION_NAME
    calibration.save(out)
    in_sample = fits[FIDELITY_PURPOSE].save(out.with_name(IN_SAMPLE_NAME))
    say(f"wrote {out} (and {in_sample.name}, fitted on the fidelity runs)")
    say(calibration.summary())
    report = fidelity(cfg, calibration, (str(out), str(in_sample)), live, slots)
    md, js = report.write(report_md or out.with_name("fidelity.md"))
    say("")
    say(report.markdown())
    say(f"wrote {md} and {js}")
    say(f"use it: set `coedge.calibration: {out}` in the testbed file")
    return calibration, report


def fidelity(
    cfg: TestbedConfig, calibration: CoedgeCalibration, paths: tuple[str, str],
    live: dict[str, list[TaskRecord]], slots: int,
) -> CoedgeFidelity:  # fmt: skip
    """Each policy's live fidelity run against the twin on the same tasks, with the
    calibration and the in-sample one (`paths`), and without."""
    tasks = run_tasks(cfg, range(slots))
    twins = [CoedgeParams.from_config(replace(cfg.coedge, calibration=path), cfg.seed)
             for path in (*paths, None)]  # fmt: skip
    edge_ids = [e.id for e in cfg.edge_specs()]
    gaps = []
    for policy in COEDGE_POLICIES:
        drawn = live_choices(live[policy], edge_ids)  # `random`: the boards' own draws
        twin, in_sample, bare = (replay_twin(p, tasks, policy, cfg.seed, drawn) for p in twins)
        gaps.append(PolicyGap(policy, live_metrics(live[policy]), twin, in_sample, bare))
    return CoedgeFidelity(gaps, paths[0], calibration.summary(), calibration.measured)


def replay_coedge(
    cfg: TestbedConfig, source: Path, *, out: Path | None, report_md: Path | None,
    say: Say = print,
) -> tuple[CoedgeCalibration, CoedgeFidelity]:  # fmt: skip
    """`--from RUN`: the fit and the report again from a §B calibrate run folder (or
    its calibration file), no bench."""
    path = source if source.is_file() else source / CALIBRATION_NAME
    try:
        old = CoedgeCalibration.load(path)
    except CoedgeCalibrationError as exc:
        raise unreadable_source(source, exc) from None
    run_dir = Path(old.measured["run_dir"]) if source.is_file() else source
    if cfg.seed != old.measured.get("seed"):
        raise TestbedExit(ExitCode.USAGE, f"{path}: measured with seed {old.measured.get('seed')}")
    return fit_and_report(cfg, run_dir, dict(old.measured), out or path, report_md, say)
