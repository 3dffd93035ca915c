"""`testbed experiment run SPEC.yaml`: a paper experiment, every cell measured.

A spec (experiments/*.yaml, documented there and in docs/experiments.md) names a bench,
overrides for every cell, one swept config key with its values, the algorithms and the
seeds. For each (value, seed) the trained algorithms are trained in the twin
(`testbed train`'s code, one run folder each), then every algorithm is evaluated on the
same seed's task sequence (common random numbers) — on the live bench where the machine
can hold it, else in the twin, and each cell says which. `results.json` grows cell by
cell, so an interrupted experiment continues where it stopped when run again with the
same `--out`; at the end `report.md` and the figures are written (coordinator/report.py).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.command_help import help_texts
from coordinator.experiment_results import Results
from coordinator.experiment_spec import EvalBackend, ExperimentSpec, load_spec
from coordinator.jsonout import add_json_flag, print_json
from coordinator.policy_choice import ORACLE, PolicyChoice, parse_policy
from coordinator.recorder import RunStatus
from coordinator.run_folder import slug
from testbed.config import (
    ConfigError,
    SetItem,
    TestbedConfig,
    apply_sets,
    config_from_dict,
    parse_set,
    read_yaml,
)
from testbed.exit_codes import ExitCode, TestbedExit, sigterm_as_interrupt

# ---------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Plan:
    """What a run of a spec does, after the command line's narrowing."""

    spec: ExperimentSpec
    base: dict[str, Any]  # the bench's YAML with the spec's `set` applied (unvalidated)
    values: list[Any]
    seeds: list[int]
    algorithms: list[str]
    steps: int | None
    slots: int

    def cell_config(
        self, value: Any, seed: int, out_dir: Path, calibration: str | None = None
    ) -> TestbedConfig:
        sets: list[SetItem] = list(self.spec.set.items())
        if calibration:
            sets.append(("twin.calibration", calibration))
        sets += [(f"train.{k}", v) for k, v in self.spec.train.items()]
        if self.steps is not None:
            sets.append(("train.steps", self.steps))
        sets += [
            (self.spec.sweep.key, value),
            ("seed", seed),
            ("experiment", f"{self.spec.name}_{slug(str(value))}"),
            ("run.out_dir", str(out_dir / "runs")),
        ]
        try:
            data = apply_sets(copy.deepcopy(self.base), sets)
            return config_from_dict(data, self.spec.config)
        except ConfigError as exc:
            source = f"{self.spec.config} + the experiment's overrides ({self.spec.sweep.key}"
            raise ConfigError(exc.problems, f"{source}={value})") from None

    def backend(self, cfg: TestbedConfig) -> tuple[str, str]:
        """(live|twin, why) for a cell."""
        ev = self.spec.evaluate
        if ev.backend != EvalBackend.AUTO:
            return ev.backend.value, "set in the spec"
        if cfg.agents.count > ev.max_live_agents:
            return "twin", f"{cfg.agents.count} devices > evaluate.max_live_agents"
        return "live", f"{cfg.agents.count} devices ≤ evaluate.max_live_agents"

    def oracle(self, cfg: TestbedConfig) -> bool:
        """Whether the cells of this bench size get the oracle and optimality gaps."""
        return cfg.agents.count <= self.spec.evaluate.oracle_max_agents

    def algorithms_for(self, cfg: TestbedConfig) -> list[str]:
        """The spec's algorithms, and the oracle where this cell's bench is small enough."""
        return self.algorithms + ([ORACLE] if self.oracle(cfg) else [])


