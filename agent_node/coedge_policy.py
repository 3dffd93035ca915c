"""How a §B scheduler on a board picks the edges of a task (docs/live-loop.md,
"Clocked slots and the §B scheduler"): a heuristic by name, or a trained actor
exported to ONNX (testbed/policies/discrete_actor.py). Every choice is an action of
the bench's action set, `testbed.coedge.subsets.action_masks(coedge.action_mode, B,
k)`, given as its (B,) mask of edges.

- `random`: an action uniformly.
- `least-queue`: the edge with the least queued work — its queued seconds × its clock,
  the twin's Q_j in cycles (coordinator/envs/coedge_heuristics.py); in `topk` mode the
  k least loaded. Dead edges only when every edge is dead.
- `home`: the station's own edge only.
- `split-all`: every edge, split by the rule.
- `onnx`: a trained actor's greedy choice (argmax of its logits); `onnx-sampled`: a
  draw from their softmax (this project's choice of names: both load the same file).
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from agent_node.checks import BadRequest
from testbed.coedge.observation import obs_dim
from testbed.coedge.subsets import action_masks, one_mask, topk_mask
from testbed.config import TestbedConfig
from testbed.config.coedge import CoedgeActionMode
from testbed.policies.actor import ActorMismatch

Array = np.ndarray[Any, Any]


class CoedgePolicyKind(enum.StrEnum):
    RANDOM = "random"
    LEAST_QUEUE = "least-queue"
    HOME = "home"
    SPLIT_ALL = "split-all"
    ONNX = "onnx"
    ONNX_SAMPLED = "onnx-sampled"


TRAINED = (CoedgePolicyKind.ONNX, CoedgePolicyKind.ONNX_SAMPLED)


def coedge_policy_kind(name: str) -> CoedgePolicyKind:
    """LoadPolicy's name on a §B board; `BadRequest` naming the known ones."""
    try:
        return CoedgePolicyKind(name)
    except ValueError:
        known = ", ".join(k.value for k in CoedgePolicyKind)
        raise BadRequest(f"name: unknown §B policy {name!r}; expected one of {known}") from None


class CoedgePolicy:
    """One scheduler's policy over B edges; `choose` gives the (B,) mask of a task."""

    def __init__(
        self, kind: CoedgePolicyKind, cfg: TestbedConfig, home: int, actor: Any = None
    ) -> None:
        coedge = cfg.coedge
        self.kind = kind
        self.mode = coedge.action_mode
        self.k = coedge.top_k if self.mode is CoedgeActionMode.TOPK else 1
        self.num_edges = cfg.edges.count
        self.masks = action_masks(self.mode, self.num_edges, self.k)
        self.home = home
        self._actor = actor

    def choose(
        self, obs: Array, queue_s: Array, edge_ghz: Array, alive: Array, rng: np.random.Generator
    ) -> Array:
        """The edges of the task observed as `obs`, given each edge's queued seconds,
        clock (GHz) and liveness."""
        kind = self.kind
        if kind is CoedgePolicyKind.RANDOM:
            return self.masks[int(rng.integers(len(self.masks)))]
        if kind is CoedgePolicyKind.HOME:
            return one_mask(np.asarray(self.home), self.num_edges)
        if kind is CoedgePolicyKind.SPLIT_ALL:
            return np.ones(self.num_edges, dtype=bool)
        if kind is CoedgePolicyKind.LEAST_QUEUE:
            work = np.asarray(queue_s, dtype=np.float64) * np.asarray(edge_ghz)
            live = np.asarray(alive, dtype=bool)
            work = np.where(live, work, np.inf) if live.any() else work
            return topk_mask(-work, self.k)
        greedy = kind is CoedgePolicyKind.ONNX
        action = int(self._actor.act(np.asarray(obs, np.float32)[None], rng, greedy)[0])
        return self.masks[action]


def make_coedge_policy(
    kind: CoedgePolicyKind, cfg: TestbedConfig, home: int, onnx_model: bytes = b"",
    spec_json: str = "",
) -> CoedgePolicy:  # fmt: skip
    """The policy `kind`; a trained one from its ONNX file and spec (`ActorMismatch`
    when it was not made for this bench's edges and action set)."""
    if kind not in TRAINED:
        return CoedgePolicy(kind, cfg, home)
    if not onnx_model or not spec_json:
        raise BadRequest(f"{kind.value}: expected the actor's ONNX file and its spec JSON")
    # imported here: the ONNX runtime loads only on a board that runs a trained actor
    from testbed.policies.discrete_actor import DiscreteActor

    actor = DiscreteActor.load(onnx_model, spec_json)
    coedge = cfg.coedge
    if actor.system != "coedge":
        raise ActorMismatch(f"the actor decides for {actor.system!r}, this bench is 'coedge'")
    actor.spec.check_bench(cfg.edges.count, coedge.action_mode, coedge.top_k)
    if actor.obs_dim != obs_dim(cfg.edges.count):
        raise ActorMismatch(f"the actor observes {actor.obs_dim} features; this bench's "
                            f"observation has {obs_dim(cfg.edges.count)}")  # fmt: skip
    return CoedgePolicy(kind, cfg, home, actor)
