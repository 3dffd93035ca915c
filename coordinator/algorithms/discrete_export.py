"""A trained §B scheduler (coordinator/schedulers.py) as the ONNX file and spec JSON a
base station's board runs (testbed/policies/discrete_actor.py; docs/diffusion-learners.md,
"On the board").

What is exported, per learner:

- DSAC, diffusion actor: its logits x_0 with the reverse chain unrolled (T traced
  steps) and the chain's noise an input, `noise` (n, T, |A|) as
  coordinator/algorithms/diffusion_actor.py lays it out, so the board draws it;
- DSAC, MLP actor (the ablation): its logits;
- DQN (DRLCoEdge, SMCoEdge): its online Q network.

The file takes the board's observation `obs` (n, obs_dim), the twin's features
(coordinator/envs/coedge_twin.py `observe`). The learners share one network across
stations and read the observation followed by the agent-id one-hot
(coordinator/algorithms/discrete_loop.py `learner_inputs`); agent i is station i, whose
observation already holds that one-hot (its station one-hot), so the graph appends
those columns again itself and a board feeds its observation alone.

Before anything is written the file is run with ONNX Runtime through the board's own
loader (`DiscreteActor`) on observations of the twin, after random decisions, and on the
same noise as torch, which computes the learner's input the training way. The largest
|ONNX − torch| over the output, on the output's scale (divided by max(1, max |torch|):
Q values of a long horizon reach tens, where float32 alone differs by more than 1e-5),
must be ≤ 1e-5, and so must the softmax probabilities of a DSAC actor; otherwise the
export fails with MODEL_INVALID and writes nothing.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from coordinator.algorithms.diffusion_actor import DiffusionActor
from coordinator.algorithms.discrete_loop import learner_inputs
from coordinator.algorithms.export import TOLERANCE
from coordinator.envs.coedge_twin import CoedgeTwin
from testbed.config.coedge import CoedgeActionMode
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.policies.discrete_actor import (
    LOGITS_OUTPUT,
    NOISE_INPUT,
    OBS_INPUT,
    Q_OUTPUT,
    SPEC_METADATA_KEY,
    DiscreteActor,
    DiscreteActorKind,
    DiscreteActorSpec,
)

ONNX_NAME = "actor.onnx"
SPEC_NAME = "actor.spec.json"
CHECK_ENVS = 8
"""Twin environments whose observations the check feeds (× stations rows per step)."""
CHECK_STEPS = 6
"""Random steps of those environments observed."""


def station_one_hot_columns(stations: int) -> slice:
    """Where the twin's observation holds the station one-hot (coedge_twin.py `observe`:
    2 task features, B queues, B link backlogs, then the one-hot)."""
    return slice(2 + 2 * stations, 2 + 3 * stations)


def learner_kind(learner: Any) -> DiscreteActorKind:
    """Which kind of discrete actor a trained learner (dsac.Dsac or dqn.Dqn) exports as."""
    if hasattr(learner, "q"):
        return DiscreteActorKind.DQN
    if isinstance(learner.actor, DiffusionActor):
        return DiscreteActorKind.DIFFUSION
    return DiscreteActorKind.MLP


def actor_spec(learner: Any, scheduler: str, cfg: Any, seed: int) -> DiscreteActorSpec:
    """The spec of `learner`, trained as scheduler `scheduler` on the twin of `cfg`
    (the config whose `coedge.action_mode` the scheduler decides in)."""
    coedge = cfg.coedge
    mode = CoedgeActionMode(coedge.action_mode)
    stations = coedge.num_stations
    kind = learner_kind(learner)
    steps = learner.actor.steps if kind is DiscreteActorKind.DIFFUSION else 0
    num_actions = learner.num_actions
    return DiscreteActorSpec(
        kind=kind, scheduler=scheduler, obs_dim=3 * stations + 3, num_actions=num_actions,
        action_mode=mode, stations=stations,
        k=coedge.top_k if mode is CoedgeActionMode.TOPK else 1, diffusion_steps=steps,
        noise_shape=(steps, num_actions) if steps else (), seed=seed,
    )  # fmt: skip


class BoardGraph(nn.Module):
    """The exported computation: observation (+ its station one-hot again where the
    learner is shared) → logits or Q values (module doc)."""

    def __init__(self, learner: Any, spec: DiscreteActorSpec) -> None:
        super().__init__()
        self.kind = spec.kind
        self.net: nn.Module = learner.q if spec.kind is DiscreteActorKind.DQN else learner.actor
        self.id_columns = station_one_hot_columns(spec.stations) if spec.stations > 1 else None

    def learner_input(self, obs: torch.Tensor) -> torch.Tensor:
        if self.id_columns is None:
            return obs
        return torch.cat([obs, obs[:, self.id_columns]], dim=-1)

    def forward(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        x = self.learner_input(obs)
        if self.kind is DiscreteActorKind.DQN:
            return self.net(x)  # type: ignore[no-any-return]
        return self.net.logits(x, noise)  # type: ignore[no-any-return, operator]


def export_graph(graph: BoardGraph, spec: DiscreteActorSpec) -> bytes:
    """`graph` as ONNX (opset 17, batch dynamic) with `spec` in its metadata."""
    import warnings

    import onnx

    diffusion = spec.kind is DiscreteActorKind.DIFFUSION
    names = [OBS_INPUT, NOISE_INPUT] if diffusion else [OBS_INPUT]
    output = Q_OUTPUT if spec.kind is DiscreteActorKind.DQN else LOGITS_OUTPUT
    inputs: tuple[torch.Tensor, ...] = (torch.zeros(1, spec.obs_dim),)
    if diffusion:
        inputs += (torch.zeros(1, *spec.noise_shape),)
    buffer = io.BytesIO()
    was_training = graph.training
    graph.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            inputs,
            buffer,  # type: ignore[arg-type]  # the legacy exporter writes to file objects
            input_names=names,
            output_names=[output],
            dynamic_axes={name: {0: "batch"} for name in [*names, output]},
            opset_version=17,
            dynamo=False,
        )
    graph.train(was_training)
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = SPEC_METADATA_KEY, spec.to_json()
    onnx.checker.check_model(model)
    return model.SerializeToString()  # type: ignore[no-any-return]


def twin_observations(cfg: Any, seed: int) -> np.ndarray:
    """(rows, N, obs_dim) observations of the twin of `cfg` over CHECK_STEPS random
    steps of CHECK_ENVS environments (queues and links filled, tasks of every size)."""
    env = CoedgeTwin.from_config(cfg, CHECK_ENVS, seed)
    rng = np.random.default_rng(seed)
    observed = [env.reset(seed)]
    for _ in range(CHECK_STEPS - 1):
        actions = rng.integers(0, env.num_actions, (env.num_envs, env.num_agents))
        observed.append(env.step(actions).obs)
    env.close()
    return np.concatenate(observed)


def agreement(
    graph: BoardGraph, board: DiscreteActor, obs: np.ndarray, seed: int
) -> dict[str, float]:
    """|ONNX − torch| on twin observations `obs` (rows, N, obs_dim) given the same
    noise: `output` on the output's scale, `probs` (DSAC) absolute, `greedy_mismatch`
    the share of rows whose argmax differs."""
    rows, agents, _ = obs.shape
    flat = obs.reshape(rows * agents, -1).astype(np.float32)
    noise = board.draw_noise(len(flat), np.random.default_rng(seed))
    ours = board.raw(flat, noise).astype(np.float64)
    x = torch.from_numpy(learner_inputs(obs))  # the training way, not the graph's
    with torch.no_grad():
        net = graph.net.eval()
        if graph.kind is DiscreteActorKind.DQN:
            theirs = net(x).double().numpy()
        else:
            noise_t = None if noise is None else torch.from_numpy(noise)
            theirs = net.logits(x, noise_t).double().numpy()  # type: ignore[operator]
    scale = max(1.0, float(np.max(np.abs(theirs))))
    out = {"output": float(np.max(np.abs(ours - theirs))) / scale}
    if graph.kind is not DiscreteActorKind.DQN:
        out["probs"] = float(np.max(np.abs(_softmax(ours) - _softmax(theirs))))
    out["greedy_mismatch"] = float(np.mean(ours.argmax(1) != theirs.argmax(1)))
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ExportedActor:
    """A checked export: the file, its spec, the agreement it passed, where it lies."""

    model: bytes
    spec: DiscreteActorSpec
    errors: dict[str, float]
    onnx_path: Path | None = None
    spec_path: Path | None = None


def export_learner(
    learner: Any, scheduler: str, cfg: Any, seed: int, folder: Path | None = None
) -> ExportedActor:
    """Export, check (module doc) and, if `folder` is given and the check passed, write
    `folder/actor.onnx` and `folder/actor.spec.json`. MODEL_INVALID if the check fails
    (nothing written)."""
    spec = actor_spec(learner, scheduler, cfg, seed)
    graph = BoardGraph(learner, spec)
    model = export_graph(graph, spec)
    board = DiscreteActor.load(model, spec.to_json())
    errors = agreement(graph, board, twin_observations(cfg, seed), seed)
    worst = max(errors.get("output", 0.0), errors.get("probs", 0.0))
    if not worst <= TOLERANCE:  # also catches NaN
        raise TestbedExit(
            ExitCode.MODEL_INVALID,
            f"exported {scheduler} actor disagrees with torch: {errors} (limit {TOLERANCE:g}); "
            "nothing written",
        )
    if folder is None:
        return ExportedActor(model, spec, errors)
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path, spec_path = folder / ONNX_NAME, folder / SPEC_NAME
    onnx_path.write_bytes(model)
    spec_path.write_text(json.dumps(json.loads(spec.to_json()), indent=2) + "\n")
    return ExportedActor(model, spec, errors, onnx_path, spec_path)


def export_trained(trained: Any, seed: int, folder: Path | None = None) -> ExportedActor:
    """`export_learner` of a coordinator/schedulers.py `TrainedScheduler` of a learned
    scheduler (its policy a `LearnedPolicy`)."""
    learner = getattr(trained.policy, "learner", None)
    if learner is None:
        raise ValueError(f"{trained.name} learns nothing: there is no actor to export")
    return export_learner(learner, trained.name, trained.cfg, seed, folder)
