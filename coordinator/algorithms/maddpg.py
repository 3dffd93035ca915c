"""MADDPG-MATO (docs/papers.md §A) and its variants, one file: centralised training,
decentralised execution.

Every agent (end device) i has an actor μ_i (its own observation → its own action)
and a critic Q_i (the joint state and all actions → Q); targets follow by soft update τ.
What Q_i reads is critic_input.py's (`train.critic_input`: compact, standardised, the
default; or the paper's literal N observations + N actions). With
`train.share_parameters` one actor and one critic serve every agent, told apart by an
agent-id one-hot. Two flags give the paper's baselines:

- `centralised_critic=False` → SADDPG: independent DDPG per agent, its critic sees
  only its own observation and action.
- `model_aware=False` → MADDPG-NoModel: the environment's spec has no model features
  and no download action (the edge fetches a missing model anyway).

Actions. The actor is `coordinator.actors.build_actor`'s module, the one exported to
the boards: softmax target probabilities (none, edge 0..M−1), sigmoid ratio x (with
`ratio_margin` > 0 a widened, clamped sigmoid that reaches 0 and 1: actors.ratio_of),
sigmoid download probability d. The environment executes argmax target, x and d > 0.5.

Relaxation. The replay buffer stores the *executed* decision: a one-hot target, x
(0 without a target) and d ∈ {0, 1}. The critic therefore only ever sees discrete
targets and flags, so the actor's gradient must come through actions of the same
kind: straight-through Gumbel-softmax for the target (a hard one-hot sample from
softmax(logits), gradient of the relaxed softmax((logits + g)/T)) and the
straight-through binary concrete for the download flag (hard 1[σ((l + L)/T) > 0.5],
L ~ Logistic, gradient of the sigmoid), T = `gumbel_temperature`; x stays the
continuous sigmoid, zeroed with the hard "none" target. Straight-through keeps the
critic's input on the executed manifold (a relaxed, non-one-hot input is a point the
critic never saw). The critic's target action a' = μ'(o') is the deterministic decision
the boards make (argmax, d = logit > 0). Exploration samples from the policy
(exploration.py): target and download flag drawn from the actor's probabilities with
a decaying ε floor, Gaussian noise only on the ratio. Each agent's actor and critic
gradients are clipped to norm `grad_clip_norm` (0.5, the MADDPG reference code's).
With `team_reward` α > 0 an agent learns from `shared_reward`, a mix of its own reward
and the slot's mean.

Speed: the N agents' networks are one set of stacked parameters (leading agent
dimension), called through `torch.func.vmap(functional_call(...))`, so each layer of
all agents is one batched matmul, and one Adam steps them all.

Episodes have a fixed length (a time limit, not a terminal state), so targets bootstrap
through episode ends (from the last observation, `StepOut.final_obs`).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from coordinator.actors import build_actor, ratio_of
from coordinator.algorithms.critic_input import (
    Critic,
    CriticLayout,
    critic_forward,
    critic_top,
)
from coordinator.algorithms.exploration import clip_grad_per_agent, explore
from coordinator.algorithms.normalizer import RunningNorm
from coordinator.algorithms.replay import Batch, ReplayBuffer
from coordinator.algorithms.rollout import EpisodeStats, EpisodeTracker, Hooks, evaluate
from coordinator.algorithms.team_reward import shared_reward
from coordinator.envs.vector import VecEnv
from testbed.config import TestbedConfig
from testbed.config.runs import CriticInput
from testbed.observation import ObservationSpec, decode

# ---------------------------------------------------------------------------- arguments


@dataclass(frozen=True)
class MaddpgArgs:
    """Hyper-parameters (defaults: docs/papers.md §A via `train:` of testbed.yaml)."""

    centralised_critic: bool = True
    """Critic sees all agents' observations and actions (MADDPG); False: SADDPG."""
    model_aware: bool = True
    """Observation with model features and a download action (MATO); False: NoModel."""
    lr_actor: float = 1e-3
    """Adam learning rate of the actors."""
    lr_critic: float = 1e-3
    """Adam learning rate of the critics."""
    gamma: float = 0.95
    """Discount factor γ per slot."""
    tau: float = 0.01
    """Soft target update: θ' ← (1 − τ)·θ' + τ·θ after every update."""
    buffer_size: int = 10_000
    """Replay capacity in joint transitions (one environment slot, all agents)."""
    batch_size: int = 1024
    """Joint transitions per minibatch."""
    hidden: int = 256
    """Width of the two hidden layers of every actor and critic."""
    steps: int = 3000
    """Environment steps (each: one slot of every one of the E environments)."""
    warmup_steps: int = 100
    """Steps of uniformly random actions before learning starts."""
    updates_per_step: int = 1
    """Gradient updates (critic + actor + targets) per environment step."""
    noise_start: float = 0.3
    """Std of the Gaussian exploration noise on the offload ratio at step 0."""
    noise_end: float = 0.02
    """... decayed linearly to this at the last step."""
    explore_eps_start: float = 0.2
    """Uniform floor ε mixed into the sampled target and download flag at step 0."""
    explore_eps_end: float = 0.02
    """... decayed linearly to this at the last step."""
    critic_input: CriticInput = CriticInput.COMPACT
    """What a critic sees: compact, mean_field (standardised; critic_input.py) or the
    paper's."""
    grad_clip_norm: float = 0.5
    """Largest gradient norm of each agent's actor and critic per update (0: off)."""
    share_parameters: bool = False
    """One actor and one critic for all agents, with an agent-id one-hot."""
    team_reward: float = 0.0
    """α of `shared_reward`: the share of the slot's mean reward in each agent's."""
    ratio_margin: float = 0.0
    """δ of the actors' ratio head (actors.ratio_of): 0, σ(z); > 0, x reaches 0 and 1."""
    gumbel_temperature: float = 1.0
    """Temperature T of the Gumbel-softmax / binary concrete relaxations."""
    logit_reg: float = 0.001
    """Weight of mean(logits²) in the actor loss (the MADDPG reference code's 1e-3):
    keeps the heads from saturating, where the relaxations' gradients vanish."""
    checkpoint_every: int = 500
    """Steps between checkpoints (and one at the end)."""
    eval_every: int = 250
    """Steps between noise-free evaluations (and one at the end)."""
    eval_episodes: int = 4
    """Episodes per evaluation."""
    threads: int = 2
    """torch intra-op threads."""
    seed: int = 0
    """Seed of network initialisation, exploration, replay sampling and the env."""

    @classmethod
    def from_config(cls, cfg: TestbedConfig, **flags: Any) -> MaddpgArgs:
        own = {f.name for f in dataclasses.fields(cls)}
        train = {k: v for k, v in dataclasses.asdict(cfg.train).items() if k in own}
        return cls(**{**train, "seed": cfg.seed, **flags})

    def _decay(self, step: int, start: float, end: float) -> float:
        return start + (end - start) * min(1.0, step / max(1, self.steps - 1))

    def noise(self, step: int) -> float:
        """σ of the ratio's exploration noise at `step`."""
        return self._decay(step, self.noise_start, self.noise_end)

    def eps(self, step: int) -> float:
        """ε floor of the sampled target and download flag at `step`."""
        return self._decay(step, self.explore_eps_start, self.explore_eps_end)


