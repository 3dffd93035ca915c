"""`testbed coedge`: the schedulers of docs/papers.md §B in their twin (docs/coedge.md).

- `testbed coedge train --algo NAME [--steps N] [--seed S] [--set K=V]`: train one
  scheduler (coordinator/schedulers.py) on the twin of the config and evaluate it, with
  Random on the same tasks beside it; a learned one is exported for the boards
  (coordinator/algorithms/discrete_export.py) into a run folder in `run.out_dir`:
  actor.onnx, actor.spec.json, config.yaml (the scheduler's) and train.json;
- `testbed coedge experiment run SPEC [--out DIR] [--backend live|twin|auto]`: a sweep
  (experiments/coedge_*.yaml, coordinator/coedge_experiments.py), resumable; evaluated
  in the twin, or also on the live bench (`evaluate.backend`, coordinator/
  coedge_live_eval.py);
- `testbed coedge experiment report DIR`: its report.md again from the cells.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from coordinator.command_help import help_texts
from coordinator.jsonout import add_json_flag, print_json
from testbed.exit_codes import ExitCode, TestbedExit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("coedge", **help_texts(
        "train and compare the §B schedulers (DDRL-AMSA and its baselines) in their twin",
        "testbed coedge train --algo ddrl-amsa --steps 8000 --seed 0",
        "testbed coedge experiment run experiments/coedge_arrival.yaml",
        "testbed coedge experiment report docs/results/coedge_arrival",
    ))  # fmt: skip
    commands = p.add_subparsers(dest="coedge_command", required=True, metavar="COMMAND")
    _register_train(commands)
    experiment = commands.add_parser("experiment", **help_texts(
        "run or report a §B sweep",
        "testbed coedge experiment run experiments/coedge_capacity.yaml",
    ))  # fmt: skip
    actions = experiment.add_subparsers(dest="experiment_command", required=True, metavar="ACTION")
    run = actions.add_parser("run", **help_texts(
        "train and evaluate every cell of a spec, then write results.json and report.md",
        "testbed coedge experiment run experiments/coedge_deadline.yaml --workers 2",
        details="A cell already in OUT/cells/ is skipped: run again to resume. Live cells\n"
        "(evaluate.backend) run one at a time, each on a fresh bench.",
    ))  # fmt: skip
    run.add_argument("spec", help="experiments/coedge_*.yaml")
    run.add_argument("--out", default=None, help="default: runs/<spec name>")
    run.add_argument("--workers", type=int, default=1, help="cells in parallel processes")
    run.add_argument("--backend", default=None, choices=["auto", "live", "twin"],
                     help="override the spec's evaluate.backend")  # fmt: skip
    run.set_defaults(func=run_experiment_command)
    report = actions.add_parser("report", **help_texts(
        "write report.md again from a run's folder",
        "testbed coedge experiment report docs/results/coedge_deadline",
    ))  # fmt: skip
    report.add_argument("folder", help="the run's output folder (holds results.json)")
    report.set_defaults(func=report_command)


def _register_train(commands: argparse._SubParsersAction) -> None:
    from coordinator.schedulers import SCHEDULERS

    train = commands.add_parser("train", **help_texts(
        "train one scheduler in the twin and evaluate it beside Random",
        "testbed coedge train --algo smcoedge --steps 4000 --set coedge.top_k=2",
        details="A learned scheduler is exported for the boards into a new run folder in\n"
        "run.out_dir: actor.onnx + actor.spec.json (checked against torch), config.yaml,\n"
        "train.json.",
    ))  # fmt: skip
    train.add_argument("--algo", required=True, choices=list(SCHEDULERS))
    train.add_argument("-c", "--config", default=None, help="testbed YAML (default ./testbed.yaml)")
    train.add_argument(
        "--steps", type=int, default=8_000,
        help="environment steps (default 8000; the first 400 act at random)",
    )  # fmt: skip
    train.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    train.add_argument("--envs", type=int, default=8, help="twin environments trained together")
    train.add_argument("--eval-steps", type=int, default=500, help="evaluation steps (16 envs)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config key")  # fmt: skip
    add_json_flag(train)
    train.set_defaults(func=train_command)


def train_command(args: argparse.Namespace) -> int:
    from coordinator.coedge_experiments import EVAL_SEED_OFFSET
    from coordinator.schedulers import SCHEDULERS, evaluate_scheduler, train_scheduler
    from testbed.config import load_config

    if args.steps < 1 or args.envs < 1 or args.eval_steps < 1:
        raise TestbedExit(ExitCode.USAGE, "--steps, --envs and --eval-steps must be ≥ 1")
    cfg = load_config(args.config, sets=[*args.set, ("seed", args.seed)])
    out, actor = {}, {}
    for name in dict.fromkeys([args.algo, "random"]):
        trained = train_scheduler(name, cfg, args.seed, args.steps, num_envs=args.envs)
        metrics = evaluate_scheduler(trained, EVAL_SEED_OFFSET + args.seed, num_envs=16,
                                     steps=args.eval_steps)  # fmt: skip
        out[name] = {**metrics, "action_mode": str(trained.cfg.coedge.action_mode),
                     "train_s": round(trained.train_s, 2), "updates": trained.updates}  # fmt: skip
        if name == args.algo and SCHEDULERS[name].learned:
            actor = _export_actor(trained, cfg, args.seed)
    result = {"label": "twin", "seed": args.seed, "steps": args.steps, "schedulers": out,
              **({"actor": actor} if actor else {})}  # fmt: skip
    if actor:
        (Path(actor["run_dir"]) / "train.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print_json(result)
        return 0
    print("scheduler      mode    mean delay (s)  completion  train s  (twin)")
    for name, m in out.items():
        print(f"{name:14} {m['action_mode']:7} {m['delay_s']:14.4f}  {m['completion']:10.3f}  "
              f"{m['train_s']:7.1f}")  # fmt: skip
    if actor:
        print(f"run folder: {actor['run_dir']}\n  the actor for the boards: actor.onnx + "
              f"actor.spec.json (ONNX vs torch: {actor['max_diff']:.2g} "
              f"≤ {actor['limit']:g})")  # fmt: skip
    return 0


def _export_actor(trained: Any, cfg: Any, seed: int) -> dict[str, Any]:
    """A new run folder holding the trained scheduler's checked ONNX export, its spec
    and its config; where they are."""
    from coordinator.algorithms.discrete_export import export_trained
    from coordinator.algorithms.export import TOLERANCE
    from coordinator.run_folder import new_run_dir, unwritable, write_config

    run_dir = new_run_dir(cfg.run.out_dir, cfg.experiment, f"coedge-{trained.name}", seed)
    write_config(run_dir, trained.cfg)
    try:
        exported = export_trained(trained, seed, run_dir)
    except OSError as exc:
        raise unwritable(run_dir, exc) from None
    worst = max(exported.errors.get("output", 0.0), exported.errors.get("probs", 0.0))
    return {"run_dir": str(run_dir), "onnx": str(exported.onnx_path),
            "spec": str(exported.spec_path), "max_diff": worst, "limit": TOLERANCE}  # fmt: skip


def run_experiment_command(args: argparse.Namespace) -> int:
    from coordinator.coedge_experiments import load_coedge_spec, run_experiment

    spec = load_coedge_spec(args.spec)
    if args.backend is not None:
        import dataclasses

        from coordinator.experiment_spec import EvalBackend

        ev = dataclasses.replace(spec.evaluate, backend=EvalBackend(args.backend))
        spec = dataclasses.replace(spec, evaluate=ev)
    if args.workers < 1:
        raise TestbedExit(ExitCode.USAGE, "--workers must be ≥ 1")
    out = Path(args.out) if args.out else Path("runs") / spec.name
    command = "testbed " + " ".join(sys.argv[1:])
    run_experiment(spec, out, workers=args.workers, command=command,
                   progress=lambda line: print(line, flush=True))  # fmt: skip
    print(f"wrote {out / 'results.json'} and {out / 'report.md'}")
    return 0


def report_command(args: argparse.Namespace) -> int:
    from coordinator.coedge_experiments import report_from_folder

    folder = Path(args.folder)
    if not (folder / "results.json").exists():
        raise TestbedExit(ExitCode.USAGE, f"{folder}: no results.json")
    report_from_folder(folder)
    print((folder / "report.md").read_text())
    return 0
