"""The ONNX actor runner: a trained actor network deciding on the board."""

from __future__ import annotations

from typing import Any

import numpy as np

from testbed.observation import Decision, ObservationSpec, decide
from testbed.policies.base import DecisionContext, Policy, PolicyKind


class ActorMismatch(ValueError):
    """The actor's input/output sizes do not fit the bench's observation spec."""


class OnnxActor(Policy):
    """Runs an exported actor (input `obs` [B, obs_dim] -> output [B, M + 3]) with ONNX
    Runtime on one thread; exploration noise is added on the board."""

    kind = PolicyKind.ONNX

    def __init__(self, model: bytes, spec: ObservationSpec, *, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                model, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ActorMismatch(f"not a loadable ONNX actor: {exc}") from None
        self.spec = spec
        (inp,) = self.session.get_inputs()
        out = self.session.get_outputs()[0]
        self._input = inp.name
        self._output = out.name
        if inp.shape[-1] != spec.obs_dim or out.shape[-1] != spec.action_dim:
            raise ActorMismatch(
                f"actor takes {inp.shape[-1]} inputs and gives {out.shape[-1]} outputs; this "
                f"bench observes {spec.obs_dim} and acts with {spec.action_dim} "
                f"({len(spec.task_types)} task types, {spec.num_edges} edges, "
                f"model_aware={spec.model_aware})"
            )
        self._feed = np.zeros((1, spec.obs_dim), dtype=np.float32)
        # the declared shapes can lie (ORT only warns): run it once, at load, not mid-task
        try:
            probe = np.shape(self.raw(np.zeros(spec.obs_dim, dtype=np.float32)))
        except Exception as exc:  # ORT raises its own (pybind) exception types
            raise ActorMismatch(f"the actor does not run on one observation: {exc}") from None
        if probe != (spec.action_dim,):
            raise ActorMismatch(
                f"the actor declares {out.shape[-1]} outputs but gives an array of shape "
                f"{probe} for one observation; this bench acts with {spec.action_dim}"
            )

    def raw(self, observation: Any) -> np.ndarray:
        """The actor's output for one observation (no noise)."""
        self._feed[0] = observation
        return self.session.run([self._output], {self._input: self._feed})[0][0]

    def decide(self, ctx: DecisionContext, noise_std: float = 0.0) -> Decision:
        raw = self.raw(ctx.observation)
        if noise_std > 0:  # in place: `raw` is this call's own output array
            raw += ctx.rng.normal(0.0, noise_std, size=raw.shape).astype(np.float32)
        return decide(self.spec, raw)
