"""What each critic of MADDPG-MATO sees, and the stacked critics that read it
(docs/algorithms.md, "The critic's input").

Of an observation (testbed/observation.py) some columns are the same for every agent
in a slot — the edges' positions, clocks, queues, liveness, free cache and cached
models, the cloud's position: the *global* state — and the rest belong to the agent:
its task (type one-hot, size, density, deadline), its own position, clock and queue,
its rate to each edge and whether each edge holds its task's model. Of those, the
position, clock and rates do not change during a run (the twin fixes them, a board's
are its configuration), so they carry nothing about the slot to another agent's critic.

Three layouts (`train.critic_input`):

- `paper` — the paper's literal input (docs/papers.md §A): all N observations and all N
  actions, as they are. Every critic gets the same vector, N·(D + A') wide, in which the
  global state appears N times (at the default bench 510 inputs, about half constant).
- `compact` (default) — agent i's critic sees its own observation o_i (the global state
  once, and its own features), the *varying* own features of every other agent
  (`varying_columns`: task block, queue, holds-the-model flags), and all N actions;
  the observation parts standardised by a running normaliser (normalizer.py).
- `mean_field` — agent i's critic sees o_i (standardised), the mean of the other
  agents' standardised varying features, its own action a_i and the mean of the
  other agents' actions (the mean-field critic of Yang et al., 2018). It is as wide at
  20 devices as at 5: the compact input grows by F + A' columns per agent (355 at 20
  devices), through which the critic must still find the own observation × own action
  interaction that decides a task's reward (docs/algorithms.md, "The critic's input").

Without a centralised critic (SADDPG) agent i's critic sees [o_i, a_i] (standardised
o_i with `compact`). With `share_parameters` one critic serves every agent and an
agent-id one-hot is appended to each input. The actions always keep their [0, 1]
scale (one-hot targets, the ratio, the download flag): standardising a column whose
variance shrinks as the policy settles would amplify the actor's gradient through it.
"""

from __future__ import annotations

import torch
from torch import nn

from coordinator.algorithms.normalizer import RunningNorm
from testbed.config.runs import CriticInput
from testbed.observation import ObservationSpec


def varying_columns(spec: ObservationSpec) -> list[int]:
    """The observation columns that are an agent's own and change from slot to slot."""
    names = spec.feature_names()
    own = {f"type={t}" for t in spec.task_types} | {"size", "density", "deadline", "self_queue"}
    own |= {f"edge{j}_holds_task_model" for j in range(spec.num_edges)}
    return [i for i, name in enumerate(names) if name in own]


