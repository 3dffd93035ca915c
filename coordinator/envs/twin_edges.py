"""The twin's edges over one slot: every edge's FIFO over the slot's uploads on its
`parallel_slots` servers, and its byte-capacity LRU model cache (edge_node/node.py,
edge_node/model_cache.py), for E environments at once (docs/twin.md).

Uploads are served in order of completion: round r serves the r-th upload to complete
in every environment at once, and an environment with fewer uploads writes its round
into a spare cell (index `trash`) instead of being left out. An upload whose model is
missing fetches it (d = 1) — evicting the least recently used models not in use — or
fails at once (d = 0: `model_missing`); a model larger than the cache is refused
(`model_too_large`), and one that finds no room is `cache_full`. Loops run only over
the rounds (≤ N agents) and over the ≤ U evictions of an admission.

The caches (`cached`, `last_used`, the LRU tick) are the twin's state
(coordinator/envs/twin.py); the functions here update them in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from coordinator.envs.twin_params import TwinParams
from testbed.types import FailureReason

Array = np.ndarray[Any, Any]

_CODE = {r: np.int16(i) for i, r in enumerate(FailureReason)}
"""Failure codes: indices into `tuple(FailureReason)` (the twin's `REASONS`)."""
_INF = np.inf


def preload_caches(p: TwinParams) -> tuple[Array, Array]:
    """(M, U) each edge's cache after its `preload` list, and its LRU order: the models
    admitted in order as the edge does at start (a model larger than the cache is
    skipped, like a failed preload)."""
    cached = np.zeros((p.num_edges, p.num_models), dtype=bool)
    last = np.zeros((p.num_edges, p.num_models), dtype=np.int64)
    size, cap = p.model_size_bytes, p.edge_capacity_bytes
    for j, models in enumerate(p.preload):
        for seq, u in enumerate(models, start=1):
            if not cached[j, u]:
                if size[u] > cap[j]:
                    continue
                while size[cached[j]].sum() + size[u] > cap[j]:
                    victims = np.flatnonzero(cached[j])
                    cached[j, victims[np.argmin(last[j, victims])]] = False
                cached[j, u] = True
            last[j, u] = seq
    return cached, last


def server_free_template(p: TwinParams) -> Array:
    """(M, S) when each server of an edge is first free in a slot: 0, or never for the
    servers beyond the edge's `parallel_slots`."""
    s = p.max_servers
    return np.where(np.arange(s)[None, :] < p.edge_servers[:, None], 0.0, _INF)


@dataclass(frozen=True)
class SlotUploads:
    """(E, N) the slot's uploads: target edge (−1: none), model index (into
    `TwinParams.models`), arrival at the edge and compute there (s from the slot's
    start), and whether a missing model may be fetched (d)."""

    target: Array
    model: Array
    arrive_s: Array
    compute_s: Array
    download: Array


@dataclass(frozen=True)
class EdgeService:
    """(E, N) what the edges made of each upload (0 where there was none): when its edge
    part ended (s from the slot's start), its wait for a server, its switch time (the
    admission, or the wait for another server's admission) and energy, whether the
    model was a hit, and its failure code (0: none)."""

    end_s: Array
    queue_s: Array
    switch_s: Array
    switch_j: Array
    hit: Array
    reason: Array
    server: Array
    """Which of its edge's servers served it (0 on an edge with one)."""


@dataclass(frozen=True)
class _Rounds:
    """(R, E) the uploads by round, and what does not depend on the caches' state."""

    flat: Array
    """Flat index into the (E, N) arrays of round r's upload in environment e."""
    valid: Array
    edge: Array
    model: Array
    arrive_s: Array
    compute_s: Array
    download: Array
    cell: Array
    """Flat index of (env, edge, model) into the caches (the trash cell if not valid)."""
    server_base: Array
    """Flat index of the edge's first server (the trash servers if not valid)."""
    too_big: Array
    admissible: Array
    switch_s: Array
    refused_s: Array
    """Until the manifest refuses a model larger than the cache (0 otherwise)."""


@dataclass
class _Served:
    """(R, E) per round: start on a server, begin after any wait for an admission,
    finish; whether the model was held, admitted, or found no room."""

    start: Array
    begin: Array
    finish: Array
    was: Array
    admit: Array
    full: Array
    server: Array

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> _Served:
        def flags() -> Array:
            return np.zeros(shape, dtype=bool)

        return cls(np.zeros(shape), np.zeros(shape), np.zeros(shape), flags(), flags(), flags(),
                   np.zeros(shape, dtype=np.int64))  # fmt: skip


def serve_uploads(
    p: TwinParams, cached: Array, last_used: Array, tick: int, uploads: SlotUploads,
    server_free: Array,
) -> tuple[EdgeService, int]:  # fmt: skip
    """Every edge's FIFO over `uploads`, in order of upload completion; updates `cached`
    and `last_used` (E, M, U) in place. Returns the service and the LRU tick after it."""
    shape = uploads.target.shape
    out = EdgeService(
        end_s=np.zeros(shape), queue_s=np.zeros(shape), switch_s=np.zeros(shape),
        switch_j=np.zeros(shape), hit=np.zeros(shape, dtype=bool),
        reason=np.zeros(shape, dtype=np.int16), server=np.zeros(shape, dtype=np.int64),
    )  # fmt: skip
    rounds = _uploads_by_round(p, uploads)
    if rounds is None:
        return out, tick
    num_e = shape[0]
    free = np.concatenate(  # every server's next free time; then the trash servers
        [np.broadcast_to(server_free, (num_e, *server_free.shape)).reshape(-1),
         np.zeros(p.max_servers)]
    )  # fmt: skip
    flat_cached = np.append(cached.reshape(-1), False)
    flat_last = np.append(last_used.reshape(-1), 0)
    served, tick = _serve_rounds(p, rounds, free, flat_cached, flat_last, tick)
    cached.reshape(-1)[:] = flat_cached[:-1]
    last_used.reshape(-1)[:] = flat_last[:-1]
    _write_service(p, rounds, served, out)
    return out, tick


def _uploads_by_round(p: TwinParams, uploads: SlotUploads) -> _Rounds | None:
    """The uploads by round of completion (None: no upload in any environment)."""
    num_e, num_n = uploads.target.shape
    num_m, num_u, num_s = p.num_edges, p.num_models, p.max_servers
    off = uploads.target >= 0
    n_off = off.sum(axis=1)
    num_rounds = int(n_off.max()) if num_e else 0
    if num_rounds == 0:
        return None
    arrive = np.where(off, uploads.arrive_s, _INF)
    order = np.argsort(arrive, axis=1, kind="stable")[:, :num_rounds]
    # (R, E): round r of every environment, as flat indices into the (E, N) arrays
    flat = (order + (np.arange(num_e) * num_n)[:, None]).T.copy()
    valid = np.arange(num_rounds)[:, None] < n_off[None, :]

    def by_rank(a: Array) -> Array:
        return a.reshape(-1)[flat]

    j_r = np.where(valid, by_rank(uploads.target), 0)
    u_r = np.where(valid, by_rank(uploads.model), 0)
    want_r = by_rank(uploads.download)
    edge_r = (np.arange(num_e) * num_m)[None, :] + j_r  # (R, E) index of (env, edge)
    trash_cell, trash_server = num_e * num_m * num_u, num_e * num_m * num_s
    big_r = p.model_size_bytes[u_r] > p.edge_capacity_bytes[j_r]
    return _Rounds(
        flat=flat, valid=valid, edge=j_r, model=u_r,
        arrive_s=np.where(valid, by_rank(arrive), 0.0), compute_s=by_rank(uploads.compute_s),
        download=want_r, cell=np.where(valid, edge_r * num_u + u_r, trash_cell),
        server_base=np.where(valid, edge_r * num_s, trash_server), too_big=big_r,
        admissible=want_r & ~big_r & valid, switch_s=p.switch_s[j_r, u_r],
        refused_s=np.where(want_r & big_r, p.too_large_s[u_r], 0.0),
    )  # fmt: skip


def _serve_rounds(
    p: TwinParams, rounds: _Rounds, free: Array, cached: Array, last: Array, tick: int
) -> tuple[_Served, int]:
    """The rounds in order on the flat state: servers' next free times `free`, the
    caches `cached` and `last` (each with a trash cell at the end)."""
    num_r, num_e = rounds.flat.shape
    num_s = p.max_servers
    cells = len(cached) - 1
    trash_cell = cells
    busy = np.zeros(cells + 1)  # a model is in use until then
    ready = np.zeros(cells + 1)  # being admitted until then
    rows = np.arange(num_e)
    out = _Served.empty((num_r, num_e))
    # one server per edge (the default): a task starts when the one before it ended,
    # so no model is in use by another task and none is still being admitted
    shared = num_s > 1
    for r in range(num_r):
        cell = rounds.cell[r]
        if not shared:
            server = rounds.server_base[r]
            start = np.maximum(rounds.arrive_s[r], free[server])
        else:
            slots = free[rounds.server_base[r, :, None] + np.arange(num_s)]
            pick = np.argmin(slots, axis=1)
            out.server[r] = pick
            server = rounds.server_base[r] + pick
            start = np.maximum(rounds.arrive_s[r], slots[rows, pick])
        was = cached[cell]
        admit = ~was & rounds.admissible[r]
        tick += 1
        fail_s = rounds.refused_s[r]
        if admit.any():
            at = np.flatnonzero(admit)
            fits = make_room(
                p, cached, last, at, rounds.edge[r, at], rounds.model[r, at], start[at],
                busy if shared else None,
            )  # fmt: skip
            if not fits.all():
                out.full[r, at] = ~fits
                admit[at] = fits
                fail_s = np.where(out.full[r], rounds.switch_s[r], fail_s)
        # a model another server is still admitting: wait for it (single flight)
        begin = np.where(was, np.maximum(start, ready[cell]), start) if shared else start
        switch = np.where(admit, rounds.switch_s[r], 0.0)
        failed = ~was & ~admit  # missing (d = 0), too large, or no room
        finish = begin + np.where(failed, fail_s, switch + rounds.compute_s[r])
        free[server] = finish
        ok_cell = np.where(failed, trash_cell, cell)
        last[ok_cell] = tick
        admit_cell = np.where(admit, cell, trash_cell)
        cached[admit_cell] = True
        if shared:
            busy[ok_cell] = np.maximum(busy[ok_cell], finish)
            ready[admit_cell] = begin + switch
        out.start[r], out.begin[r], out.finish[r] = start, begin, finish
        out.was[r], out.admit[r] = was, admit
    return out, tick


def _write_service(p: TwinParams, rounds: _Rounds, s: _Served, out: EdgeService) -> None:
    """The rounds' results written back to the uploads' (E, N) cells of `out`."""
    code_r = np.where(
        s.was, 0,
        np.where(~rounds.download, _CODE[FailureReason.MODEL_MISSING],
                 np.where(rounds.too_big, _CODE[FailureReason.MODEL_TOO_LARGE],
                          np.where(s.full, _CODE[FailureReason.CACHE_FULL], 0))),
    ).astype(np.int16)  # fmt: skip
    at_rank = rounds.flat[rounds.valid]
    columns = (
        (out.end_s, s.finish),
        (out.queue_s, s.start - rounds.arrive_s),
        (out.switch_s, np.where(s.admit, rounds.switch_s, 0.0) + (s.begin - s.start)),
        (out.switch_j, np.where(s.admit, p.switch_j[rounds.edge, rounds.model], 0.0)),
        (out.hit, s.was & (s.begin <= s.start)),  # waited for an admission: a miss
        (out.reason, code_r),
        *(((out.server, s.server),) if p.max_servers > 1 else ()),
    )
    for column, by_round in columns:
        column.reshape(-1)[at_rank] = by_round[rounds.valid]


def make_room(
    p: TwinParams,
    cached: Array,
    last: Array,
    envs: Array,
    j: Array,
    u: Array,
    at_s: Array,
    busy: Array | None,
) -> Array:
    """Evict least-recently-used models not in use at `at_s` (None: none is) until
    model u fits edge j (edge_node/model_cache.py `_make_room`) in the flat cache
    arrays; returns whether it fits."""
    num_u = p.num_models
    size = p.model_size_bytes
    base = ((envs * p.num_edges + j) * num_u)[:, None] + np.arange(num_u)  # (n, U)
    held = cached[base]
    order = last[base]
    need = held @ size + size[u] - p.edge_capacity_bytes[j]
    if not (need > 0).any():
        return np.ones(len(envs), dtype=bool)
    evictable = held & (busy[base] <= at_s[:, None]) if busy is not None else held.copy()
    rows = np.arange(len(envs))
    for _ in range(num_u):
        todo = need > 0
        if not todo.any():
            break
        victim = np.argmin(np.where(evictable, order, np.iinfo(np.int64).max), axis=1)
        evict = todo & evictable[rows, victim]
        if not evict.any():
            break
        held[rows[evict], victim[evict]] = False
        evictable[rows[evict], victim[evict]] = False
        need[evict] -= size[victim[evict]]
    cached[base] = held
    return need <= 0
