"""The board's heuristics (testbed/policies/heuristics.py) and the twin's vectorised ones
(coordinator/envs/heuristics.py) decide alike on the same state.

Many random benches — edges and agents placed uniformly or on a coarse grid (so that
equal distances, and with them tie-breaking, come up often), random caches (a
preload-only model among them) and random tasks — are put into a `TwinEnv` and, for
every agent holding a task, into the `DecisionContext` its board builds. Each heuristic
must give the same (target, ratio, download) on both sides, after the twin's own
decoding of its actions (`TwinEnv.decode`, what the twin serves). Random is compared
draw for draw: the twin's CRN mode draws from the boards' generators. Every edge is
alive: the twin has no dead edges (docs/twin.md); the last test shows what that means.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from agent_node.agent import board_observation
from coordinator.envs.heuristics import make_heuristic
from coordinator.envs.twin import TwinEnv
from coordinator.envs.twin_params import TwinParams
from testbed.config import AgentSpec, EdgeSpec, TestbedConfig, ZooScale, config_from_dict
from testbed.links import distance_m, shannon_rate_mbps
from testbed.observation import Decision
from testbed.policies import HEURISTICS, DecisionContext, EdgeView, Policy, PolicyKind, make_policy
from testbed.tasks import Task, agent_seed_words
from testbed.zoo.catalog import Catalog, ModelEntry, ModelFamily

MB = 1_000_000
MODEL_SIZES_MB = {"m-a": 4, "m-b": 5, "m-c": 3, "m-pre": 2}  # m-pre: only ever preloaded
TYPES = [("a", "m-a"), ("b", "m-b"), ("b2", "m-b"), ("c", "m-c")]  # two types share m-b
GRID_M = (0.0, 100.0, 200.0, 300.0)
BENCHES = 40
ENVS = 6
SLOTS = 3

Array = np.ndarray[Any, Any]
Board = tuple[dict[PolicyKind, Policy], np.random.Generator]


def _entry(model_id: str) -> ModelEntry:
    return ModelEntry(
        id=model_id, family=ModelFamily.CGAN, version="1", file=f"{model_id}.onnx",
        size_bytes=MODEL_SIZES_MB[model_id] * MB, sha256="0" * 64, inputs=[], outputs=[],
        default_steps=1, flops_per_invocation=1_000_000, trained=False, scale=ZooScale.TINY,
    )  # fmt: skip


CATALOG = Catalog(ZooScale.TINY, [_entry(m) for m in MODEL_SIZES_MB])


def bench_config(
    edges: list[dict[str, Any]], agents: list[dict[str, Any]], seed: int = 0
) -> TestbedConfig:
    """A bench with these edge and agent overrides (positions in m) and the TYPES."""
    types = [
        {"name": n, "model": m, "size_mbit": [1.0, 3.0], "density_cycles_per_bit": 10.0,
         "deadline_s": 2.0, "weight": 1.0}
        for n, m in TYPES
    ]  # fmt: skip
    return config_from_dict(
        {
            "seed": seed,
            "edges": {"count": len(edges), "cache_capacity_mb": 12.0, "nodes": edges},
            "agents": {"count": len(agents), "nodes": agents},
            "tasks": {"arrival_prob": 1.0, "types": types},
        }
    )


def random_bench(rng: np.random.Generator, seed: int) -> TestbedConfig:
    """0–4 edges and 1–4 agents, all on the grid or all uniform on the site."""
    on_grid = bool(rng.random() < 0.5)

    def place() -> list[float]:
        if on_grid:
            return [float(rng.choice(GRID_M)), float(rng.choice(GRID_M))]
        return [round(float(v), 3) for v in rng.uniform(0.0, 1000.0, size=2)]

    edges = [
        {"position_m": place(), "preload": [m for m in MODEL_SIZES_MB if rng.random() < 0.3]}
        for _ in range(int(rng.integers(0, 5)))
    ]
    agents = [{"position_m": place()} for _ in range(int(rng.integers(1, 5)))]
    return bench_config(edges, agents, seed)


def twin_env(cfg: TestbedConfig, num_envs: int) -> TwinEnv:
    params = TwinParams.from_config(cfg, catalog=CATALOG, use_config_calibration=False)
    env = TwinEnv(params, num_envs)
    env.reset(seed=cfg.seed)
    return env


def randomise_slot(env: TwinEnv, rng: np.random.Generator) -> None:
    """New tasks and caches in every environment (what a slot's start may look like)."""
    env.has_task[:] = rng.random(env.has_task.shape) < 0.8
    env.task_type[:] = rng.integers(0, len(TYPES), size=env.task_type.shape)
    env.size_mbit[:] = rng.uniform(1.0, 3.0, size=env.size_mbit.shape)
    env.cached[:] = rng.random(env.cached.shape) < 0.4


@dataclasses.dataclass(frozen=True)
class BoardFacts:
    """What the boards know from the config (resolved once: resolving is slow)."""

    cfg: TestbedConfig
    agents: list[AgentSpec]
    edges: list[EdgeSpec]

    @classmethod
    def of(cls, cfg: TestbedConfig) -> BoardFacts:
        return cls(cfg, cfg.agent_specs(), cfg.edge_specs())


def board_context(
    env: TwinEnv, facts: BoardFacts, e: int, n: int, rng: np.random.Generator
) -> DecisionContext:
    """What agent `n`'s board sees of environment `e`'s state (every edge alive, queues
    empty, as at a twin slot's start), built from the config as a board builds it."""
    cfg = facts.cfg
    agent = facts.agents[n]
    position = agent.position_m
    assert position is not None and agent.cpu_ghz is not None
    ttype = cfg.tasks.active_types[int(env.task_type[e, n])]
    task = Task(
        f"{agent.id}/s000000", agent.id, 0, ttype.name, ttype.model,
        float(env.size_mbit[e, n]), ttype.density_cycles_per_bit, ttype.deadline_s, ttype.weight,
    )  # fmt: skip
    views = []
    for j, edge in enumerate(facts.edges):
        assert edge.position_m is not None
        # the twin's cache, as the model ids an edge's published state lists
        held = frozenset(env.params.models[u] for u in np.flatnonzero(env.cached[e, j]))
        free = 1.0 - sum(MODEL_SIZES_MB[m] for m in held) / edge.cache_capacity_mb
        link = distance_m(position, edge.position_m)
        rate = float(shannon_rate_mbps(cfg.agents.transmit_power_w, link, cfg.links))
        views.append(EdgeView(edge.id, edge.position_m, edge.cpu_ghz, rate, True, 0, held, free))
    obs = board_observation(env.spec, task, position, agent.cpu_ghz, 0, tuple(views))
    return DecisionContext(env.spec, obs, task, position, tuple(views), rng)


def board_rng(seed: int, agent_id: str) -> np.random.Generator:
    """A board's policy generator for master seed `seed`, seeded as agent_node/agent.py
    seeds it (the twin's CRN Random draws from the same)."""
    return np.random.default_rng([*agent_seed_words(seed, agent_id), 7])


def board_decisions(
    env: TwinEnv, facts: BoardFacts, kind: PolicyKind, boards: dict[tuple[int, int], Board]
) -> dict[tuple[int, int], Decision]:
    """Each board's decision on the task its agent holds in each environment."""
    out = {}
    for e, n in zip(*np.nonzero(env.has_task), strict=True):
        policies, rng = boards[(int(e), int(n))]
        out[(int(e), int(n))] = policies[kind].decide(board_context(env, facts, e, n, rng))
    return out


def mismatches(
    kind: PolicyKind, board: dict[tuple[int, int], Decision], twin: tuple[Array, Array, Array]
) -> list[str]:
    target, ratio, download = twin
    out = []
    for (e, n), d in board.items():
        on_board = (d.target, d.ratio, d.download)
        in_twin = (int(target[e, n]), float(ratio[e, n]), bool(download[e, n]))
        if on_board != in_twin:
            out.append(f"{kind} env {e} agent {n}: board {on_board}, twin {in_twin}")
    return out


def test_board_and_twin_heuristics_decide_alike_on_random_states() -> None:
    rng = np.random.default_rng(20240611)
    problems: list[str] = []
    compared = dict.fromkeys(HEURISTICS, 0)
    offloads = dict.fromkeys(HEURISTICS, 0)
    ties = 0  # agents with two edges at the same distance
    for b in range(BENCHES):
        cfg = random_bench(rng, seed=b)
        env = twin_env(cfg, ENVS)
        facts = BoardFacts.of(cfg)
        ties += sum(len(row) - len(set(row.tolist())) for row in env.params.distance_m)
        twin_policies = {k: make_heuristic(k, seed=cfg.seed, crn=True) for k in HEURISTICS}
        # one policy set and one generator per board, kept across slots as on a board
        boards: dict[tuple[int, int], Board] = {
            (e, n): (
                {k: make_policy(k, env.spec) for k in HEURISTICS},
                board_rng(cfg.seed + e, env.agent_ids[n]),
            )
            for e in range(ENVS)
            for n in range(env.num_agents)
        }
        for _ in range(SLOTS):
            randomise_slot(env, rng)
            for kind in HEURISTICS:
                board = board_decisions(env, facts, kind, boards)
                problems += mismatches(kind, board, env.decode(twin_policies[kind].act(env)))
                compared[kind] += len(board)
                offloads[kind] += sum(d.target >= 0 for d in board.values())
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems[:20])
    # the comparison covered every heuristic, offloading ones offloading, and ties
    assert all(count > 500 for count in compared.values()), compared
    assert offloads[PolicyKind.LOCAL] == 0
    assert all(offloads[k] > 100 for k in HEURISTICS if k is not PolicyKind.LOCAL), offloads
    assert ties >= 10, ties


@pytest.mark.xfail(
    strict=True,
    reason="the twin has no dead edges: its heuristics take no alive flags, so they may "
    "pick an edge a board skips as dead (coordinator/envs/heuristics.py, docs/twin.md)",
)
def test_a_dead_nearest_edge_is_skipped_by_both() -> None:
    cfg = bench_config(
        [{"position_m": [0.0, 0.0]}, {"position_m": [500.0, 0.0]}], [{"position_m": [10.0, 0.0]}]
    )
    env = twin_env(cfg, 1)
    env.has_task[:] = True
    ctx = board_context(env, BoardFacts.of(cfg), 0, 0, board_rng(cfg.seed, "agent-0"))
    dead_nearest = (dataclasses.replace(ctx.edges[0], alive=False), ctx.edges[1])
    board = make_policy(PolicyKind.OFFLOAD, env.spec).decide(
        dataclasses.replace(ctx, edges=dead_nearest)
    )
    assert board.target == 1  # the board skips the dead edge 0
    target, _, _ = env.decode(make_heuristic(PolicyKind.OFFLOAD).act(env))
    assert int(target[0, 0]) == board.target  # the twin, not told edge 0 is dead, picks it
