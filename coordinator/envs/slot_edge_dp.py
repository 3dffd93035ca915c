"""One edge's best service of every set of the slot's agents: a dynamic programme over
the edge's FIFO (docs/optimum.md).

An edge serves its uploads in the order they arrive, and an upload's outcome depends
only on the uploads before it — through when the server is free and which models the
edge holds, in LRU order. So the programme walks the edge's candidate uploads (every
agent × ratio, `SlotModel.uploads_to`) in arrival order, and a state is (the agents
placed so far, the models held, the server's free time, the reward so far): an upload
either is skipped or places its agent, with d = 0 or 1 where the model is missing.
Of two states with the same agents and the same held models, one that is free no
later with no less reward dominates; only the undominated are kept. At the end, the
best reward of each set of placed agents is V_j(set): exact, for every set whose best
completion could still beat `floor`.

Each state also carries an upper bound on the slot's total through it: its reward
plus, for every agent not placed here, the best it could still earn (here on an
upload not yet passed, at another edge, or on the board), each upload priced as if
served on arrival (`SlotModel.upper_bound`). A state whose bound is below `floor` (a
total already achieved) cannot lead to a better slot and is dropped. If the states
exceed `max_states`, the lowest bounds are dropped too and the largest of them is
kept: the optimum is then certified only up to it (`EdgeValues.dropped_bound`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from coordinator.envs.slot_model import Held, SlotModel, Upload

Trace = tuple[Any, ...] | None
"""The placements behind a state, newest first: (upload, download, parent trace)."""


@dataclass
class _State:
    free_s: float
    reward: float
    bound: float
    trace: Trace


@dataclass(frozen=True)
class EdgeValues:
    """V_j by set of agents (a bit mask): the best reward of the set at edge j and its
    placements; `dropped_bound`: the largest bound of a state dropped for room (−inf:
    none, so every set not listed cannot beat the floor)."""

    edge: int
    best: dict[int, tuple[float, Trace]]
    dropped_bound: float
    states_kept: int


def placements(trace: Trace) -> list[tuple[Upload, bool]]:
    """The (upload, download) placements of a trace, in FIFO order."""
    out = []
    while trace is not None:
        up, download, trace = trace
        out.append((up, download))
    return out[::-1]


def edge_values(
    model: SlotModel, edge: int, outside: dict[int, float], floor: float, max_states: int
) -> EdgeValues:
    """V_j of every set of agents that could still beat `floor` at edge `edge`.

    `outside[i]`: the most agent i could earn anywhere but this edge (an upper bound)."""
    ups = model.uploads_to(edge)
    avail = _availability(model, ups, outside)
    start_bound = sum(avail[0].values())
    groups: dict[tuple[int, Held], list[_State]] = {
        (0, model.initial_held[edge]): [_State(0.0, 0.0, start_bound, None)]
    }
    dropped = -math.inf
    kept = 1
    for e, up in enumerate(ups):
        before, after = avail[e][up.agent], avail[e + 1][up.agent]
        groups = _advance(model, groups, up, before, after, floor)
        kept = sum(len(s) for s in groups.values())
        if kept > max_states:
            groups, cut = _cap(groups, max_states)
            dropped = max(dropped, cut)
            kept = max_states
    best: dict[int, tuple[float, Trace]] = {}
    for (mask, _), states in groups.items():
        for s in states:
            if mask not in best or s.reward > best[mask][0]:
                best[mask] = (s.reward, s.trace)
    return EdgeValues(edge, best, dropped, kept)


def _availability(
    model: SlotModel, ups: list[Upload], outside: dict[int, float]
) -> list[dict[int, float]]:
    """avail[e][i]: the most agent i can earn once the first e uploads have passed —
    at another edge, on the board, or on one of its uploads still to come here."""
    n = len(ups)
    bound = [model.upper_bound(up) for up in ups]
    remaining: dict[int, float] = dict(outside)
    avail: list[dict[int, float]] = [{}] * (n + 1)
    avail[n] = dict(remaining)
    for e in range(n - 1, -1, -1):
        i = ups[e].agent
        remaining[i] = max(remaining[i], bound[e])
        avail[e] = dict(remaining)
    return avail


def _advance(
    model: SlotModel,
    groups: dict[tuple[int, Held], list[_State]],
    up: Upload,
    before: float,
    after: float,
    floor: float,
) -> dict[tuple[int, Held], list[_State]]:
    """The states after upload `up` is skipped or placed by every state that has not
    placed its agent yet (`before`/`after`: the agent's availability around it)."""
    bit = 1 << up.agent
    out: dict[tuple[int, Held], list[_State]] = {}
    for (mask, held), states in groups.items():
        if mask & bit:
            _merge(out, (mask, held), states)
            continue
        skipped = [_State(s.free_s, s.reward, s.bound - before + after, s.trace) for s in states]
        _merge(out, (mask, held), [s for s in skipped if s.bound >= floor])
        downloads = (True,) if up.model in held else model.downloads
        for download in downloads:
            placed: dict[Held, list[_State]] = {}
            for s in states:
                reward, free, now = model.serve(up, s.free_s, held, download)
                bound = s.bound - before + reward
                if bound >= floor:
                    state = _State(free, s.reward + reward, bound, (up, download, s.trace))
                    placed.setdefault(now, []).append(state)
            for now, new in placed.items():
                _merge(out, (mask | bit, now), new)
    return out


def _merge(
    out: dict[tuple[int, Held], list[_State]], key: tuple[int, Held], new: list[_State]
) -> None:
    """Add `new` to the group `key`, keeping only the undominated (free no later, reward
    no less)."""
    if not new:
        return
    group = out.get(key)
    states = new if group is None else group + new
    if len(states) > 1:
        states.sort(key=lambda s: (s.free_s, -s.reward))
        front: list[_State] = []
        for s in states:
            if not front or s.reward > front[-1].reward:
                front.append(s)
        states = front
    out[key] = states


def _cap(
    groups: dict[tuple[int, Held], list[_State]], max_states: int
) -> tuple[dict[tuple[int, Held], list[_State]], float]:
    """The `max_states` states of the largest bounds, and the largest bound dropped."""
    flat = [(s.bound, key, s) for key, states in groups.items() for s in states]
    flat.sort(key=lambda t: -t[0])
    out: dict[tuple[int, Held], list[_State]] = {}
    for _, key, s in flat[:max_states]:
        out.setdefault(key, []).append(s)
    return out, flat[max_states][0]
