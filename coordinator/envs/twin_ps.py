"""The host's cores as a processor-sharing server within a slot (docs/twin.md,
"Processor sharing within a slot"): `twin.shared_host: processor_sharing`.

On the embedded bench every board and edge is a process of one host. At any instant
of a slot the computations running at once share its cores: with a CPU demand D (the
background load, one core per running computation, and `fetch_cores` for each edge in
a switch) on c cores, each progresses at 1 / max(1, D / c) of its speed alone. A node
slower than the host computes on a whole core, then sleeps (stretch − 1) times its
compute time asking for none (testbed/emulation.py `stretch`). A computation's
duration comes from what actually overlaps it, not from a slot-level count: a board's
short local share that ends before the edges start does not see them, and an edge
fetching a model hardly loads the host.

The slot's computations are *lanes*: one per board (its local share, from the slot's
start) and one per edge server (its uploads in the FIFO order twin_edges.py served
them, each waiting for its upload and for the job before it, then its switch, then its
compute). Event-driven, vectorised over the environments: each round advances every
environment to its own next event (a start, the end of a switch, a computation or a
sleep), so the loop runs over the events of a slot (≤ 4 per job), never over
environments; the lanes' state is flat over (environment, lane) and each round touches
the lanes whose event is due by index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]

_WAIT, _SWITCH, _RUN, _SLEEP, _DONE = 0, 1, 2, 3, 4
"""A lane's phase: waiting for its job's upload, in the job's switch (or failure),
computing, sleeping out its emulated clock, no job left."""


@dataclass(frozen=True)
class SlotJobs:
    """(E, L, J) each lane's jobs in service order; lanes past `count` are unused."""

    arrive_s: Array
    """When the job may start at the earliest (its upload's arrival; 0 for a local share)."""
    switch_s: Array
    """Wall seconds before it computes (switch, wait for an admission, or failure)."""
    work_s: Array
    """Seconds of computing alone on the host at full speed (0: it computes nothing)."""
    count: Array
    """(E, L) jobs per lane."""
    demand: Array
    """(L,) cores a lane asks for while it computes (one: a session has one thread)."""
    sleep: Array
    """(L,) a node slower than the host sleeps this many times its compute time after
    it (its emulation stretch − 1, testbed/emulation.py), asking for no core."""


def node_lanes(stretch_demand: Array) -> tuple[Array, Array]:
    """(cores, sleep) of lanes whose nodes ask for `stretch_demand` = 1 / their
    emulation stretch on average: a stretched node computes on a whole core, then
    sleeps (stretch − 1) × that time (testbed/emulation.py `stretch`)."""
    return np.ones_like(stretch_demand), 1.0 / stretch_demand - 1.0


@dataclass(frozen=True)
class SlotTimes:
    """(E, L, J) when each job took its lane (after its upload and the job before it)
    and when it ended (its sleep included), in seconds from the slot's start."""

    start_s: Array
    finish_s: Array


@dataclass(frozen=True)
class CoreShare:
    """The host the lanes share: its cores, the background load and a switch's load."""

    cores: float
    background: float
    fetch_cores: float


