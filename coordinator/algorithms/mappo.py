"""MAPPO (Yu et al. 2022, "The Surprising Effectiveness of PPO in Cooperative
Multi-Agent Games"): a stochastic on-policy baseline beside MADDPG-MATO
(docs/algorithms.md, section "MAPPO").

One actor π(a | o_i, id_i) shared by all N agents (parameter sharing; the agent's
one-hot id is appended to its observation), one centralised value function V(s_i)
shared likewise, on the agent-specific global state

    s_i = [o_i, task features of every agent (type one-hot, size, density, deadline), id_i]

o_i already holds what the agents share (the edges' caches, positions, clocks), so the
state adds only what differs between the agents in a slot (their tasks) — once, not as
N copies of every observation. Inputs are standardised by running statistics
(`RunningNorm`, kept in checkpoints and baked into the exported actors); values by a
running normaliser of the returns (MAPPO's ValueNorm).

The policy. Heads of the same M + 3 outputs as coordinator/actors.py's deployable actor:
a categorical over the targets (none, edge 0..M−1), a Gaussian in logit space for the
ratio (x = σ(z), z ~ N(μ, σ²), σ one learned parameter) and a Bernoulli for the download
flag (only where the spec has the download action). Where the sampled target is "none",
ratio and flag have no effect and count in neither the log-probability nor the entropy.
The deterministic policy (argmax target and d = 1[logit > 0], the modes; x = σ(μ), the
median of x) is what `act` evaluates and `deployable_actors` exports: softmax
probabilities, σ(μ), σ(logit), exactly build_actor's outputs, so the boards decode it
unchanged.

The update. Rollouts of `rollout_steps` environment steps; GAE(λ) per agent on its own
reward (18) (with `team_reward` α > 0 on `shared_reward`'s mix of it and the slot's mean,
as MADDPG's), bootstrapping through episode ends from the episode's last observation
(a time limit, not a terminal state); advantages normalised; `epochs` passes of
`minibatches` minibatches of the clipped surrogate with an entropy bonus, and the
(optionally clipped) value loss; gradient norms clipped per network.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Categorical, Normal

from coordinator.algorithms.mappo_nets import (
    LOG_STD_RANGE,
    DeployableActor,
    Policy,
    RunningNorm,
    mlp,
    mode_action,
    task_columns,
)
from coordinator.algorithms.rollout import EpisodeStats, EpisodeTracker, Hooks, evaluate
from coordinator.algorithms.team_reward import shared_reward
from coordinator.envs.vector import StepOut, VecEnv
from testbed.config import TestbedConfig
from testbed.observation import ObservationSpec

# ---------------------------------------------------------------------------- arguments


@dataclass(frozen=True)
class MappoArgs:
    """Hyper-parameters. `gamma`, `hidden`, `steps`, `checkpoint_every`, `eval_every`,
    `eval_episodes` and `threads` come from `train:` of testbed.yaml, `seed` from the
    master seed; the rest are MAPPO's own (defaults: Yu et al. 2022's, unless noted)."""

    lr_actor: float = 5e-4
    """Adam learning rate of the shared actor (Yu et al.: 5e-4)."""
    lr_critic: float = 5e-4
    """Adam learning rate of the shared value function (Yu et al.: 5e-4)."""
    gamma: float = 0.95
    """Discount factor γ per slot (train.gamma, the paper's)."""
    gae_lambda: float = 0.95
    """λ of GAE(λ)."""
    rollout_steps: int = 25
    """Environment steps per rollout (each: one slot of every one of the E environments);
    a rollout holds rollout_steps · E · N agent samples."""
    epochs: int = 5
    """Passes over each rollout (Yu et al.: 5–15)."""
    minibatches: int = 4
    """Minibatches per pass."""
    clip: float = 0.2
    """ε of the clipped surrogate min(ρA, clip(ρ, 1 − ε, 1 + ε)A)."""
    value_clip: float = 0.2
    """Clip of the value prediction's move from the rollout's value (0: off)."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus (target and download distributions)."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip of each network (Yu et al.: 10)."""
    ratio_log_std_init: float = -0.5
    """Initial log σ of the ratio's Gaussian in logit space (ours)."""
    hidden: int = 256
    """Width of the two hidden layers of actor and value function (train.hidden)."""
    steps: int = 3000
    """Environment steps to train for (train.steps)."""
    checkpoint_every: int = 500
    """Steps between checkpoints (and one at the end)."""
    eval_every: int = 250
    """Steps between evaluations of the deterministic policy (and one at the end)."""
    eval_episodes: int = 4
    """Episodes per evaluation."""
    threads: int = 2
    """torch intra-op threads."""
    team_reward: float = 0.0
    """α of `shared_reward` (train.team_reward): the share of the slot's mean reward in
    each agent's."""
    seed: int = 0
    """Seed of initialisation, sampling, minibatch order and the env."""

    SHARED = ("gamma", "hidden", "steps", "checkpoint_every", "eval_every", "eval_episodes",
              "threads", "team_reward")  # fmt: skip

    @classmethod
    def from_config(cls, cfg: TestbedConfig, **flags: Any) -> MappoArgs:
        shared = {k: getattr(cfg.train, k) for k in cls.SHARED}
        return cls(**{**shared, "seed": cfg.seed, **flags})


def _floats(array: np.ndarray) -> torch.Tensor:
    """A float32 tensor of any backend's array (the twin's are float32 already)."""
    return torch.as_tensor(np.asarray(array, dtype=np.float32))


@dataclass
class Decision:
    """Sampled actions (E, N): target index (0: none), ratio logit z, download flag;
    their log-probability and the action vectors (E, N, M + 3) the env executes."""

    target: torch.Tensor
    ratio_logit: torch.Tensor
    download: torch.Tensor
    log_prob: torch.Tensor
    raw: np.ndarray


# ---------------------------------------------------------------------------- agent


class Mappo:
    """The shared actor and value function, their optimisers and normalisers."""

    def __init__(self, args: MappoArgs, spec: ObservationSpec, num_agents: int) -> None:
        torch.manual_seed(args.seed)
        self.args, self.spec, self.n = args, spec, num_agents
        self.ids = torch.eye(num_agents)
        self.task_cols = task_columns(spec)
        raw_state = spec.obs_dim + num_agents * len(self.task_cols)
        self.policy = Policy(spec.obs_dim + num_agents, args.hidden, spec.action_dim,
                             args.ratio_log_std_init)  # fmt: skip
        self.value = mlp(raw_state + num_agents, args.hidden, 1, 1.0)
        self.obs_norm, self.state_norm = RunningNorm(spec.obs_dim), RunningNorm(raw_state)
        self.return_norm = RunningNorm(1)
        self.policy_opt = torch.optim.Adam(self.policy.parameters(), lr=args.lr_actor, eps=1e-5)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=args.lr_critic, eps=1e-5)

    # inputs ------------------------------------------------------------------

    def _with_ids(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.ids.expand(*x.shape[:-2], self.n, self.n)], -1)

    def raw_state(self, obs: torch.Tensor) -> torch.Tensor:
        """(…, N, D) → (…, N, D + N·k): o_i and the task features of all agents."""
        tasks = obs[..., self.task_cols].flatten(-2)
        return torch.cat([obs, tasks.unsqueeze(-2).expand(*obs.shape[:-1], tasks.shape[-1])], -1)

    def policy_input(self, obs: torch.Tensor) -> torch.Tensor:
        return self._with_ids(self.obs_norm.features(obs))

    def value_input(self, obs: torch.Tensor) -> torch.Tensor:
        return self._with_ids(self.state_norm.features(self.raw_state(obs)))

    # acting ------------------------------------------------------------------

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic policy's action vectors for obs (E, N, D): (E, N, M + 3)."""
        logits = self.policy(self.policy_input(_floats(obs)))
        return mode_action(logits, self.spec.num_edges).numpy()

    @torch.no_grad()
    def values(self, obs: np.ndarray) -> torch.Tensor:
        """V(s_i) of every agent (E, N), in reward units."""
        v = self.value(self.value_input(_floats(obs))).squeeze(-1)
        return self.return_norm.denormalise(v)

    def _dists(self, logits: torch.Tensor) -> tuple[Categorical, Normal, Bernoulli]:
        m = self.spec.num_edges
        log_std = self.policy.ratio_log_std.clamp(*LOG_STD_RANGE)
        return (Categorical(logits=logits[..., : m + 1]),
                Normal(logits[..., m + 1], log_std.exp().expand_as(logits[..., m + 1])),
                Bernoulli(logits=logits[..., m + 2]))  # fmt: skip

    @torch.no_grad()
    def sample(self, obs: np.ndarray) -> Decision:
        """Actions sampled from the policy for obs (E, N, D)."""
        logits = self.policy(self.policy_input(_floats(obs)))
        target_d, ratio_d, download_d = self._dists(logits)
        target, z, d = target_d.sample(), ratio_d.sample(), download_d.sample()
        log_prob, _ = self.log_prob_entropy(logits, target, z, d)
        m = self.spec.num_edges
        raw = torch.cat([F.one_hot(target, m + 1).float(), torch.sigmoid(z)[..., None],
                         (d if self.spec.download_action else torch.ones_like(d))[..., None]],
                        -1)  # fmt: skip
        return Decision(target, z, d, log_prob, raw.numpy())

    def log_prob_entropy(
        self, logits: torch.Tensor, target: torch.Tensor, z: torch.Tensor, d: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log π(a | o) of the effective action, and the entropy bonus's entropy: the
        ratio and the flag count only where the target is an edge (they do nothing
        otherwise); the flag only with a download action."""
        target_d, ratio_d, download_d = self._dists(logits)
        offload = (target > 0).float()
        part = ratio_d.log_prob(z)
        entropy = target_d.entropy()
        if self.spec.download_action:
            part = part + download_d.log_prob(d)
            entropy = entropy + target_d.probs[..., 1:].sum(-1) * download_d.entropy()
        return target_d.log_prob(target) + offload * part, entropy

    # learning ----------------------------------------------------------------

    def update(self, roll: Rollout, last_obs: np.ndarray) -> dict[str, float]:
        """PPO epochs over one rollout; the means of the losses."""
        a = self.args
        data = roll.stacked()
        adv = gae(data["reward"], data["value"], data["final_value"], data["done"],
                  self.values(last_obs), a.gamma, a.gae_lambda)  # fmt: skip
        returns = adv + data["value"]
        self.obs_norm.update(data["obs"])
        self.state_norm.update(self.raw_state(data["obs"]))
        self.return_norm.update(returns)
        mask = data["has_task"].float()
        moments = adv[mask > 0] if mask.any() else adv
        adv = (adv - moments.mean()) / (moments.std(unbiased=False) + 1e-8)
        with torch.no_grad():
            obs = data["obs"]
            flat = {
                "policy_in": self.policy_input(obs), "value_in": self.value_input(obs),
                "target": data["target"], "z": data["ratio_logit"], "d": data["download"],
                "old_log_prob": data["log_prob"], "adv": adv, "mask": mask,
                "old_value": self.return_norm.normalise(data["value"]),
                "returns": self.return_norm.normalise(returns),
            }  # fmt: skip
            flat = {k: v.reshape(-1, *v.shape[3:]) for k, v in flat.items()}
        sums = {"actor_loss": 0.0, "critic_loss": 0.0, "entropy": 0.0}
        size = flat["adv"].shape[0]
        chunks = max(1, min(a.minibatches, size))
        for _ in range(a.epochs):
            for idx in torch.randperm(size).chunk(chunks):
                for k, v in self._minibatch({k: v[idx] for k, v in flat.items()}).items():
                    sums[k] += v / (a.epochs * chunks)
        return sums

    def _minibatch(self, mb: dict[str, torch.Tensor]) -> dict[str, float]:
        a = self.args
        logits = self.policy(mb["policy_in"])
        log_prob, entropy = self.log_prob_entropy(logits, mb["target"], mb["z"], mb["d"])
        rho = torch.exp(log_prob - mb["old_log_prob"])
        surrogate = torch.min(rho * mb["adv"], rho.clamp(1 - a.clip, 1 + a.clip) * mb["adv"])
        weight = mb["mask"] / mb["mask"].sum().clamp_min(1.0)
        entropy_mean = (entropy * weight).sum()
        actor_loss = -(surrogate * weight).sum() - a.entropy_coef * entropy_mean
        v = self.value(mb["value_in"]).squeeze(-1)
        critic = (v - mb["returns"]).square()
        if a.value_clip > 0:
            clipped = mb["old_value"] + (v - mb["old_value"]).clamp(-a.value_clip, a.value_clip)
            critic = torch.max(critic, (clipped - mb["returns"]).square())
        critic_loss = 0.5 * critic.mean()
        for loss, net, opt in ((actor_loss, self.policy, self.policy_opt),
                               (critic_loss, self.value, self.value_opt)):  # fmt: skip
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), a.max_grad_norm)
            opt.step()
        return {"actor_loss": actor_loss.item(), "critic_loss": critic_loss.item(),
                "entropy": entropy_mean.item()}  # fmt: skip

    # checkpoints -------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(), "value": self.value.state_dict(),
            "policy_opt": self.policy_opt.state_dict(), "value_opt": self.value_opt.state_dict(),
            "obs_norm": self.obs_norm.state_dict(), "state_norm": self.state_norm.state_dict(),
            "return_norm": self.return_norm.state_dict(),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.value.load_state_dict(state["value"])
        self.policy_opt.load_state_dict(state["policy_opt"])
        self.value_opt.load_state_dict(state["value_opt"])
        for name in ("obs_norm", "state_norm", "return_norm"):
            getattr(self, name).load_state_dict(state[name])


def gae(
    reward: torch.Tensor, value: torch.Tensor, final_value: torch.Tensor, done: torch.Tensor,
    last_value: torch.Tensor, gamma: float, lam: float,
) -> torch.Tensor:  # fmt: skip
    """GAE(λ) advantages (T, E, N). Where an episode ends (done (T, E)) the next value is
    V of its last observation (`final_value`, a time limit: bootstrapped) and the
    recursion restarts; after the last step, `last_value`."""
    adv = torch.zeros_like(reward)
    running = torch.zeros_like(reward[0])
    for t in reversed(range(reward.shape[0])):
        ended = done[t].float()[:, None]
        following = last_value if t == reward.shape[0] - 1 else value[t + 1]
        following = ended * final_value[t] + (1 - ended) * following
        delta = reward[t] + gamma * following - value[t]
        running = delta + gamma * lam * (1 - ended) * running
        adv[t] = running
    return adv


class Rollout:
    """The steps of one rollout, as tensors (E, N, ·) per step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, obs: np.ndarray, act: Decision, value: torch.Tensor, out: StepOut,
            final_value: torch.Tensor, team_reward: float = 0.0) -> None:  # fmt: skip
        """One step; the agents learn from `shared_reward(…, team_reward)`."""
        reward = shared_reward(out.reward, out.has_task, team_reward)
        self.steps.append({
            "obs": _floats(obs), "target": act.target, "ratio_logit": act.ratio_logit,
            "download": act.download, "log_prob": act.log_prob, "value": value,
            "reward": _floats(reward), "done": torch.as_tensor(np.asarray(out.done, bool)),
            "has_task": torch.as_tensor(np.asarray(out.has_task, bool)), "final_value": final_value,
        })  # fmt: skip

    def stacked(self) -> dict[str, torch.Tensor]:
        return {k: torch.stack([s[k] for s in self.steps]) for k in self.steps[0]}


