"""A numpy ring buffer of single decisions, for the discrete learners (dsac.py, dqn.py).

One row is one agent's decision: its learner input (the observation, with the agent-id
one-hot where several agents share the networks: discrete_loop.py), the action index,
the reward, the next input and whether that next input is terminal (no bootstrap from
it). Decisions an environment marks `has_decision` False never get here. When full,
the oldest row is overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DecisionBatch:
    """A sampled minibatch (numpy, leading dimension B)."""

    states: np.ndarray  # (B, in_dim) float32
    actions: np.ndarray  # (B,) int64
    rewards: np.ndarray  # (B,) float32
    next_states: np.ndarray  # (B, in_dim) float32
    terminal: np.ndarray  # (B,) float32: 1.0 where the next state is terminal


class DecisionReplay:
    """Fixed capacity; `add` takes any number of decisions at once."""

    def __init__(self, capacity: int, in_dim: int) -> None:
        if capacity < 1:
            raise ValueError("replay capacity must be at least 1")
        self.capacity = capacity
        self.states = np.zeros((capacity, in_dim), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.next_states = np.zeros((capacity, in_dim), np.float32)
        self.terminal = np.zeros(capacity, np.float32)
        self.pos = 0  # the row the next decision goes to
        self.size = 0  # rows filled

    def __len__(self) -> int:
        return self.size

    def add(
        self, states: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
        next_states: np.ndarray, terminal: np.ndarray,
    ) -> None:  # fmt: skip
        """Append K decisions: states (K, D), actions (K,), rewards (K,), next_states
        (K, D), terminal (K,)."""
        n = len(states)
        if n > self.capacity:  # only the newest `capacity` rows can survive anyway
            keep = slice(n - self.capacity, n)
            states, actions, rewards = states[keep], actions[keep], rewards[keep]
            next_states, terminal = next_states[keep], terminal[keep]
            n = self.capacity
        rows = (self.pos + np.arange(n)) % self.capacity
        self.states[rows] = states
        self.actions[rows] = actions
        self.rewards[rows] = rewards
        self.next_states[rows] = next_states
        self.terminal[rows] = terminal
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> DecisionBatch:
        """`batch_size` rows drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, batch_size)
        return DecisionBatch(
            self.states[idx], self.actions[idx], self.rewards[idx], self.next_states[idx],
            self.terminal[idx],
        )  # fmt: skip
