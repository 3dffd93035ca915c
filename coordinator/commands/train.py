"""`testbed train`: train MADDPG-MATO or a baseline on the twin or the live bench.

    testbed train --algo mato|nomodel|saddpg --backend twin|live [--steps N] [--seed S]
                  [-c FILE] [--resume RUN_DIR] [--set K=V]

Writes `runs/<experiment>__<algo>__<seed>__<utc>/`: config.yaml, manifest.json,
metrics.csv, reward_curve.png, checkpoints/ (step-N.pt, latest.pt), actors/<agent>.onnx
(each checked against torch) and summary.json — with the twin, the final evaluation
beside Random, Greedy and Local on the same evaluation tasks. `--resume RUN_DIR`
continues from its latest checkpoint to the same total steps, in the same folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from coordinator.command_help import help_texts
from coordinator.training import Interrupted, train_run
from testbed.config import TestbedConfig, load_config
from testbed.exit_codes import ExitCode, TestbedExit

BACKENDS = ("twin", "live")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", **help_texts(
        "train MADDPG-MATO or a baseline (twin or live)",
        "testbed train --algo mato --backend twin --steps 800 --seed 0",
        "testbed train --resume runs/default__mato__0__20250101T000000Z",
        details="Writes runs/<experiment>__<algo>__<seed>__<utc>/: metrics, reward curve,\n"
        "checkpoints and the ONNX actors, each checked against torch (docs/algorithms.md).",
    ))  # fmt: skip
    p.add_argument("--algo", default=None, help="mato | nomodel | saddpg | mappo")
    p.add_argument("--backend", default=None, help="twin (default) | live")
    p.add_argument("--steps", type=int, default=None, help="environment steps (train.steps)")
    p.add_argument("--seed", type=int, default=None, help="master seed")
    p.add_argument("-c", "--config", default=None, help="testbed YAML (default ./testbed.yaml)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue this run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set train.num_envs=32")  # fmt: skip
    p.set_defaults(func=run_train)


# ---------------------------------------------------------------------------- set-up


def _choose(args: argparse.Namespace) -> tuple[TestbedConfig, str, str, Path | None]:
    """Config, algorithm, backend, and the run folder to resume (or None)."""
    from coordinator.algorithms import ALGORITHMS, TRAINED

    if args.resume:
        run_dir = Path(args.resume)
        if args.config or args.set or args.steps is not None or args.seed is not None:
            raise TestbedExit(ExitCode.USAGE, "--resume takes config, steps and seed from the "
                              "run folder: drop -c, --set, --steps and --seed")  # fmt: skip
        try:
            manifest = json.loads((run_dir / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise TestbedExit(ExitCode.USAGE, f"{run_dir} is not a training run: {exc}") from None
        if (
            not isinstance(manifest, dict)
            or manifest.get("command") != "train"
            or manifest.get("algo") not in TRAINED
            or manifest.get("backend") not in BACKENDS
        ):
            raise TestbedExit(ExitCode.USAGE, f"{run_dir} is not a training run: its "
                              "manifest.json names no trained algorithm and backend")  # fmt: skip
        if not (run_dir / "checkpoints" / "latest.pt").exists():
            raise TestbedExit(ExitCode.USAGE, f"{run_dir} has no checkpoints/latest.pt")
        for flag in ("algo", "backend"):
            given = getattr(args, flag)
            if given is not None and given != manifest[flag]:
                raise TestbedExit(
                    ExitCode.USAGE, f"{run_dir} was trained with --{flag} {manifest[flag]}"
                )
        cfg = load_config(run_dir / "config.yaml", env={})
        return cfg, manifest["algo"], manifest["backend"], run_dir
    algo = args.algo or "mato"
    if algo not in ALGORITHMS:
        raise TestbedExit(ExitCode.USAGE, f"unknown algorithm {algo!r}; choose from "
                          f"{', '.join(TRAINED)}")  # fmt: skip
    if not ALGORITHMS[algo].trained:
        raise TestbedExit(ExitCode.USAGE, f"{algo} is not trained: run it with `testbed up "
                          f"--policy {algo}` (twin figures: every training summary)")  # fmt: skip
    backend = args.backend or "twin"
    if backend not in BACKENDS:
        raise TestbedExit(ExitCode.USAGE, f"unknown backend {backend!r}; choose twin or live")
    sets = list(args.set)
    if args.steps is not None:
        sets.append(f"train.steps={args.steps}")
    if args.seed is not None:
        sets.append(f"seed={args.seed}")
    return load_config(args.config, sets=sets), algo, backend, None


# ---------------------------------------------------------------------------- command


def run_train(args: argparse.Namespace) -> int:
    cfg, algo, backend, resume_dir = _choose(args)
    try:
        run_dir, summary = train_run(cfg, algo, backend, resume_dir=resume_dir)
    except Interrupted as exc:
        print(f"\ninterrupted; resume with `testbed train --resume {exc.run_dir}`"
              + (f" (from {exc.checkpoint.name})" if exc.checkpoint else ""),
              file=sys.stderr)  # fmt: skip
        return int(ExitCode.INTERRUPTED)
    if summary.get("complete_before"):
        print(f"{run_dir} is complete ({summary['steps']} steps)")
        return 0
    _print_summary(summary)
    print(f"\nwrote {run_dir}/ (config.yaml, manifest.json, metrics.csv, reward_curve.png, "
          "checkpoints/, actors/, summary.json)")  # fmt: skip
    return 0


def _print_summary(summary: dict[str, Any]) -> None:
    rows = []
    if summary.get("final_eval"):
        rows.append((summary["title"], summary["final_eval"]))
    for name, stats in (summary.get("baselines_eval") or {}).items():
        rows.append((name, stats))
    if not rows:
        return
    print(f"\n{'policy':<16} {'reward/task':>11} {'latency s':>10} {'energy J':>9} "
          f"{'completed':>9}")  # fmt: skip
    for name, s in rows:
        print(f"{name:<16} {s['episode_reward']:>11.3f} {s['latency_s']:>10.3f} "
              f"{s['energy_j']:>9.3f} {100 * s['completion']:>8.1f}%")  # fmt: skip
