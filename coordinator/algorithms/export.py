"""Export every agent's trained actor to ONNX (coordinator/actors.py's deployable form,
spec in the metadata) and check the files: ONNX Runtime and torch must agree within
1e-5 on random observations, or the export fails loudly."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.actors import export_actor
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.observation import ObservationSpec

TOLERANCE = 1e-5
"""Largest |ONNX Runtime − torch| allowed on any action component."""


def check_agreement(
    actor: Any, model: bytes, spec: ObservationSpec, *, samples: int = 256, seed: int = 0
) -> float:
    """Max |ORT − torch| over `samples` random observations in [0, 1] (the layout's
    normalised range) plus all-zero and all-one rows; raises if above TOLERANCE."""
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(seed)
    obs = rng.uniform(0.0, 1.0, (samples, spec.obs_dim)).astype(np.float32)
    obs = np.concatenate([obs, np.zeros((1, spec.obs_dim), np.float32),
                          np.ones((1, spec.obs_dim), np.float32)])  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    ours = session.run(None, {"obs": obs})[0]
    with torch.no_grad():
        theirs = actor.eval()(torch.from_numpy(obs)).numpy()
    error = float(np.max(np.abs(ours - theirs)))
    if not error <= TOLERANCE:  # also catches NaN
        raise TestbedExit(
            ExitCode.MODEL_INVALID,
            f"exported actor disagrees with torch: max |ORT - torch| = {error:.3g} > {TOLERANCE:g}",
        )
    return error


def export_actors(
    actors: Sequence[Any], agent_ids: Sequence[str], spec: ObservationSpec, folder: Path
) -> dict[str, float]:
    """Write `folder/<agent-id>.onnx` for every agent and check each; returns the max
    |ORT − torch| per agent."""
    if len(actors) != len(agent_ids):
        raise ValueError(f"{len(actors)} actors for {len(agent_ids)} agents")
    folder.mkdir(parents=True, exist_ok=True)
    errors = {}
    for agent_id, actor in zip(agent_ids, actors, strict=True):
        model = export_actor(actor, spec, folder / f"{agent_id}.onnx")
        errors[agent_id] = check_agreement(actor, model, spec)
    return errors
