"""A trained §B scheduler (docs/papers.md §B, docs/diffusion-learners.md "On the board")
deciding on its base station's board: an ONNX file and the spec JSON it was exported
with (coordinator/algorithms/discrete_export.py writes both; `LoadPolicyRequest`
carries them as `onnx_model` and `spec_json`).

The file takes the board's observation of one task per row, `obs` (n, obs_dim) —
exactly the twin's features (coordinator/envs/coedge_twin.py `observe`); a shared
learner's agent-id one-hot is appended inside the graph — and, for a diffusion actor,
`noise` (n, T, |A|): x_T and the z of every reverse step, drawn here from the caller's
generator. It gives the final logits (DSAC: diffusion or its MLP ablation) or the
Q values (DQN) of every action, (n, |A|). Action i is the server set
`testbed.coedge.subsets.action_masks(action_mode, stations, k)[i]`.

Deciding: greedy = argmax of the logits (of a chain run on fresh noise for the
diffusion actor); otherwise an action drawn from their softmax. A DQN always takes
argmax Q (its exploration is a training device, not a policy).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from testbed.coedge.subsets import num_actions as count_actions
from testbed.config.coedge import CoedgeActionMode
from testbed.config.runs import BenchSystem
from testbed.policies.actor import ActorMismatch

SPEC_FORMAT = 1
"""Version of the spec JSON; a file of another version is refused."""
SPEC_METADATA_KEY = "testbed.discrete_actor_spec"
"""The ONNX metadata entry holding the spec the file was exported with."""
OBS_INPUT = "obs"
NOISE_INPUT = "noise"
LOGITS_OUTPUT = "logits"
Q_OUTPUT = "q"


class DiscreteActorKind(enum.StrEnum):
    DIFFUSION = "diffusion"
    """DSAC's diffusion actor: the logits x_0 of a reverse chain fed `noise`."""
    MLP = "mlp"
    """Its one-step ablation (discrete SAC): the logits of an MLP."""
    DQN = "dqn"
    """A DQN's Q network: the Q value of every action."""


