"""What a policy sees, the policy interface and the one list of policy names."""

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


HEURISTICS: tuple[PolicyKind, ...] = (
    PolicyKind.RANDOM,
    PolicyKind.GREEDY,
    PolicyKind.LOCAL,
    PolicyKind.OFFLOAD,
)
"""The policies that need no training, on the boards (testbed/policies/heuristics.py)
and vectorised in the twin (coordinator/envs/heuristics.py): one list of names."""


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
