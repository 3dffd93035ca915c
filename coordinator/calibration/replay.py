"""An earlier calibrate run again, without a bench (`testbed calibrate --from RUN`): the
twin replayed against the run's recorded fidelity runs and the report written again;
with `refit`, the calibration first fitted again from the run's records (fit.py), so a
change to the fit needs no new measurement."""

from __future__ import annotations

import math
from pathlib import Path

from coordinator.calibration.fidelity import (
    CALIBRATION_POLICIES,
    POLICIES,
    RunMetrics,
    csv_metrics,
)
from coordinator.calibration.fit import fit_calibration
from coordinator.calibration.measure import CalibrationRun, Say, report_run
from coordinator.calibration.mixed import MIXED_POLICY, with_mixed
from coordinator.calibration.switches import SWITCHES_CSV, SwitchSample, read_switches
from coordinator.calibration.windows import window_name
from coordinator.calibration_file import CALIBRATION_NAME, Calibration, CalibrationError
from coordinator.records import read_records
from testbed.config import TestbedConfig
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.zoo.catalog import Catalog


def replay_run(
    cfg: TestbedConfig,
    catalog: Catalog,
    source: Path,
    *,
    out: Path | None = None,
    report_md: Path | None = None,
    refit: bool = False,
    say: Say = print,
) -> CalibrationRun:
    """The report of the calibrate run `source` (its folder, or its calibration file:
    the records are then in the run folder the file names, or, where that folder is
    gone, in `records/` beside the file), the twin replayed again.
    `out`: for a run folder, its calibration file (default: its calibration.json); for
    a calibration file, where the refit goes (default: over it)."""
    read = source if source.is_file() else out or source / CALIBRATION_NAME
    try:
        calibration = Calibration.load(read)
    except CalibrationError as exc:
        raise unreadable_source(source, exc) from None
    records = source if source.is_dir() else calibration.records(source)
    out = out if refit and out is not None else read
    if refit:
        calibration = refit_calibration(cfg, catalog, calibration, records)
        out.parent.mkdir(parents=True, exist_ok=True)
        calibration.save(out)
        say(f"fitted again from {records}: wrote {out}")
        say(calibration.summary())
    try:
        live = {p: csv_metrics(records / f"tasks-fidelity-{p}.csv") for p in POLICIES}
        runs = {
            p: csv_metrics(records / f"tasks-calibration-{p}.csv")
            for p in CALIBRATION_POLICIES
            if p != MIXED_POLICY or (records / f"tasks-calibration-{p}.csv").is_file()
        }
    except FileNotFoundError as exc:
        raise TestbedExit(ExitCode.USAGE, f"not a calibrate run folder: {exc}") from None
    windows: dict[str, list[RunMetrics]] = {p: [] for p in POLICIES}
    w = 1  # windows 1, 2, … while every policy has one (`testbed calibrate --windows`)
    while all((records / window_name(p, w)).is_file() for p in POLICIES):
        for p in POLICIES:
            windows[p].append(csv_metrics(records / window_name(p, w)))
        w += 1
    if cfg.seed != calibration.bench.seed:
        raise TestbedExit(ExitCode.USAGE, f"{out}: measured with seed {calibration.bench.seed}")
    slots = calibration.bench.slots
    return report_run(cfg, catalog, calibration, out, live, runs, slots, report_md, say, windows)


def unreadable_source(source: Path, exc: Exception) -> TestbedExit:
    """`--from` without a calibration file to read: what was wrong, and where such a
    run's file usually is when it is not in the run folder."""
    hint = (
        "; a run whose calibration file was written elsewhere (`--out`, or an experiment's"
        " calibration/<value>/calibration.json) keeps it there: pass that file to --from"
        if source.is_dir()
        else ""
    )
    return TestbedExit(ExitCode.USAGE, f"--from {source}: {exc}{hint}")


def refit_calibration(
    cfg: TestbedConfig, catalog: Catalog, old: Calibration, records: Path
) -> Calibration:
    """`old` fitted again from the task records (and switch samples) in the run folder
    `records`; a run from before switches were kept keeps its switch figures."""
    try:
        local = read_records(records / "tasks-calibration-local.csv")
        offload = read_records(records / "tasks-calibration-offload.csv")
    except FileNotFoundError as exc:
        raise TestbedExit(ExitCode.USAGE, f"cannot fit again: {exc}") from None
    if (records / SWITCHES_CSV).is_file():
        switches = read_switches(records / SWITCHES_CSV)
    else:  # a run from before switches were kept: its switch figures stay as they were
        edge = cfg.edge_specs()[0]
        rate = edge.cloud_link_mbps if cfg.emulation.links_paced(cfg.inventory.remote) else math.inf
        switches = [
            SwitchSample(
                m.model_id, edge.id, m.fetch_overhead_s + m.size_bytes * 8 / 1e6 / rate,
                m.verify_s, m.load_s, m.warmup_s, m.switch_s,
            )
            for m in old.models
        ]  # fmt: skip
    models = [m.model_id for m in old.models]
    fitted = fit_calibration(
        cfg, catalog, models=models, local_records=local, offload_records=offload,
        switches=switches, facts=old.bench,
    )  # fmt: skip
    mixed = records / f"tasks-calibration-{MIXED_POLICY}.csv"  # none in runs from before
    return with_mixed(cfg, catalog, fitted, read_records(mixed) if mixed.is_file() else None)