# ---------------------------------------------------------------------------- env


def critic_columns(spec: ObservationSpec) -> list[int]:
    """Action columns a critic sees: all M + 3, or M + 2 without a download action."""
    return list(range(spec.action_dim if spec.download_action else spec.action_dim - 1))


def executed(spec: ObservationSpec, raw: np.ndarray) -> np.ndarray:
    """The decision the environment executes for action vectors `raw` (..., M + 3):
    one-hot target, ratio (0 without a target), download 0/1 (1 without the action)."""
    target, ratio, download = decode(spec, raw)
    out = np.zeros(raw.shape, np.float32)
    np.put_along_axis(out, (target + 1)[..., None], 1.0, axis=-1)
    out[..., spec.num_edges + 1] = ratio
    out[..., spec.num_edges + 2] = download
    return out


# ---------------------------------------------------------------------------- networks


class ActorCall(nn.Module):
    """The deployable actor, called for its probabilities or (`logits=True`) its raw
    head output (the training path), on x = observation (+ agent-id one-hot, shared)."""

    def __init__(self, actor: nn.Module) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        out = self.actor.logits_full(x)  # type: ignore[operator]
        return out if logits else self.actor.activate(out)  # type: ignore[no-any-return, operator]


class Stacked:
    """N modules of one architecture as stacked parameters (leading agent dimension)."""

    def __init__(self, modules: list[nn.Module]) -> None:
        params, _ = stack_module_state(modules)  # type: ignore[arg-type]
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.base = copy.deepcopy(modules[0]).to("meta")

    def __call__(
        self, x: torch.Tensor, *, shared: bool = False, frozen: bool = False, **kw: Any
    ) -> torch.Tensor:
        """x (N, B, ·), or (B, ·) fed to every agent with `shared`; `frozen`: no
        gradient into the parameters (only into x)."""
        params = {k: v.detach() for k, v in self.params.items()} if frozen else self.params

        def one(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, p, (xi,), kw)  # type: ignore[no-any-return]

        return vmap(one, in_dims=(0, None if shared else 0))(params, x)  # type: ignore[no-any-return]

    def target(self) -> Stacked:
        twin = copy.copy(self)
        twin.params = {k: v.detach().clone() for k, v in self.params.items()}
        return twin

    @torch.no_grad()
    def soft_update(self, source: Stacked, tau: float) -> None:
        torch._foreach_lerp_(list(self.params.values()), list(source.params.values()), tau)

    def unstacked(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i].detach().clone() for k, v in self.params.items()}


