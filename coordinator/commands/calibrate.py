"""`testbed calibrate`: measure the live bench for the twin, then report the twin's
fidelity gap (docs/twin.md). This module reads the flags; the job is
coordinator/calibration/ (measure.py: the phases on the bench, replay.py: `--from`).
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from coordinator.calibration.coedge import calibrate_coedge, replay_coedge
from coordinator.calibration.measure import calibrate_bench, checked_catalog
from coordinator.calibration.replay import replay_run
from coordinator.calibration_file import CALIBRATION_NAME
from coordinator.command_help import add_inventory_flag, help_texts
from testbed.config import BenchSystem, TestbedConfig, load_config
from testbed.exit_codes import ExitCode, TestbedExit, sigterm_as_interrupt


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", **help_texts(
        "measure the live bench for the twin and report the twin's fidelity gap",
        "testbed calibrate --slots 20 --repeats 3",
        "testbed calibrate --slots 20 --windows 5",
        "testbed calibrate --from runs/default__calibrate__0__20250101T000000Z --refit",
        details="Writes calibration.json and fidelity.md: each heuristic live vs the twin on\n"
        "the same tasks (docs/twin.md). With run.system: coedge, the §B bench and its twin\n"
        "(docs/coedge.md, \"Calibration and the twin's gap\"; --repeats unused).",
    ))  # fmt: skip
    p.add_argument("-c", "--config", default=None, help="testbed YAML (default ./testbed.yaml)")
    p.add_argument("--slots", type=int, default=20, help="slots per measured run (default 20)")
    p.add_argument(
        "--repeats", type=int, default=3, help="evict + prefetch repeats per model (default 3)"
    )
    p.add_argument(
        "--windows", type=int, default=1, metavar="W",
        help="fidelity windows per heuristic (default 1); W > 1 gives each gap with its 95 %% "
        "interval over windows and whether it lies within ±10 %%",
    )  # fmt: skip
    p.add_argument(
        "--out", default=None,
        help=f"calibration file (default <run>/{CALIBRATION_NAME}; with --from FILE --refit: "
        "where the refit goes, default over FILE)",
    )  # fmt: skip
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
    add_inventory_flag(p)
    p.set_defaults(func=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    if args.slots < 1 or args.repeats < 1 or args.windows < 1:
        raise TestbedExit(ExitCode.USAGE, "--slots, --repeats and --windows must be ≥ 1")
    sets = list(args.set) + ([f"seed={args.seed}"] if args.seed is not None else [])
    cfg = load_config(args.config, sets=sets, inventory=args.inventory)
    if cfg.run.system is BenchSystem.COEDGE:  # §B: coordinator/calibration/coedge.py
        return _calibrate_coedge(args, cfg)
    catalog = checked_catalog(cfg)
    out = Path(args.out) if args.out else None
    report_md = Path(args.report) if args.report else None
    if args.from_run:
        replay_run(cfg, catalog, Path(args.from_run), out=out, report_md=report_md,
                   refit=args.refit, say=print)  # fmt: skip
        return 0
    signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    calibrate_bench(cfg, catalog, slots=args.slots, repeats=args.repeats, windows=args.windows,
                    out=out, report_md=report_md, say=print)  # fmt: skip
    return 0


def _calibrate_coedge(args: argparse.Namespace, cfg: TestbedConfig) -> int:
    out = Path(args.out) if args.out else None
    report_md = Path(args.report) if args.report else None
    if args.from_run:
        replay_coedge(cfg, Path(args.from_run), out=out, report_md=report_md, say=print)
        return 0
    signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    calibrate_coedge(cfg, slots=args.slots, out=out, report_md=report_md, say=print)
    return 0