def make_plan(
    spec: ExperimentSpec, spec_path: Path, *, seeds: list[int] | None = None,
    values: list[Any] | None = None, algorithms: list[str] | None = None,
    steps: int | None = None, slots: int | None = None, backend: str | None = None,
    sets: list[str] | None = None, calibrate_slots: int | None = None,
) -> Plan:  # fmt: skip
    extra = dict(parse_set(item) for item in sets or [])  # malformed: exit 3
    if extra:
        spec = dataclasses.replace(spec, set={**spec.set, **extra})
    if calibrate_slots is not None:
        if calibrate_slots < 0:
            raise TestbedExit(ExitCode.USAGE, "--calibrate-slots: expected N ≥ 0")
        spec = dataclasses.replace(spec, calibrate_slots=calibrate_slots)
    if backend is not None:
        spec = dataclasses.replace(
            spec, evaluate=dataclasses.replace(spec.evaluate, backend=EvalBackend(backend))
        )
    config_path = Path(spec.config)
    if not config_path.is_absolute() and not config_path.exists():
        beside = spec_path.parent / config_path
        config_path = beside if beside.exists() else config_path
    base = read_yaml(config_path)
    for name, wanted, given in (("--values", spec.sweep.values, values),
                                ("--algorithms", spec.algorithms, algorithms)):  # fmt: skip
        unknown = [v for v in given or [] if str(v) not in {str(w) for w in wanted}]
        if unknown:
            raise TestbedExit(ExitCode.USAGE, f"{name}: {unknown} not in the spec "
                              f"({', '.join(map(str, wanted))})")  # fmt: skip
    chosen_values = [v for v in spec.sweep.values if values is None or str(v) in map(str, values)]
    plan = Plan(
        dataclasses.replace(spec, config=str(config_path)), base, chosen_values,
        seeds if seeds is not None else list(spec.seeds),
        [a for a in spec.algorithms if algorithms is None or a in algorithms],
        steps, slots or spec.evaluate.slots,
    )  # fmt: skip
    for value in plan.values:  # every cell's config is valid before anything runs
        plan.cell_config(value, plan.seeds[0], Path("."))
    return plan


# ---------------------------------------------------------------------------- results


def run_plan(plan: Plan, out_dir: Path) -> Results:
    """Train and evaluate every missing cell of `plan` into `out_dir`."""
    from coordinator.algorithms import ALGORITHMS
    from coordinator.evaluation import evaluate
    from coordinator.progress import ProgressBar
    from coordinator.training import train_run

    out_dir.mkdir(parents=True, exist_ok=True)
    results = Results(out_dir / "results.json", plan.spec)
    trained = [a for a in plan.algorithms if ALGORITHMS[a].trained]
    first = {v: plan.cell_config(v, plan.seeds[0], out_dir) for v in plan.values}
    todo = [(v, s, a) for v in plan.values for s in plan.seeds
            for a in plan.algorithms_for(first[v]) if not results.has(a, v, s)]  # fmt: skip
    n_train = sum(1 for v, s, a in todo if a in trained and not results.training(a, v, s))
    print(f"experiment {plan.spec.name}: {plan.spec.sweep.key} over {plan.values}, seeds "
          f"{plan.seeds}, {', '.join(plan.algorithms)}; {len(todo)} cells to run "
          f"({n_train} trainings), {plan.slots} slots per evaluation")  # fmt: skip
    if not todo:
        return results
    bar = ProgressBar(len(todo) + n_train, f"experiment {plan.spec.name}")
    for value in plan.values:
        calibration = None
        if plan.spec.calibrate_slots and any(c[0] == value for c in todo):
            calibration = results.calibration(value) or str(
                _calibrate(plan, value, out_dir, results)
            )
        for seed in plan.seeds:
            cfg = plan.cell_config(value, seed, out_dir, calibration)
            backend, why = plan.backend(cfg)
            with_oracle = plan.oracle(cfg)
            for algo in plan.algorithms_for(cfg):
                if results.has(algo, value, seed):
                    continue
                run_dir: Path | None = None
                if algo in trained:
                    done = results.training(algo, value, seed)
                    if done and (Path(done) / "actors").is_dir():
                        run_dir = Path(done)
                    else:
                        t0 = time.monotonic()
                        label = f"train {algo} {plan.spec.sweep.key}={value} seed {seed}"
                        run_dir, _ = train_run(cfg, algo, "twin", label=label)
                        results.add_training(algo, value, seed, run_dir)
                        bar.update(1, f"trained {algo} ({time.monotonic() - t0:.0f} s)")
                    policy = parse_policy(f"{algo}={run_dir}")
                else:
                    policy = PolicyChoice(algo, heuristic=algo)
                where, reason = (("twin", "the oracle searches the twin's state") if algo == ORACLE
                                 else (backend, why))  # fmt: skip
                res = evaluate(cfg, policy, seed, plan.slots, where, out_dir / "evals")
                twin_reward = res.reward
                if with_oracle and where != "twin":  # the gap is measured within the twin
                    twin_reward = evaluate(cfg, policy, seed, plan.slots, "twin", out_dir).reward
                results.add({
                    "algorithm": algo, "value": value, "seed": seed, "backend": where,
                    "backend_reason": reason, "slots": plan.slots,
                    "twin_reward": twin_reward if with_oracle else None,
                    "metrics": {
                        "latency_ms": res.latency_ms, "latency_p95_ms": res.latency_p95_ms,
                        "energy_j": res.energy_j, "completion_rate": res.completion_rate,
                        "reward": res.reward, "tasks": res.tasks,
                        "energy_methods": res.energy_methods, "failures": res.failures,
                    },
                    "train_run": str(run_dir) if run_dir else None,
                    "eval_run": res.run_dir or None,
                })  # fmt: skip
                done = f"{100 * res.completion_rate:.0f}% done, {res.latency_ms:.0f} ms"
                bar.update(1, f"{algo} {value}/{seed} ({where}): {done}")
    return results