class CriticLayout:
    """Builds the critics' inputs from a minibatch's observations and actions."""

    def __init__(
        self, spec: ObservationSpec, num_agents: int, action_width: int, *,
        mode: CriticInput, centralised: bool, share: bool,
    ) -> None:  # fmt: skip
        self.n, self.d, self.a = num_agents, spec.obs_dim, action_width
        self.mode, self.centralised, self.share = CriticInput(mode), centralised, share
        self.varying = torch.as_tensor(varying_columns(spec), dtype=torch.long)
        n = num_agents
        # others[i] = every agent but i, in agent order
        self.others = torch.as_tensor([[j for j in range(n) if j != i] for i in range(n)])
        f = len(self.varying)
        # action_start: the first column of agent 0's action in critic 0's input
        if not centralised:
            self.action_start, actions = self.d, self.a
        elif self.mode is CriticInput.PAPER:
            self.action_start, actions = n * self.d, n * self.a
        elif self.mode is CriticInput.MEAN_FIELD:
            self.action_start, actions = self.d + f, 2 * self.a
        else:
            self.action_start, actions = self.d + (n - 1) * f, n * self.a
        self.width = self.action_start + actions + (n if share else 0)

    @property
    def same_for_all(self) -> bool:
        """Every critic gets the same input: one (B, K) matrix instead of (N, B, K)."""
        return self.centralised and self.mode is CriticInput.PAPER and not self.share

    @property
    def standardised(self) -> bool:
        return self.mode is not CriticInput.PAPER

    def build(self, obs: torch.Tensor, act: torch.Tensor, norm: RunningNorm) -> torch.Tensor:
        """obs (B, N, D), act (B, N, A'): (B, K) if `same_for_all`, else (N, B, K)."""
        b, n = obs.shape[0], self.n
        if self.standardised:
            obs = norm.normalise(obs)
        if self.same_for_all:
            return torch.cat([obs.flatten(1), act.flatten(1)], -1)
        own = obs.transpose(0, 1)  # (N, B, D)
        if not self.centralised:
            parts = [own, act.transpose(0, 1)]
        elif self.mode is CriticInput.PAPER:
            joint = torch.cat([obs.flatten(1), act.flatten(1)], -1)
            parts = [joint.expand(n, *joint.shape)]
        elif self.mode is CriticInput.MEAN_FIELD:
            act = act.transpose(0, 1)  # (N, B, A')
            varying = own[..., self.varying]  # (N, B, F)
            parts = [own, _mean_of_others(varying), act, _mean_of_others(act)]
        else:
            varying = obs[..., self.varying]  # (B, N, F)
            others = varying[:, self.others].permute(1, 0, 2, 3).reshape(n, b, -1)
            parts = [own, others, act.flatten(1).expand(n, b, -1)]
        if self.share:
            parts.append(torch.eye(n, dtype=obs.dtype)[:, None, :].expand(n, b, n))
        return torch.cat(parts, -1)

    def own_action_weights(self, w1: torch.Tensor) -> torch.Tensor:
        """The first-layer columns through which critic i sees agent i's own action:
        w1 (C, H, K), C = N or 1 (shared) → (N, H, A')."""
        # the step from agent 0's action columns to agent i's (0: each critic's own
        # action sits at the same columns)
        step = self.a if self.centralised and self.mode is not CriticInput.MEAN_FIELD else 0
        cols = [self.action_start + i * step + torch.arange(self.a) for i in range(self.n)]
        net = [0 if self.share else i for i in range(self.n)]
        return torch.stack([w1[c][:, k] for c, k in zip(net, cols, strict=True)])


def _mean_of_others(x: torch.Tensor) -> torch.Tensor:
    """x (N, B, F): row i the mean of x over every agent but i (zeros for one agent)."""
    n = x.shape[0]
    return (x.sum(0, keepdim=True) - x) / max(n - 1, 1)


class Critic(nn.Module):
    """Q_i: an MLP inputs → hidden → hidden → 1 (used for its initialisation; the
    critics run stacked in `critic_forward`)."""

    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(inputs, hidden), nn.Linear(hidden, hidden)
        self.l3 = nn.Linear(hidden, 1)


def critic_forward(
    p: dict[str, torch.Tensor], x: torch.Tensor, *, shared: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Q of all N critics (N, B) and their first pre-activation z1 (N, B, H). x: (N, B, K),
    or (B, K) seen by every critic with `shared` (then layer 1 is one GEMM). Parameters
    with a leading dimension of 1 are one critic shared by all N inputs."""
    w1 = p["l1.weight"]  # (C, H, K)
    c, h, k = w1.shape
    if shared:
        z1 = (x @ w1.reshape(c * h, k).T).view(-1, c, h).transpose(0, 1) + p["l1.bias"][:, None]
    elif c == 1 and x.shape[0] != 1:  # one shared critic for every agent's input
        n, b = x.shape[:2]
        z1 = torch.addmm(p["l1.bias"][0], x.reshape(n * b, k), w1[0].T).view(n, b, h)
    else:
        z1 = torch.baddbmm(p["l1.bias"][:, None], x, w1.transpose(1, 2))
    return critic_top(p, z1), z1


def critic_top(p: dict[str, torch.Tensor], z1: torch.Tensor) -> torch.Tensor:
    """Layers 2 and 3 from the first pre-activation z1 (N, B, H): Q (N, B)."""
    n, b, h = z1.shape
    c = p["l2.weight"].shape[0]
    x = z1.reshape(1, n * b, h) if c == 1 and n != 1 else z1
    h2 = torch.relu(torch.baddbmm(p["l2.bias"][:, None], torch.relu(x), p["l2.weight"].mT))
    q = torch.baddbmm(p["l3.bias"][:, None], h2, p["l3.weight"].mT).squeeze(-1)
    return q.reshape(n, b)
