"""An experiment spec (experiments/*.yaml): the swept key and its values, the
algorithms and seeds, the training and evaluation overrides; validated like the testbed
file (errors name the key path, exit 2)."""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from testbed.config import ConfigError, read_yaml
from testbed.schema import SchemaError, load_dataclass, meta

T = TypeVar("T")


class EvalBackend(enum.StrEnum):
    AUTO = "auto"
    LIVE = "live"
    TWIN = "twin"


@dataclass(frozen=True)
class SweepSpec:
    key: str = field(metadata=meta("The swept config key, e.g. agents.count."))
    values: list[Any] = field(metadata=meta("Its values, in order.", min_len=1))
    label: str = field(default="", metadata=meta("Axis label in the figures."))


@dataclass(frozen=True)
class EvaluateSpec:
    backend: EvalBackend = field(
        default=EvalBackend.AUTO,
        metadata=meta("live, twin, or auto: live where the machine can hold the bench."),
    )
    slots: int = field(default=30, metadata=meta("Slots per evaluation.", ge=1))
    max_live_agents: int = field(
        default=20, metadata=meta("auto picks live only up to this many devices.", ge=1)
    )
    oracle_max_agents: int = field(
        default=10,
        metadata=meta(
            "Up to this many devices, the per-slot oracle (twin) is evaluated too and every "
            "policy's optimality gap reported (0: never).",
            ge=0,
        ),
    )


@dataclass(frozen=True)
class ExperimentSpec:
    name: str = field(metadata=meta("Experiment name (folders, figure titles)."))
    sweep: SweepSpec = field(metadata=meta("The swept key and its values."))
    description: str = field(default="", metadata=meta("One paragraph for the report."))
    config: str = field(
        default="testbed.yaml", metadata=meta("The bench (relative: to the working folder).")
    )
    set: dict[str, Any] = field(default_factory=dict, metadata=meta("Overrides for every cell."))
    algorithms: list[str] = field(
        default_factory=lambda: ["mato", "nomodel", "saddpg", "random", "greedy"],
        metadata=meta("Algorithms (coordinator/algorithms).", min_len=1),
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata=meta("Seeds.", ge=0))
    train: dict[str, Any] = field(default_factory=dict, metadata=meta("train.* overrides."))
    calibrate_slots: int = field(
        default=0,
        metadata=meta(
            "Before training at a sweep value, run `testbed calibrate --slots N` on that "
            "value's bench and train and evaluate in the twin it calibrates (0: the twin of "
            "the bench file's `twin.calibration`).",
            ge=0,
        ),
    )
    evaluate: EvaluateSpec = field(default_factory=EvaluateSpec, metadata=meta("Evaluation."))

    def check(self) -> list[tuple[str, str]]:
        from coordinator.algorithms import ALGORITHMS

        return sweep_problems(self.algorithms, ALGORITHMS, "algorithm", self.sweep)


def sweep_problems(
    algorithms: list[str], known: Iterable[str], kind: str, sweep: SweepSpec
) -> list[tuple[str, str]]:
    """What is wrong with a spec's algorithm names and sweep values (key path, why)."""
    known = list(known)
    problems = [
        (f"algorithms[{i}]", f"unknown {kind} {algo!r}; choose from {', '.join(known)}")
        for i, algo in enumerate(algorithms)
        if algo not in known
    ]
    if len(set(map(str, sweep.values))) != len(sweep.values):
        problems.append(("sweep.values", "expected distinct values"))
    return problems


def load_spec_as(cls: type[T], path: str | os.PathLike[str]) -> T:
    """Load and validate a spec file as `cls`; errors name the key path (exit 2)."""
    try:
        return load_dataclass(cls, read_yaml(path))
    except SchemaError as exc:
        raise ConfigError(exc.problems, str(path)) from None


def load_spec(path: str | os.PathLike[str]) -> ExperimentSpec:
    """Load and validate an experiment spec; errors name the key path (exit 2)."""
    return load_spec_as(ExperimentSpec, path)