def _calibrate(plan: Plan, value: Any, out_dir: Path, results: Results) -> Path:
    """`testbed calibrate` on the bench of `value` (first seed, the bench written to
    bench.yaml beside it); the calibration file."""
    from coordinator.calibration.measure import calibrate_bench, checked_catalog

    folder = out_dir / "calibration" / slug(str(value))
    folder.mkdir(parents=True, exist_ok=True)
    cfg = plan.cell_config(value, plan.seeds[0], out_dir)
    (folder / "bench.yaml").write_text(cfg.to_yaml())
    out = folder / "calibration.json"
    print(f"calibrating the twin on the bench of {plan.spec.sweep.key}={value} "
          f"({plan.spec.calibrate_slots} slots per run)")  # fmt: skip
    try:
        calibrate_bench(cfg, checked_catalog(cfg), slots=plan.spec.calibrate_slots, out=out)
    except TestbedExit as exc:
        what = f"{plan.spec.sweep.key}={value}"
        raise TestbedExit(
            ExitCode.FAILURE, f"calibration of {what} failed (exit {int(exc.code)}): {exc.message}"
        ) from None
    results.add_calibration(value, out)
    return out


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
    r.set_defaults(func=run_experiment)
    c = ps.add_parser("check", **help_texts(
        "validate a spec and print its cells",
        "testbed experiment check experiments/oracle_small.yaml --json",
        details="Every cell's config is built and checked; nothing is trained or run.",
    ))  # fmt: skip
    c.add_argument("spec", help="experiment spec, e.g. experiments/mato_models.yaml")
    add_json_flag(c)
    c.set_defaults(func=check_experiment)


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


def run_experiment(args: argparse.Namespace) -> int:
    from coordinator.report import write_report
    from coordinator.training import Interrupted

    plan = _plan(args)
    out_dir = Path(args.out or Path("runs") / "experiments" / plan.spec.name)
    print(f"experiment folder: {out_dir}")
    t0 = time.monotonic()
    signal.signal(signal.SIGTERM, sigterm_as_interrupt)  # `kill` stops it as Ctrl-C does
    try:
        results = run_plan(plan, out_dir)
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