def share_cores(jobs: SlotJobs, host: CoreShare) -> SlotTimes:
    """Every lane's jobs run to their end with the host's cores shared among the
    computations running at each instant (see the module doc)."""
    num_e, num_l, num_j = jobs.arrive_s.shape
    run = _Lanes(jobs)
    cores = np.tile(jobs.demand, num_e)
    t = np.zeros(num_e)
    for _ in range(4 * num_l * num_j + 2):  # ≤ 4 events per job, and the first round
        running = run.phase == _RUN
        demand = (running * cores).reshape(num_e, num_l).sum(axis=1) + host.background
        switching = (run.phase == _SWITCH).reshape(num_e, num_l).sum(axis=1)
        rate = np.repeat(
            1.0 / np.maximum(1.0, (demand + switching * host.fetch_cores) / host.cores), num_l
        )
        t_lane = np.repeat(t, num_l)
        event = np.where(running, t_lane + run.left / rate, run.until)
        t_next = event.reshape(num_e, num_l).min(axis=1)
        live = np.isfinite(t_next)
        if not live.any():
            return SlotTimes(
                run.start.reshape(jobs.arrive_s.shape), run.finish.reshape(jobs.arrive_s.shape)
            )
        t = np.where(live, t_next, t)
        step = np.repeat(t, num_l) - t_lane
        run.left = np.where(running, np.maximum(0.0, run.left - step * rate), run.left)
        due = np.flatnonzero(event <= np.repeat(t, num_l))
        run.fire(due, t[due // num_l])
    raise AssertionError("processor sharing: more events than the slot's jobs allow")


class _Lanes:
    """The lanes' state, flat over (environment, lane): each one's current job, phase,
    and the absolute time its phase ends (waiting, switch, sleep) or its work left
    (computing); the jobs' start and finish times, flat over (E, L, J)."""

    def __init__(self, jobs: SlotJobs) -> None:
        num_e, num_l, num_j = jobs.arrive_s.shape
        self.arrive = jobs.arrive_s.reshape(-1)
        self.switch = jobs.switch_s.reshape(-1)
        self.work = jobs.work_s.reshape(-1)
        self.count = jobs.count.reshape(-1)
        self.sleep = np.tile(jobs.sleep, num_e)
        self.base = np.arange(num_e * num_l) * num_j
        self.last_job = num_j - 1
        self.job = np.zeros(num_e * num_l, dtype=np.int64)
        self.phase = np.where(self.count > 0, _WAIT, _DONE)
        self.until = np.where(self.count > 0, self.arrive[self.base], np.inf)
        self.left = np.zeros(num_e * num_l)
        self.ran_from = np.zeros(num_e * num_l)
        self.start = np.zeros(num_e * num_l * num_j)
        self.finish = np.zeros(num_e * num_l * num_j)

    def fire(self, due: Array, t: Array) -> None:
        """The lanes `due` (flat indices) move on at their times `t`, through phases
        that take no time (a job already waiting, a switch of 0 s, nothing to compute)."""
        phase = self.phase[due]
        ran, rt = due[phase == _RUN], t[phase == _RUN]
        rests = self.sleep[ran] > 0
        self.phase[ran[rests]] = _SLEEP
        self.until[ran[rests]] = (
            rt[rests] + (rt[rests] - self.ran_from[ran[rests]]) * self.sleep[ran[rests]]
        )
        slept = phase == _SLEEP
        self._end_jobs(
            np.concatenate([ran[~rests], due[slept]]), np.concatenate([rt[~rests], t[slept]])
        )
        while len(due):
            at = self.base[due] + np.minimum(self.job[due], self.last_job)
            begin = (self.phase[due] == _WAIT) & (self.until[due] <= t)
            self.start[at[begin]] = t[begin]
            self.phase[due[begin]] = _SWITCH
            self.until[due[begin]] = t[begin] + self.switch[at[begin]]
            switched = (self.phase[due] == _SWITCH) & (self.until[due] <= t)
            computes = switched & (self.work[at] > 0)
            lanes = due[computes]
            self.phase[lanes] = _RUN
            self.left[lanes] = self.work[at[computes]]
            self.until[lanes] = np.inf
            self.ran_from[lanes] = t[computes]
            idle = switched & ~computes
            due, t = due[idle], t[idle]
            self._end_jobs(due, t)
            waiting = (self.phase[due] == _WAIT) & (self.until[due] <= t)
            due, t = due[waiting], t[waiting]

    def _end_jobs(self, lanes: Array, t: Array) -> None:
        """The current jobs of `lanes` end at `t`; each lane waits for its next one."""
        if not len(lanes):
            return
        self.finish[self.base[lanes] + self.job[lanes]] = t
        self.job[lanes] += 1
        more = self.job[lanes] < self.count[lanes]
        self.phase[lanes] = np.where(more, _WAIT, _DONE)
        nxt = self.base[lanes] + np.minimum(self.job[lanes], self.last_job)
        self.until[lanes] = np.where(more, self.arrive[nxt], np.inf)
        self.left[lanes] = 0.0


@dataclass(frozen=True)
class SlotLanes:
    """A slot's lanes: the jobs, and where each (E, N) upload is among them."""

    jobs: SlotJobs
    lane: Array
    """(E, N) the upload's lane (its edge server's; 0 where there is no upload)."""
    position: Array
    """(E, N) its place in the lane's FIFO."""

    def of_uploads(self, a: Array) -> Array:
        """(E, N) each upload's value of an (E, L, J) array (a lane-0 job where none)."""
        num_e, num_l, num_j = a.shape
        rows = (np.arange(num_e) * num_l)[:, None]
        return a.reshape(-1)[((rows + self.lane) * num_j + self.position)]


@dataclass(frozen=True)
class UploadJobs:
    """(E, N) the slot's uploads as the edges served them (twin_edges.py): target edge
    (−1: none), server of that edge, arrival, time before computing, work alone."""

    target: Array
    server: Array
    arrive_s: Array
    switch_s: Array
    work_s: Array


def slot_lanes(
    local_work_s: Array, uploads: UploadJobs, agent_demand: Array, edge_demand: Array,
    servers: int,
) -> SlotLanes:  # fmt: skip
    """The lanes of a slot: board n's local share (`local_work_s` (E, N) s alone, 0:
    none) is lane n; server s of edge j is lane N + j·servers + s, its uploads in order
    of arrival (ties: lowest agent first, as twin_edges.py serves them)."""
    num_e, num_n = local_work_s.shape
    num_l = num_n + edge_demand.shape[0] * servers
    off = uploads.target >= 0
    lane = np.where(off, num_n + uploads.target * servers + uploads.server, 0)
    order = np.argsort(np.where(off, uploads.arrive_s, np.inf), axis=1, kind="stable")
    lane_sorted = np.take_along_axis(np.where(off, lane, -1), order, axis=1)
    hot = lane_sorted[:, :, None] == np.arange(num_n, num_l)[None, None, :]  # (E, N, L − N)
    rank = ((np.cumsum(hot, axis=1) - 1) * hot).sum(axis=2)
    position = np.zeros_like(lane)
    np.put_along_axis(position, order, rank, axis=1)
    position = np.where(off, position, 0)
    num_j = max(1, num_n)
    shape = (num_e, num_l, num_j)
    arrive, switch, work = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    work[:, :num_n, 0] = local_work_s
    e_idx = np.broadcast_to(np.arange(num_e)[:, None], off.shape)[off]
    at = (e_idx, lane[off], position[off])
    arrive[at], switch[at], work[at] = (
        uploads.arrive_s[off],
        uploads.switch_s[off],
        uploads.work_s[off],
    )
    count = np.zeros((num_e, num_l), dtype=np.int64)
    count[:, :num_n] = local_work_s > 0
    count[:, num_n:] = hot.sum(axis=1)
    cores, sleep = node_lanes(np.concatenate([agent_demand, np.repeat(edge_demand, servers)]))
    jobs = SlotJobs(arrive, switch, work / (1.0 + sleep)[None, :, None], count, cores, sleep)
    return SlotLanes(jobs, lane, position)
