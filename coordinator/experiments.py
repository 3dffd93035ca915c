"""`testbed experiment run SPEC.yaml`: a paper experiment, every cell measured.

A spec (experiments/*.yaml, documented there and in docs/experiments.md) names a bench,
overrides for every cell, one swept config key with its values, the algorithms and the
seeds. For each (value, seed) the trained algorithms are trained in the twin
(`testbed train`'s code, one run folder each), then every algorithm is evaluated on the
same seed's task sequence (common random numbers) — on the live bench where the machine
can hold it, else in the twin, and each cell says which. `results.json` grows cell by
cell, so an interrupted experiment continues where it stopped when run again with the
same `--out`; at the end `report.md` and the figures are written (coordinator/report.py).
The cells run one after the other (coordinator/executors.py), or as Ray tasks with
`--executor ray` (coordinator/ray_executor.py); both write the same files.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from coordinator.command_help import help_texts
from coordinator.executors import Executor
from coordinator.experiment_plan import Plan, make_plan
from coordinator.experiment_results import Results
from coordinator.experiment_spec import EvalBackend, load_spec
from coordinator.jsonout import add_json_flag, print_json
from coordinator.recorder import RunStatus
from testbed.exit_codes import ExitCode, TestbedExit, sigterm_as_interrupt

# ---------------------------------------------------------------------------- command


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", **help_texts(
        "run a paper experiment (train, evaluate, report)",
        "testbed experiment check experiments/mato_devices.yaml",
        "testbed experiment run experiments/mato_devices.yaml --seeds 0",
        details="A spec (experiments/*.yaml) sweeps one config key (docs/experiments.md).",
    ))  # fmt: skip
    ps = p.add_subparsers(dest="experiment_command", required=True, metavar="COMMAND")
    r = ps.add_parser("run", **help_texts(
        "train and evaluate every cell of a spec, then report",
        "testbed experiment run experiments/mato_devices.yaml --values 5,10 --seeds 0",
        details="results.json grows cell by cell: run the same command (same --out) again\n"
        "to continue an interrupted experiment; report.md and the figures come last.",
    ))  # fmt: skip
    r.add_argument("spec", help="experiment spec, e.g. experiments/mato_models.yaml")
    r.add_argument("--out", default=None,
                   help="experiment folder (default runs/experiments/<name>); an existing "
                        "one is continued")  # fmt: skip
    r.add_argument("--seeds", default=None, help="comma-separated subset of the spec's seeds")
    r.add_argument("--values", default=None, help="comma-separated subset of the sweep")
    r.add_argument("--algorithms", default=None, help="comma-separated subset")
    r.add_argument("--steps", type=int, default=None, help="training steps (train.steps)")
    r.add_argument("--slots", type=int, default=None, help="slots per evaluation")
    r.add_argument("--backend", default=None, choices=[b.value for b in EvalBackend])
    r.add_argument(
        "--calibrate-slots",
        type=int,
        default=None,
        help="override calibrate_slots (0: use the bench file's twin.calibration)",
    )
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for every cell, after the spec's `set`")  # fmt: skip
    r.add_argument("--executor", default=Executor.SEQUENTIAL.value,
                   choices=[e.value for e in Executor],
                   help="sequential (default: one cell after the other) or ray (cells as "
                        "Ray tasks; pip install 'aigc-testbed[cluster]')")  # fmt: skip
    r.add_argument("--address", default=None, metavar="ADDR",
                   help="with --executor ray: an existing Ray cluster (`ray start --head` "
                        "prints it; default: a local one sized to this machine)")  # fmt: skip
    r.set_defaults(func=run_experiment)
    c = ps.add_parser("check", **help_texts(
        "validate a spec and print its cells",
        "testbed experiment check experiments/oracle_small.yaml --json",
        details="Every cell's config is built and checked; nothing is trained or run.",
    ))  # fmt: skip
    c.add_argument("spec", help="experiment spec, e.g. experiments/mato_models.yaml")
    add_json_flag(c)
    c.set_defaults(func=check_experiment)
    from coordinator.experiment_reuse import register as register_reuse

    register_reuse(ps)


def _csv(text: str | None, cast: Any = str) -> list[Any] | None:
    if text is None:
        return None
    try:
        return [cast(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise TestbedExit(ExitCode.USAGE, f"expected a comma-separated list: {text!r}") from None


def _plan(args: argparse.Namespace) -> Plan:
    spec_path = Path(args.spec)
    spec = load_spec(spec_path)
    return make_plan(
        spec, spec_path, seeds=_csv(getattr(args, "seeds", None), int),
        values=_csv(getattr(args, "values", None)),
        algorithms=_csv(getattr(args, "algorithms", None)),
        steps=getattr(args, "steps", None), slots=getattr(args, "slots", None),
        backend=getattr(args, "backend", None), sets=getattr(args, "set", None),
        calibrate_slots=getattr(args, "calibrate_slots", None),
    )  # fmt: skip


def plan_outline(spec_path: str, plan: Plan) -> dict[str, Any]:
    """What `testbed experiment check --json` prints (docs/cli.md): the bench of every
    sweep value and where its cells are evaluated."""
    cells = []
    for value in plan.values:
        cfg = plan.cell_config(value, plan.seeds[0], Path("."))
        backend, why = plan.backend(cfg)
        cells.append({"value": value, "agents": cfg.agents.count, "edges": cfg.edges.count,
                      "models": len(cfg.tasks.active_types), "backend": backend,
                      "backend_reason": why, "oracle": plan.oracle(cfg)})  # fmt: skip
    return {"spec": spec_path, "name": plan.spec.name, "sweep_key": plan.spec.sweep.key,
            "cells": cells, "seeds": plan.seeds, "algorithms": plan.algorithms,
            "calibrate_slots": plan.spec.calibrate_slots}  # fmt: skip


def check_experiment(args: argparse.Namespace) -> int:
    outline = plan_outline(args.spec, _plan(args))
    if args.json:
        print_json(outline)
        return 0
    print(f"{args.spec}: ok — {outline['name']}")
    for c in outline["cells"]:
        bench = f"{c['agents']} devices, {c['edges']} edges, {c['models']} models"
        oracle = ", with the oracle" if c["oracle"] else ""
        print(f"  {outline['sweep_key']}={c['value']}: {bench}; evaluated {c['backend']} "
              f"({c['backend_reason']}){oracle}")  # fmt: skip
    print(f"  seeds {outline['seeds']}; algorithms {', '.join(outline['algorithms'])}")
    if outline["calibrate_slots"]:
        print(f"  the twin is calibrated per value ({outline['calibrate_slots']} slots per run)")
    return 0


def run_cells(plan: Plan, out_dir: Path, executor: Executor, address: str | None) -> Results:
    """Every missing cell of `plan` into `out_dir`/results.json, by `executor`. Ray is
    imported only here, only when asked for: the default path never loads it."""
    if executor == Executor.RAY:
        from coordinator.ray_executor import run_on_ray

        return run_on_ray(plan, out_dir, address)
    from coordinator.executors import run_sequential

    return run_sequential(plan, out_dir)


def run_experiment(args: argparse.Namespace) -> int:
    from coordinator.report import write_report
    from coordinator.training import Interrupted

    executor = Executor(getattr(args, "executor", Executor.SEQUENTIAL))
    address = getattr(args, "address", None)
    if address and executor != Executor.RAY:
        raise TestbedExit(ExitCode.USAGE, "--address: only with --executor ray")
    plan = _plan(args)
    out_dir = Path(args.out or Path("runs") / "experiments" / plan.spec.name)
    print(f"experiment folder: {out_dir}")
    t0 = time.monotonic()
    signal.signal(signal.SIGTERM, sigterm_as_interrupt)  # `kill` stops it as Ctrl-C does
    try:
        results = run_cells(plan, out_dir, executor, address)
    except (KeyboardInterrupt, Interrupted):
        Results(out_dir / "results.json", plan.spec).mark(RunStatus.INTERRUPTED)
        print(f"\ninterrupted; the finished cells are in {out_dir}/results.json: run the same "
              f"command again (with --out {out_dir}) to continue", file=sys.stderr)  # fmt: skip
        return int(ExitCode.INTERRUPTED)
    results.mark(RunStatus.COMPLETED)
    report = write_report([out_dir])
    print(report.read_text())
    print(f"wrote {out_dir}/ (results.json, report.md, figures) in "
          f"{time.monotonic() - t0:.0f} s")  # fmt: skip
    return 0