# ---------------------------------------------------------------------------- loop


def train(
    args: MappoArgs, env: VecEnv, *, eval_env: VecEnv | None = None,
    hooks: Hooks | None = None, resume: dict[str, Any] | None = None,
) -> tuple[Mappo, EpisodeStats | None]:  # fmt: skip
    """Train for `args.steps` environment steps (from a checkpoint's step with `resume`);
    returns the agent and its last evaluation (None without an `eval_env`). A rollout
    cut by a checkpoint is not in the checkpoint: a resumed run starts a fresh one."""
    hooks = hooks or Hooks()
    torch.set_num_threads(args.threads)
    agent = Mappo(args, env.spec, env.num_agents)
    start, elapsed0 = 0, 0.0
    if resume is not None:
        agent.load_state_dict(resume["agent"])
        torch.set_rng_state(resume["torch_rng"])
        start, elapsed0 = int(resume["step"]), float(resume["elapsed_s"])
    t0 = time.monotonic() - elapsed0
    tracker, losses, roll = EpisodeTracker(), _Mean(), Rollout()
    evaluation: EpisodeStats | None = None
    last_reward = float("nan")
    obs = env.reset(seed=args.seed + start)  # the env's inner state is not checkpointed
    for step in range(start, args.steps):
        decision = agent.sample(obs)
        out = env.step(decision.raw)
        final = torch.zeros(out.reward.shape)
        if out.done.any():
            final = agent.values(out.final_obs) * _floats(out.done)[:, None]
        roll.add(obs, decision, agent.values(obs), out, final, args.team_reward)
        tracker.record(out)
        obs = out.obs
        done = step + 1
        if len(roll) == args.rollout_steps or done == args.steps:
            losses.add(agent.update(roll, obs))
            roll = Rollout()
        evaluate_now = eval_env is not None and (done % args.eval_every == 0 or done == args.steps)
        if evaluate_now:
            evaluation = evaluate(eval_env, agent.act, args.eval_episodes, seed=args.seed + 10**6)  # type: ignore[arg-type]
        if tracker.episodes or evaluate_now:
            stats = tracker.drain()
            last_reward = stats.episode_reward if stats.episodes else last_reward
            hooks.row({
                "step": done, "slots": done * env.num_envs, "episode_reward": stats.episode_reward,
                "eval_reward": evaluation.episode_reward if evaluate_now and evaluation else np.nan,
                "latency_s": stats.latency_s, "energy_j": stats.energy_j,
                "completion": stats.completion, **losses.drain(), "noise": np.nan,
                "elapsed_s": time.monotonic() - t0,
            })  # fmt: skip
        hooks.progress(done, f"reward {last_reward:.2f}")
        if done % args.checkpoint_every == 0 or done == args.steps:
            hooks.checkpoint(done, {
                "step": done, "elapsed_s": time.monotonic() - t0, "args": _plain(args),
                "agent": agent.state_dict(), "torch_rng": torch.get_rng_state(),
            }, lambda: deployable_actors(agent))  # fmt: skip
        if hooks.should_stop():
            break
    return agent, evaluation


def _plain(args: MappoArgs) -> dict[str, Any]:
    return dataclasses.asdict(args)


class _Mean:
    """Means of the update figures between two metrics rows (NaN without an update)."""

    KEYS = ("critic_loss", "actor_loss", "entropy")

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def add(self, values: dict[str, float]) -> None:
        self.rows.append(values)

    def drain(self) -> dict[str, float]:
        out = {k: float(np.mean([r[k] for r in self.rows])) if self.rows else np.nan
               for k in self.KEYS}  # fmt: skip
        self.rows = []
        return out


# ---------------------------------------------------------------------------- export


def deployable_actors(agent: Mappo) -> list[nn.Module]:
    """Every agent's deterministic policy as an exportable module (export.py writes
    them to ONNX; its forward = `agent.act` for that agent)."""
    return [DeployableActor(agent.policy, agent.obs_norm, agent.ids[i], agent.spec.num_edges).eval()
            for i in range(agent.n)]  # fmt: skip
