"""`testbed eval`: every policy on the same seeds and the same task sequences.

    testbed eval --policies mato=runs/x__mato__0__...,greedy,random --backend live|twin
                 [--seeds 0,1,2] [--slots N] [-c FILE] [--set K=V]

In `live` the actors run on the boards; in `twin` the same ONNX files run here. Writes
`runs/<experiment>__eval__<seeds>__<utc>/` with `eval.json` (one entry per policy and
seed) and `eval.md` (means over seeds [95 % Student-t intervals], coordinator/stats.py), and
prints the table.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coordinator.command_help import add_inventory_flag, help_texts
from coordinator.evaluation import EvalResult, evaluate
from coordinator.jsonout import add_json_flag, json_result
from coordinator.policy_choice import PolicyChoice, parse_policy
from coordinator.progress import ProgressBar
from coordinator.recorder import RunStatus
from coordinator.records import write_json
from coordinator.run_folder import new_run_dir, write_config, write_manifest
from coordinator.stats import format_interval, t_interval
from testbed.config import TestbedConfig, load_config
from testbed.exit_codes import ExitCode, TestbedExit, sigterm_as_interrupt


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", **help_texts(
        "compare policies on the same seeds and tasks",
        "testbed eval --policies greedy,random,local --backend twin --seeds 0,1,2",
        "testbed eval --policies mato=runs/x__mato__0__20250101T000000Z,greedy --json",
        details="Writes runs/<experiment>__eval__<seed>__<utc>/ with eval.json and eval.md and\n"
        "prints the table; --json: eval.json on stdout, the table on stderr.",
    ))  # fmt: skip
    p.add_argument(
        "--policies", required=True,
        help="comma-separated: random, greedy, local, offload, PATH, LABEL=PATH",
    )  # fmt: skip
    p.add_argument("--backend", default="twin", choices=("live", "twin"))
    p.add_argument("--seeds", default="0", help="comma-separated master seeds (default 0)")
    p.add_argument("--slots", type=int, default=None, help="slots per evaluation (run.slots)")
    p.add_argument("-c", "--config", default=None, help="testbed YAML (default ./testbed.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    add_inventory_flag(p)
    add_json_flag(p)
    p.set_defaults(func=run_eval)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise TestbedExit(ExitCode.USAGE, f"--seeds: expected integers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise TestbedExit(ExitCode.USAGE, f"--seeds: expected seeds ≥ 0, got {text!r}")
    return seeds


def table(results: list[EvalResult]) -> str:
    labels = list(dict.fromkeys(r.policy for r in results))
    lines = [
        "| policy | backend | seeds | tasks | completion | latency ms | p95 ms | energy J/task "
        "| reward/task |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label in labels:
        rows = [r for r in results if r.policy == label]
        cells = []
        for key, scale, digits in (("completion_rate", 100, 1), ("latency_ms", 1, 1),
                                   ("latency_p95_ms", 1, 1), ("energy_j", 1, 3),
                                   ("reward", 1, 3)):  # fmt: skip
            cell = format_interval(t_interval([getattr(r, key) * scale for r in rows]), digits)
            cells.append(cell + (" %" if scale == 100 else ""))
        lines.append(
            f"| {label} | {rows[0].backend} | {len(rows)} | {sum(r.tasks for r in rows)} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def run_evaluations(
    cfg: TestbedConfig, policies: list[PolicyChoice], seeds: list[int], slots: int, backend: str,
    out_dir: Path, done: Callable[[list[EvalResult]], None] | None = None,
) -> list[EvalResult]:  # fmt: skip
    """Every policy on every seed; `done(results so far)` after each evaluation."""
    bar = ProgressBar(len(policies) * len(seeds), f"eval ({backend})")
    results = []
    for seed in seeds:
        for policy in policies:
            result = evaluate(cfg, policy, seed, slots, backend, out_dir)
            results.append(result)
            bar.update(1, f"{policy.label} seed {seed}: {100 * result.completion_rate:.0f}% done")
            if done is not None:
                done(results)
    return results


def run_eval(args: argparse.Namespace) -> int:
    return json_result(args.json, lambda: evaluate_policies(args))


def evaluate_policies(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    """The evaluation; (exit code, what eval.json holds)."""
    cfg = load_config(args.config, sets=args.set, inventory=args.inventory)
    policies = [parse_policy(p.strip()) for p in args.policies.split(",") if p.strip()]
    seeds = parse_seeds(args.seeds)
    if args.slots is not None and args.slots < 1:
        raise TestbedExit(ExitCode.USAGE, f"--slots: expected N ≥ 1, got {args.slots}")
    slots = args.slots or cfg.run.slots
    # a twin it cannot build, a bench without its zoo: said before a run folder is made
    if args.backend == "twin":
        from coordinator.envs.twin_params import TwinParams

        TwinParams.from_config(cfg)
    else:  # the coordinator reads the catalog of every live bench, deployed or local
        from coordinator.bench_setup import zoo_dir_of

        zoo_dir_of(cfg)
    run_dir = new_run_dir(cfg.run.out_dir, cfg.experiment, "eval", seeds[0])
    write_config(run_dir, cfg)
    write_manifest(run_dir, cfg, {"command": "eval", "backend": args.backend,
                                  "policies": [p.label for p in policies], "seeds": seeds,
                                  "slots": slots})  # fmt: skip
    print(f"run folder: {run_dir}")
    head: dict[str, Any] = {"backend": args.backend, "slots": slots, "seeds": seeds}

    def save(results: list[EvalResult], status: RunStatus) -> dict[str, Any]:
        """eval.json after every evaluation: an interrupted eval keeps those it finished."""
        body = {**head, "status": status.value, "results": [r.metrics() for r in results]}
        write_json(run_dir / "eval.json", body)
        return body

    finished: list[EvalResult] = []

    def done(so_far: list[EvalResult]) -> None:
        finished[:] = so_far
        save(so_far, RunStatus.RUNNING)

    save(finished, RunStatus.RUNNING)
    signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    try:
        results = run_evaluations(cfg, policies, seeds, slots, args.backend, run_dir, done)
    except KeyboardInterrupt:
        save(finished, RunStatus.INTERRUPTED)
        print(f"\ninterrupted: {len(finished)} evaluation(s) kept in {run_dir}/eval.json",
              file=sys.stderr)  # fmt: skip
        return int(ExitCode.INTERRUPTED), None
    except TestbedExit:  # the folder says so, and keeps what finished
        save(finished, RunStatus.FAILED)
        raise
    body = save(results, RunStatus.COMPLETED)
    text = table(results)
    backend = "the live bench (measured)" if args.backend == "live" else "the twin"
    (run_dir / "eval.md").write_text(
        f"# Evaluation on {backend}\n\n{len(seeds)} seed(s) {seeds}, {slots} slots each, "
        "the same tasks for every policy of a seed. Mean over seeds [95 % confidence "
        f"interval, Student-t with the sample std]; one seed: no interval.\n\n{text}\n"
    )
    print(text)
    print(f"\nwrote {run_dir}/ (eval.json, eval.md)")
    return 0, body
