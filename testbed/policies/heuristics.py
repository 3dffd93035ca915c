"""The baselines of docs/papers.md §A that need no training."""

from __future__ import annotations

from testbed.observation import Decision, ObservationSpec, encode
from testbed.policies.base import DecisionContext, EdgeView, Policy, PolicyKind


class _Heuristic(Policy):
    def __init__(self, spec: ObservationSpec) -> None:
        self.spec = spec

    def _decision(self, target: int, ratio: float, download: bool) -> Decision:
        if target < 0 or ratio <= 0:
            target, ratio = -1, 0.0
        raw = encode(self.spec, target, ratio, download)
        return Decision(target, ratio, download, tuple(float(v) for v in raw))

    @staticmethod
    def _nearest(ctx: DecisionContext, edges: list[EdgeView]) -> int:
        best = min(edges, key=ctx.distance_m)
        return ctx.edges.index(best)


class LocalOnly(_Heuristic):
    """Everything on the board."""

    kind = PolicyKind.LOCAL

    def decide(self, ctx: DecisionContext, noise_std: float = 0.0) -> Decision:
        return self._decision(-1, 0.0, False)


class AllOffload(_Heuristic):
    """Everything to the nearest live edge, which downloads the model if it must."""

    kind = PolicyKind.OFFLOAD

    def decide(self, ctx: DecisionContext, noise_std: float = 0.0) -> Decision:
        alive = [e for e in ctx.edges if e.alive]
        if not alive:
            return self._decision(-1, 0.0, False)
        return self._decision(self._nearest(ctx, alive), 1.0, True)


class Greedy(_Heuristic):
    """The nearest live edge that holds the task's model, all of the task; none: local."""

    kind = PolicyKind.GREEDY

    def decide(self, ctx: DecisionContext, noise_std: float = 0.0) -> Decision:
        holding = [e for e in ctx.edges if e.alive and ctx.task.model_id in e.cached]
        if not holding:
            return self._decision(-1, 0.0, False)
        return self._decision(self._nearest(ctx, holding), 1.0, False)


class RandomPolicy(_Heuristic):
    """A random target (or none) and ratio; ignores models, so the edge downloads."""

    kind = PolicyKind.RANDOM

    def decide(self, ctx: DecisionContext, noise_std: float = 0.0) -> Decision:
        target = int(ctx.rng.integers(-1, len(ctx.edges)))
        return self._decision(target, float(ctx.rng.uniform(0.0, 1.0)), True)
