"""Actor networks as ONNX files that run on the boards.

An actor maps one observation (testbed/observation.py) to an action vector of M + 3 in
[0, 1]: target probabilities (softmax over none, edge 0..M−1), the offload ratio
(sigmoid) and the download probability (sigmoid). The exported file carries its
`ObservationSpec` in the ONNX metadata (`testbed.observation_spec`), so a bench can
check that it fits before sending it to the boards. torch is imported only to build and export.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.exit_codes import ExitCode, TestbedExit
from testbed.observation import ObservationSpec, SpecError

SPEC_KEY = "testbed.observation_spec"
INPUT_NAME = "obs"
OUTPUT_NAME = "action"


@dataclass(frozen=True)
class ActorFile:
    """An actor ready for `LoadPolicy`: its bytes and the spec it was trained for."""

    model: bytes
    spec: ObservationSpec
    path: str = ""


def ratio_of(z: Any, margin: float, *, straight_through: bool = False) -> Any:
    """The offload ratio x from its logit z (torch): σ(z) with `margin` δ = 0, else
    clamp((1 + 2δ)·σ(z) − δ, 0, 1), which reaches exactly 0 and exactly 1 (the whole
    task on the edge: a σ never does, and one unit of a task's thousand left on the
    board still computes there) at |z| = ln((1 + δ)/δ). `straight_through`: the clamp's
    value forward and the unclamped gradient backward (training's relaxed actions)."""
    import torch

    if margin == 0.0:
        return torch.sigmoid(z)
    soft = (1.0 + 2.0 * margin) * torch.sigmoid(z) - margin
    hard = soft.clamp(0.0, 1.0)
    return soft + (hard - soft).detach() if straight_through else hard


def build_actor(
    spec: ObservationSpec, hidden: tuple[int, ...] = (256, 256), seed: int = 0,
    *, id_features: int = 0, ratio_margin: float = 0.0,
) -> Any:  # fmt: skip
    """A fresh actor network (torch.nn.Module) for `spec`: MLP + the action heads.

    `id_features` > 0: an actor shared by that many agents (`train.share_parameters`),
    whose body also reads an agent-id one-hot; the module's buffer `agent_id` holds the
    one-hot it appends to an observation, so the exported file still takes the
    observation alone (`logits_full` takes observation and one-hot, for training).
    `ratio_margin`: the ratio head's δ (`ratio_of`; `train.ratio_margin`)."""
    import torch
    from torch import nn

    class Actor(nn.Module):
        agent_id: torch.Tensor  # a buffer, with id_features only

        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            width = spec.obs_dim + id_features
            for h in hidden:
                layers += [nn.Linear(width, h), nn.ReLU()]
                width = h
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(width, spec.action_dim)
            self.num_edges = spec.num_edges
            self.id_features = id_features
            self.ratio_margin = ratio_margin
            if id_features:
                self.register_buffer("agent_id", torch.zeros(id_features))

        def logits_full(self, x: torch.Tensor) -> torch.Tensor:
            """Raw head output for x = observation (+ agent-id one-hot when shared)."""
            return self.head(self.body(x))  # type: ignore[no-any-return]

        def logits(self, obs: torch.Tensor) -> torch.Tensor:
            """Raw head output: target logits, ratio logit, download logit."""
            if self.id_features:
                ident = self.agent_id.expand(*obs.shape[:-1], self.id_features)
                obs = torch.cat([obs, ident], -1)
            return self.logits_full(obs)

        def activate(self, out: torch.Tensor) -> torch.Tensor:
            """Logits → softmax target probabilities, the ratio (`ratio_of`) and the
            sigmoid download probability."""
            m = self.num_edges
            target = torch.softmax(out[..., : m + 1], dim=-1)
            ratio = ratio_of(out[..., m + 1 : m + 2], self.ratio_margin)
            return torch.cat([target, ratio, torch.sigmoid(out[..., m + 2 :])], dim=-1)

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.activate(self.logits(obs))

    torch.manual_seed(seed)
    return Actor()


def export_actor(actor: Any, spec: ObservationSpec, path: str | Path | None = None) -> bytes:
    """Export `actor` (its deterministic forward) to ONNX with the spec in the metadata;
    write it to `path` if given. Returns the file's bytes."""
    import warnings

    import onnx
    import torch

    buffer = io.BytesIO()
    was_training = actor.training
    actor.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            actor,
            (torch.zeros(1, spec.obs_dim),),
            buffer,  # type: ignore[arg-type]  # the legacy exporter writes to file objects
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    actor.train(was_training)
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = SPEC_KEY, spec.to_json()
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def read_actor(path: str | Path) -> ActorFile:
    """Read an actor file and the spec in its metadata; a clear error if it has none."""
    import onnx

    try:
        data = Path(path).read_bytes()
        model = onnx.load_from_string(data)
    except (OSError, Exception) as exc:  # onnx raises its own DecodeError types
        raise TestbedExit(ExitCode.MODEL_INVALID, f"cannot read actor {path}: {exc}") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if SPEC_KEY not in meta:
        raise TestbedExit(
            ExitCode.MODEL_INVALID,
            f"{path} carries no {SPEC_KEY!r} metadata: export actors with "
            "coordinator.actors.export_actor (or `testbed train`)",
        )
    try:
        spec = ObservationSpec.from_json(meta[SPEC_KEY])
    except SpecError as exc:
        raise TestbedExit(ExitCode.MODEL_INVALID, f"{path}: {exc}") from None
    return ActorFile(data, spec, str(path))


def check_fits(actor: ActorFile, bench: ObservationSpec) -> None:
    """Raise a clear error if the actor was made for another bench."""
    if (actor.spec.task_types, actor.spec.num_edges) != (bench.task_types, bench.num_edges):
        raise TestbedExit(
            ExitCode.MODEL_INVALID,
            f"actor {actor.path} was trained for task types {list(actor.spec.task_types)} and "
            f"{actor.spec.num_edges} edges; this bench has {list(bench.task_types)} and "
            f"{bench.num_edges} edges",
        )
