"""The plan of an experiment run: a spec (coordinator/experiment_spec.py) narrowed by the
command line (`--seeds`, `--values`, `--algorithms`, `--set`, ...), and each cell's
config, evaluation backend and algorithms. The executors (coordinator/executors.py,
coordinator/ray_executor.py) run its cells."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.experiment_spec import EvalBackend, ExperimentSpec
from coordinator.policy_choice import ORACLE
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
from testbed.exit_codes import ExitCode, TestbedExit


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
        self, value: Any, seed: int, out_dir: Path, calibration: str | Path | None = None
    ) -> TestbedConfig:
        sets: list[SetItem] = list(self.spec.set.items())
        if calibration:  # a path as the sequential executor keeps it, or as Ray returns it
            sets.append(("twin.calibration", str(calibration)))
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
    for flag, count in (("--steps", steps), ("--slots", slots)):
        if count is not None and count < 1:
            raise TestbedExit(ExitCode.USAGE, f"{flag}: expected N ≥ 1, got {count}")
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
