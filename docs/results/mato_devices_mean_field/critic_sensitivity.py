"""How strongly each MATO critic's Q_i responds to its own agent's action and to the
others', on slots from the run's own replay buffer (README.md, "Why MATO did not learn
at 20 devices").

    python docs/results/mato_devices_mean_field/critic_sensitivity.py RUN_DIR [CHECKPOINT]

RUN_DIR is a `testbed train --algo mato` run folder (probes.sh writes them under runs/);
CHECKPOINT a file in its checkpoints/ (default latest.pt). Prints the mean over agents of
mean |∂Q_i/∂a_i| and of mean |∂Q_j≠i|, summed over the action's columns, on 1024 slots.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from coordinator.algorithms.critic_input import critic_forward
from coordinator.algorithms.maddpg import Maddpg, MaddpgArgs
from coordinator.envs import make_vec_env


def main(run: Path, checkpoint: str = "latest.pt") -> None:
    state = torch.load(run / "checkpoints" / checkpoint, weights_only=False)
    env = make_vec_env(run / "config.yaml", 1)
    buffer = state["buffer"]
    n = buffer["obs"].shape[1]
    agent = Maddpg(MaddpgArgs(**state["args"]), env.spec, n)
    agent.load_state_dict(state["agent"])
    idx = torch.randint(0, int(buffer["size"]), (1024,), generator=torch.Generator().manual_seed(0))
    obs = buffer["obs"][idx].float()
    act = buffer["actions"][idx][..., agent.cols].float().requires_grad_(True)
    x = agent.layout.build(obs, act, agent.norm)
    q, _ = critic_forward(agent.critic.params, x, shared=agent.layout.same_for_all)
    own, others = [], []
    for i in range(n):
        (grad,) = torch.autograd.grad(q[i].sum(), act, retain_graph=True)
        per_agent = grad.abs().mean(0).sum(-1)  # (N,): mean |∂Q_i/∂a_j|
        own.append(per_agent[i].item())
        others.append(torch.cat([per_agent[:i], per_agent[i + 1 :]]).mean().item())
    print(f"{run.name} {checkpoint}: {n} agents, critic_input {state['args']['critic_input']}")
    print(f"  mean |dQ_i/da_i|        {np.mean(own):.3f}")
    print(f"  mean |dQ_i/da_j|, j!=i  {np.mean(others):.3f}")
    print(f"  the {n - 1} others together / own: {np.mean(others) * (n - 1) / np.mean(own):.1f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:3])
