"""What a policy sees and how one is made by name."""

from __future__ import annotations

import abc
import enum
import math
from dataclasses import dataclass

import numpy as np

from testbed.observation import Decision, ObservationSpec
from testbed.tasks import Task


class PolicyKind(enum.StrEnum):
    RANDOM = "random"
    GREEDY = "greedy"
    LOCAL = "local"
    OFFLOAD = "offload"
    ONNX = "onnx"


@dataclass(frozen=True)
class EdgeView:
    """What a board knows of one edge: configured facts plus its latest published state."""

    edge_id: str
    position_m: tuple[float, float]
    cpu_ghz: float
    rate_mbps: float  # emulated (or configured) device->edge rate r_ij
    alive: bool = True
    queue_length: int = 0
    cached: frozenset[str] = frozenset()
    cache_free: float = 1.0  # free fraction of the cache


@dataclass(frozen=True)
class DecisionContext:
    spec: ObservationSpec
    observation: np.ndarray
    task: Task
    position_m: tuple[float, float]
    edges: tuple[EdgeView, ...]
    rng: np.random.Generator

    def distance_m(self, edge: EdgeView) -> float:
        return math.dist(self.position_m, edge.position_m)


class Policy(abc.ABC):
    kind: PolicyKind

    @abc.abstractmethod
    def decide(self, ctx: DecisionContext, noise_std: float = 0.0) -> Decision:
        """The action for the task in `ctx`; `noise_std` is exploration noise (actors)."""


def make_policy(
    kind: PolicyKind | str, spec: ObservationSpec, *, onnx_model: bytes = b"", threads: int = 1
) -> Policy:
    """A policy by name; `onnx` needs the actor's bytes (checked against `spec`)."""
    from testbed.policies.actor import OnnxActor
    from testbed.policies.heuristics import AllOffload, Greedy, LocalOnly, RandomPolicy

    kind = PolicyKind(kind)
    if kind is PolicyKind.ONNX:
        return OnnxActor(onnx_model, spec, threads=threads)
    heuristics: dict[PolicyKind, type[RandomPolicy | Greedy | LocalOnly | AllOffload]] = {
        PolicyKind.RANDOM: RandomPolicy,
        PolicyKind.GREEDY: Greedy,
        PolicyKind.LOCAL: LocalOnly,
        PolicyKind.OFFLOAD: AllOffload,
    }
    return heuristics[kind](spec)
