"""Discrete actions of a scheduler over B edge servers (docs/coedge.md, "Actions") as
sets of servers: a (…, B) bool mask per action index, and back.

- `one`: action j is server j (B actions).
- `subset`: action i is the non-empty set whose bitmask is i + 1, bit j = server j
  (2^B − 1 actions): action 0 is {0}, action 2^B − 2 is every server.
- `topk`: action i is the i-th k-subset in colexicographic order, the rank of the
  combinatorial number system, Σ_m C(c_m, m + 1) over its servers c_0 < c_1 < …
  (C(B, k) actions). `topk_mask` picks the k best servers by a score (SMCoEdge's
  top-k DQN) and `mask_index` turns them into an action.

Everything is vectorised over leading axes.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import combinations
from typing import Any

import numpy as np

from testbed.config.coedge import CoedgeActionMode

Array = np.ndarray[Any, Any]


def num_actions(mode: CoedgeActionMode, num_servers: int, k: int = 1) -> int:
    """How many actions `mode` has over `num_servers` servers (k: servers per topk set)."""
    if mode is CoedgeActionMode.ONE:
        return num_servers
    if mode is CoedgeActionMode.SUBSET:
        return (1 << num_servers) - 1
    return math.comb(num_servers, k)


def action_masks(mode: CoedgeActionMode, num_servers: int, k: int = 1) -> Array:
    """(A, B) bool: the servers of every action, row i = action i."""
    return _masks(CoedgeActionMode(mode), num_servers, k).copy()


@lru_cache(maxsize=32)
def _masks(mode: CoedgeActionMode, num_servers: int, k: int) -> Array:
    b = num_servers
    if mode is CoedgeActionMode.ONE:
        return np.eye(b, dtype=bool)
    if mode is CoedgeActionMode.SUBSET:
        bits = np.arange(1, 1 << b, dtype=np.int64)
        return ((bits[:, None] >> np.arange(b)) & 1).astype(bool)
    out = np.zeros((math.comb(b, k), b), dtype=bool)
    for combo in combinations(range(b), k):  # lexicographic; placed at its colex rank
        out[_colex_rank(combo), list(combo)] = True
    return out


def _colex_rank(combo: tuple[int, ...]) -> int:
    return sum(math.comb(c, m + 1) for m, c in enumerate(combo))


def mask_index(mode: CoedgeActionMode, mask: Array, k: int = 1) -> Array:
    """The action index of each (…, B) server mask; −1 where the mask is not an action
    of `mode` (no server, or not exactly one / k servers)."""
    mask = np.asarray(mask, dtype=bool)
    b = mask.shape[-1]
    count = mask.sum(axis=-1)
    if mode is CoedgeActionMode.ONE:
        return np.where(count == 1, mask.argmax(axis=-1), -1)
    if mode is CoedgeActionMode.SUBSET:
        bits = (mask.astype(np.int64) << np.arange(b)).sum(axis=-1)
        return np.where(count >= 1, bits - 1, -1)
    order = np.cumsum(mask, axis=-1)  # m + 1 at each chosen server
    table = _binomials(b)  # table[c, m] = C(c, m)
    terms = np.where(mask, table[np.arange(b), np.minimum(order, b)], 0)
    return np.where(count == k, terms.sum(axis=-1), -1)


@lru_cache(maxsize=8)
def _binomials(b: int) -> Array:
    """(B, B + 1) int64: C(c, m) for c < B, m ≤ B."""
    return np.array([[math.comb(c, m) for m in range(b + 1)] for c in range(b)], dtype=np.int64)


def one_mask(server: Array, num_servers: int) -> Array:
    """(…, B) the mask of one server per entry of `server`."""
    return np.arange(num_servers) == np.asarray(server)[..., None]


def topk_mask(scores: Array, k: int) -> Array:
    """(…, B) the k servers with the highest scores (ties: the lower index)."""
    scores = np.asarray(scores)
    top = np.argsort(-scores, axis=-1, kind="stable")[..., :k]
    mask = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(mask, top, True, axis=-1)
    return mask