# ---------------------------------------------------------------------------- buffer


def new_buffer(args: MaddpgArgs, env: VecEnv) -> ReplayBuffer:
    return ReplayBuffer(args.buffer_size, env.num_agents, env.spec.obs_dim, env.spec.action_dim)


# ---------------------------------------------------------------------------- update


class Maddpg:
    """Actors, critics, their targets and optimisers for N agents on `spec`."""

    def __init__(self, args: MaddpgArgs, spec: ObservationSpec, num_agents: int) -> None:
        if spec.model_aware != args.model_aware:
            raise ValueError(f"env spec model_aware={spec.model_aware}, args {args.model_aware}")
        self.args, self.spec, self.n = args, spec, num_agents
        self.cols = critic_columns(spec)
        share = args.share_parameters
        self.layout = CriticLayout(
            spec, num_agents, len(self.cols), mode=args.critic_input,
            centralised=args.centralised_critic, share=share,
        )  # fmt: skip
        self.norm = RunningNorm(num_agents, spec.obs_dim)
        hidden, ids = (args.hidden, args.hidden), num_agents if share else 0
        nets = 1 if share else num_agents
        margin = args.ratio_margin
        actors = [ActorCall(build_actor(spec, hidden, seed=args.seed * 1000 + i, id_features=ids,
                                        ratio_margin=margin))
                  for i in range(nets)]  # fmt: skip
        torch.manual_seed(args.seed)  # build_actor seeds torch's global generator
        self.actor = Stacked(actors)  # type: ignore[arg-type]
        self.critic = Stacked([Critic(self.layout.width, args.hidden) for _ in range(nets)])
        self.actor_target, self.critic_target = self.actor.target(), self.critic.target()
        self.actor_opt = torch.optim.Adam(self.actor.params.values(), lr=args.lr_actor)
        self.critic_opt = torch.optim.Adam(self.critic.params.values(), lr=args.lr_critic)

    def _actors(self, net: Stacked, obs_n: torch.Tensor, *, logits: bool) -> torch.Tensor:
        """All agents' actor outputs for obs_n (N, B, D): (N, B, M + 3)."""
        if not self.args.share_parameters:
            return net(obs_n, logits=logits)
        n, b, _ = obs_n.shape
        ident = torch.eye(n, dtype=obs_n.dtype)[:, None, :].expand(n, b, n)
        x = torch.cat([obs_n, ident], -1).reshape(1, n * b, -1)
        return net(x, logits=logits).reshape(n, b, -1)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deployable actors' action vectors for obs (E, N, D): (E, N, M + 3)."""
        x = torch.from_numpy(np.ascontiguousarray(obs.transpose(1, 0, 2)))
        return self._actors(self.actor, x, logits=False).numpy().transpose(1, 0, 2)

    def _hard(self, logits: torch.Tensor) -> torch.Tensor:
        """The decision a board makes from `logits` (..., M + 3), critic columns only."""
        m = self.spec.num_edges
        target = F.one_hot(logits[..., : m + 1].argmax(-1), m + 1).float()
        ratio = ratio_of(logits[..., m + 1], self.args.ratio_margin) * (1 - target[..., 0])
        download = (logits[..., m + 2] > 0).float()
        return torch.cat([target, ratio[..., None], download[..., None]], -1)[..., self.cols]

    def _relaxed(self, logits: torch.Tensor) -> torch.Tensor:
        """Straight-through Gumbel-softmax target, sigmoid ratio, straight-through binary
        concrete download: hard values forward, relaxed gradients backward."""
        m, temp = self.spec.num_edges, self.args.gumbel_temperature
        target = F.gumbel_softmax(logits[..., : m + 1], tau=temp, hard=True)
        margin = self.args.ratio_margin
        ratio = ratio_of(logits[..., m + 1], margin, straight_through=True) * (1 - target[..., 0])
        u = torch.rand_like(logits[..., m + 2]).clamp(1e-6, 1 - 1e-6)
        soft = torch.sigmoid((logits[..., m + 2] + torch.log(u) - torch.log1p(-u)) / temp)
        download = (soft > 0.5).float() + soft - soft.detach()
        return torch.cat([target, ratio[..., None], download[..., None]], -1)[..., self.cols]

    def _critic_in(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """obs (B, N, D), act (B, N, A'): the critics' inputs (critic_input.py)."""
        return self.layout.build(obs, act, self.norm)

    def _own_action_weights(self, w1: torch.Tensor) -> torch.Tensor:
        """The columns of each critic's first layer that see its own agent's action:
        (C, H, K) → (N, H, A')."""
        return self.layout.own_action_weights(w1)

    def update(self, batch: Batch) -> dict[str, float]:
        """One critic and one actor step for every agent, then the soft target update.

        The actor loss is taken on the critic before this step's critic update, so one
        backward pass serves both: agent i's critic input differs from the buffer's
        only in a_i, hence its first pre-activation is the critic pass's z1 plus
        W1[:, a_i]·(μ_i(o_i) − a_i) — no second pass through the wide first layer.
        """
        a, same = self.args, self.layout.same_for_all
        obs, nxt = torch.from_numpy(batch.obs), torch.from_numpy(batch.next_obs)
        act = torch.from_numpy(batch.actions)[..., self.cols]
        rew = torch.from_numpy(batch.rewards).T  # (N, B)
        obs_n, nxt_n = obs.transpose(0, 1), nxt.transpose(0, 1)  # (N, B, D)
        with torch.no_grad():
            nxt_act = self._hard(self._actors(self.actor_target, nxt_n, logits=True))
            x_next = self._critic_in(nxt, nxt_act.transpose(0, 1))
            q_next, _ = critic_forward(self.critic_target.params, x_next, shared=same)
            y = rew + a.gamma * q_next
        q, z1 = critic_forward(self.critic.params, self._critic_in(obs, act), shared=same)
        critic_loss = F.mse_loss(q, y, reduction="none").mean(1).sum()

        logits = self._actors(self.actor, obs_n, logits=True)
        new = self._relaxed(logits)  # (N, B, A')
        frozen = {k: v.detach() for k, v in self.critic.params.items()}
        own = self._own_action_weights(frozen["l1.weight"])
        z1_new = z1.detach() + torch.bmm(new - act.transpose(0, 1), own.mT)
        actor_loss = -critic_top(frozen, z1_new).mean(1).sum()
        if a.logit_reg:
            actor_loss = actor_loss + a.logit_reg * logits.square().mean((1, 2)).sum()

        self.critic_opt.zero_grad(set_to_none=True)
        self.actor_opt.zero_grad(set_to_none=True)
        (critic_loss + actor_loss).backward()
        critic_norm = clip_grad_per_agent(self.critic.params, a.grad_clip_norm)
        actor_norm = clip_grad_per_agent(self.actor.params, a.grad_clip_norm)
        self.critic_opt.step()
        self.actor_opt.step()
        self.actor_target.soft_update(self.actor, a.tau)
        self.critic_target.soft_update(self.critic, a.tau)
        n = self.n
        return {
            "critic_loss": critic_loss.item() / n, "actor_loss": actor_loss.item() / n,
            "critic_grad_norm": critic_norm.mean().item(),
            "actor_grad_norm": actor_norm.mean().item(),
        }  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.params, "critic": self.critic.params,
            "actor_target": self.actor_target.params, "critic_target": self.critic_target.params,
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "obs_norm": self.norm.state_dict(),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for name in ("actor", "critic", "actor_target", "critic_target"):
                for k, v in getattr(self, name).params.items():
                    v.copy_(state[name][k])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        if "obs_norm" in state:  # checkpoints from before the normaliser have none
            self.norm.load_state_dict(state["obs_norm"])


# ---------------------------------------------------------------------------- loop


def train(
    args: MaddpgArgs, env: VecEnv, *, eval_env: VecEnv | None = None,
    hooks: Hooks | None = None, resume: dict[str, Any] | None = None,
) -> tuple[Maddpg, EpisodeStats | None]:  # fmt: skip
    """Train for `args.steps` environment steps (from a checkpoint's step with `resume`);
    returns the agent and its last evaluation (None without an `eval_env`)."""
    hooks = hooks or Hooks()
    torch.set_num_threads(args.threads)
    spec, e = env.spec, env.num_envs
    agent, buffer = Maddpg(args, spec, env.num_agents), new_buffer(args, env)
    rng = np.random.default_rng(args.seed)
    start, elapsed0 = 0, 0.0
    if resume is not None:
        agent.load_state_dict(resume["agent"])
        buffer.load_state_dict(resume["buffer"])
        rng.bit_generator.state = resume["numpy_rng"]
        torch.set_rng_state(resume["torch_rng"])
        start, elapsed0 = int(resume["step"]), float(resume["elapsed_s"])
    t0 = time.monotonic() - elapsed0
    tracker, losses = EpisodeTracker(), _Mean()
    evaluation: EpisodeStats | None = None
    last_reward = float("nan")
    # a resumed run starts fresh episodes: the env's inner state is not checkpointed
    obs = env.reset(seed=args.seed + start)
    for step in range(start, args.steps):
        noise = args.noise(step)
        shape = (e, env.num_agents, spec.action_dim)
        if step < args.warmup_steps:
            raw = rng.uniform(0.0, 1.0, shape)
        else:
            raw = explore(spec, agent.act(obs), args.eps(step), noise, rng)
        raw = raw.astype(np.float32)
        out = env.step(raw)
        reward = shared_reward(out.reward, out.has_task, args.team_reward)
        buffer.add(obs, executed(spec, raw), reward, out.final_obs, out.done)
        agent.norm.update(obs)
        tracker.record(out)
        obs = out.obs
        if step >= args.warmup_steps:
            for _ in range(args.updates_per_step):
                losses.add(agent.update(buffer.sample(args.batch_size, rng)))
        done = step + 1
        evaluate_now = eval_env is not None and (done % args.eval_every == 0 or done == args.steps)
        if evaluate_now:
            evaluation = evaluate(eval_env, agent.act, args.eval_episodes, seed=args.seed + 10**6)  # type: ignore[arg-type]
        if tracker.episodes or evaluate_now:
            stats = tracker.drain()
            if stats.episodes:
                last_reward = stats.episode_reward
            hooks.row({
                "step": done, "slots": done * e, "episode_reward": stats.episode_reward,
                "eval_reward": evaluation.episode_reward if evaluate_now and evaluation else np.nan,
                "latency_s": stats.latency_s, "energy_j": stats.energy_j,
                "completion": stats.completion, **losses.drain(), "noise": noise,
                "elapsed_s": time.monotonic() - t0,
            })  # fmt: skip
        hooks.progress(done, f"reward {last_reward:.2f}")
        if done % args.checkpoint_every == 0 or done == args.steps:
            hooks.checkpoint(done, {
                "step": done, "elapsed_s": time.monotonic() - t0, "args": _plain(args),
                "agent": agent.state_dict(), "buffer": buffer.state_dict(),
                "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            }, lambda: deployable_actors(agent))  # fmt: skip
        if hooks.should_stop():
            break
    return agent, evaluation


def _plain(args: MaddpgArgs) -> dict[str, Any]:
    """The arguments with enums as their strings (a checkpoint loads weights-only)."""
    return {
        k: v.value if isinstance(v, enum.Enum) else v for k, v in dataclasses.asdict(args).items()
    }


class _Mean:
    """Running means of the loss figures between two metrics rows."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def drain(self) -> dict[str, float]:
        out = {k: self.sums.get(k, 0.0) / self.count if self.count else np.nan
               for k in ("critic_loss", "actor_loss")}  # fmt: skip
        self.sums, self.count = {}, 0
        return out


# ---------------------------------------------------------------------------- evaluation/export


def deployable_actors(agent: Maddpg) -> list[nn.Module]:
    """Each agent's actor as the deployable `build_actor` module: what export.py writes
    to ONNX and the boards run (its forward = `agent.act` for that agent). A shared
    actor is copied once per agent with that agent's id one-hot baked in."""
    out = []
    hidden, share = (agent.args.hidden, agent.args.hidden), agent.args.share_parameters
    for i in range(agent.n):
        module = build_actor(
            agent.spec,
            hidden,
            seed=0,
            id_features=agent.n if share else 0,
            ratio_margin=agent.args.ratio_margin,
        )
        state = {
            k.removeprefix("actor."): v for k, v in agent.actor.unstacked(0 if share else i).items()
        }
        if share:
            state["agent_id"] = F.one_hot(torch.tensor(i), agent.n).float()
        module.load_state_dict(state)
        out.append(module.eval())
    return out