@dataclass(frozen=True)
class DiscreteActorSpec:
    """What an exported discrete actor decides on, and how it is fed."""

    kind: DiscreteActorKind
    scheduler: str
    """The scheduler's name (coordinator/schedulers.py), e.g. `ddrl-amsa`."""
    obs_dim: int
    """Features of the board's observation of one task."""
    num_actions: int
    action_mode: CoedgeActionMode
    stations: int
    """Edge servers B of the bench it was trained for."""
    k: int
    """Servers per action in `topk` mode (1 otherwise)."""
    diffusion_steps: int = 0
    """Reverse steps T of a diffusion actor (0 otherwise)."""
    noise_shape: tuple[int, ...] = ()
    """(T, |A|): one row's `noise` input; () without one."""
    seed: int = 0
    """The training run's seed (information only)."""
    system: BenchSystem = BenchSystem.COEDGE
    format: int = SPEC_FORMAT

    def problems(self) -> list[str]:
        """What is inconsistent within the spec (empty: nothing)."""
        out = []
        if self.system is not BenchSystem.COEDGE:
            out.append(f"system is {self.system.value!r}; a discrete actor decides on 'coedge'")
        if self.format != SPEC_FORMAT:
            out.append(f"format is {self.format}; this board reads format {SPEC_FORMAT}")
        if self.obs_dim < 1 or self.stations < 1 or self.k < 1:
            out.append("obs_dim, stations and k must be ≥ 1")
        elif self.k > self.stations:
            out.append(f"k = {self.k} exceeds stations = {self.stations}")
        else:
            expected = count_actions(self.action_mode, self.stations, self.k)
            if self.num_actions != expected:
                out.append(f"num_actions is {self.num_actions}; {self.action_mode.value} over "
                           f"{self.stations} stations (k = {self.k}) has {expected}")  # fmt: skip
        diffusion = self.kind is DiscreteActorKind.DIFFUSION
        if diffusion and self.diffusion_steps < 1:
            out.append("a diffusion actor needs diffusion_steps ≥ 1")
        if not diffusion and self.diffusion_steps != 0:
            out.append(f"a {self.kind.value} actor has diffusion_steps 0")
        expected_noise = (self.diffusion_steps, self.num_actions) if diffusion else ()
        if self.noise_shape != expected_noise:
            out.append(f"noise_shape is {list(self.noise_shape)}, expected {list(expected_noise)}")
        return out

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DiscreteActorSpec:
        """The spec of `text`; ActorMismatch naming the key that is missing, unknown,
        of the wrong kind, or inconsistent."""
        try:
            raw = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ActorMismatch(f"the discrete actor's spec is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ActorMismatch("the discrete actor's spec is not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise ActorMismatch(f"the discrete actor's spec has unknown keys {unknown}")
        try:
            spec = cls(**{**raw, **_typed(raw)})
        except (TypeError, ValueError) as exc:
            raise ActorMismatch(f"the discrete actor's spec is malformed: {exc}") from None
        if problems := spec.problems():
            raise ActorMismatch("the discrete actor's spec is inconsistent: " + "; ".join(problems))
        return spec

    def check_bench(self, stations: int, action_mode: CoedgeActionMode, k: int) -> None:
        """ActorMismatch unless the actor decides over this bench's action set."""
        k = k if action_mode is CoedgeActionMode.TOPK else 1
        ours = (self.stations, self.action_mode, self.k)
        if ours != (stations, CoedgeActionMode(action_mode), k):
            raise ActorMismatch(
                f"the actor was trained for {self.stations} stations, {self.action_mode.value}"
                f" (k = {self.k}); this bench has {stations}, {action_mode} (k = {k})"
            )


def _typed(raw: dict[str, Any]) -> dict[str, Any]:
    """The spec's enum and tuple fields from their JSON forms (others as they are)."""
    out: dict[str, Any] = {}
    for key, cast in (("kind", DiscreteActorKind), ("action_mode", CoedgeActionMode),
                      ("system", BenchSystem), ("noise_shape", tuple)):  # fmt: skip
        if key in raw:
            out[key] = cast(raw[key])
    for key in ("obs_dim", "num_actions", "stations", "k", "diffusion_steps", "seed", "format"):
        if key in raw and (isinstance(raw[key], bool) or not isinstance(raw[key], int)):
            raise ValueError(f"{key} must be an integer, got {raw[key]!r}")
    if not all(isinstance(n, int) for n in out.get("noise_shape", ())):
        raise ValueError(f"noise_shape must hold integers, got {raw['noise_shape']!r}")
    return out


def _session(model: bytes, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own (pybind) exception types
        raise ActorMismatch(f"not a loadable ONNX actor: {exc}") from None


def _metadata_spec(session: Any) -> str | None:
    return session.get_modelmeta().custom_metadata_map.get(SPEC_METADATA_KEY)  # type: ignore[no-any-return]


class DiscreteActor:
    """An exported §B scheduler on a board (module doc). `load` checks the file
    against the spec and runs it once, so a mismatch surfaces at load, not mid-slot."""

    def __init__(self, session: Any, spec: DiscreteActorSpec) -> None:
        self.session, self.spec = session, spec
        self.num_actions, self.obs_dim = spec.num_actions, spec.obs_dim
        self.system = spec.system.value
        self.diffusion = spec.kind is DiscreteActorKind.DIFFUSION
        self._output = Q_OUTPUT if spec.kind is DiscreteActorKind.DQN else LOGITS_OUTPUT

    @classmethod
    def load(cls, onnx_bytes: bytes, spec_json: str, *, threads: int = 1) -> DiscreteActor:
        """The actor of `onnx_bytes` exported with `spec_json`; ActorMismatch naming
        what does not match (ONNX Runtime on `threads` intra-op threads, CPU)."""
        spec = DiscreteActorSpec.from_json(spec_json)
        session = _session(onnx_bytes, threads)
        embedded = _metadata_spec(session)
        if embedded is not None and DiscreteActorSpec.from_json(embedded) != spec:
            raise ActorMismatch(
                f"the spec JSON does not match the one the file was exported with: "
                f"given {spec.to_json()}, exported {embedded}"
            )
        actor = cls(session, spec)
        actor._check_signature()
        probe = actor.raw(np.zeros((1, spec.obs_dim), np.float32), actor._zero_noise(1))
        if probe.shape != (1, spec.num_actions) or not np.isfinite(probe).all():
            raise ActorMismatch(
                f"the actor gives {probe.shape} for one observation (finite: "
                f"{bool(np.isfinite(probe).all())}); the spec says (1, {spec.num_actions})"
            )
        return actor

    def _check_signature(self) -> None:
        spec = self.spec
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        wanted_inputs = [OBS_INPUT, NOISE_INPUT] if self.diffusion else [OBS_INPUT]
        problems = []
        if sorted(inputs) != sorted(wanted_inputs):
            problems.append(f"inputs {sorted(inputs)}, the spec's {spec.kind.value} "
                            f"actor takes {wanted_inputs}")  # fmt: skip
        elif inputs[OBS_INPUT][1:] != [spec.obs_dim]:
            problems.append(f"obs is {inputs[OBS_INPUT][1:]} per row, the spec says "
                            f"[{spec.obs_dim}]")  # fmt: skip
        elif self.diffusion and inputs[NOISE_INPUT][1:] != list(spec.noise_shape):
            problems.append(f"noise is {inputs[NOISE_INPUT][1:]} per row, the spec says "
                            f"{list(spec.noise_shape)}")  # fmt: skip
        if list(outputs) != [self._output]:
            problems.append(f"outputs {list(outputs)}, expected [{self._output!r}]")
        elif outputs[self._output][1:] != [spec.num_actions]:
            problems.append(f"{self._output} is {outputs[self._output][1:]} per row, the spec "
                            f"says [{spec.num_actions}]")  # fmt: skip
        if problems:
            raise ActorMismatch("the ONNX actor does not match its spec: " + "; ".join(problems))

    def _zero_noise(self, n: int) -> np.ndarray | None:
        return np.zeros((n, *self.spec.noise_shape), np.float32) if self.diffusion else None

    def draw_noise(self, n: int, rng: np.random.Generator) -> np.ndarray | None:
        """The diffusion actor's `noise` for n rows, standard normal float32 (None for
        the others)."""
        if not self.diffusion:
            return None
        return rng.standard_normal((n, *self.spec.noise_shape), dtype=np.float32)

    def raw(self, obs: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
        """The graph's output (n, |A|): logits, or Q values for a DQN."""
        feed = {OBS_INPUT: np.ascontiguousarray(obs, dtype=np.float32)}
        if self.diffusion:
            if noise is None:
                raise ValueError("a diffusion actor needs its noise")
            feed[NOISE_INPUT] = np.ascontiguousarray(noise, dtype=np.float32)
        return self.session.run([self._output], feed)[0]  # type: ignore[no-any-return]

    def act(self, obs: np.ndarray, rng: np.random.Generator, greedy: bool) -> np.ndarray:
        """One action index per row of `obs` (n, obs_dim), int64 (module doc). The
        diffusion actor's noise is drawn from `rng` first, then any sample."""
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"expected observations (n, {self.obs_dim}), got {obs.shape}")
        out = self.raw(obs, self.draw_noise(obs.shape[0], rng))
        if greedy or self.spec.kind is DiscreteActorKind.DQN:
            return out.argmax(axis=1).astype(np.int64)
        return sample_softmax(out, rng)


def sample_softmax(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row from softmax(logits) (n, A) → (n,) int64, in float64."""
    z = logits.astype(np.float64)
    weights = np.exp(z - z.max(axis=1, keepdims=True))
    cumulative = np.cumsum(weights, axis=1)
    u = rng.random(len(z)) * cumulative[:, -1]
    picks = (cumulative <= u[:, None]).sum(axis=1)
    return np.minimum(picks, z.shape[1] - 1).astype(np.int64)
