"""The cost model of MADDPG-MATO (docs/papers.md §A, equations 3–14 and the reward 18).

One implementation serves two callers:

- the digital twin (`coordinator/envs/twin.py`) evaluates it on numpy arrays of any
  shape (environments × agents × …) with parameters calibrated on the bench;
- the live env computes the reward (18) from *measured* latency and energy with
  `reward`, and uses the individual terms where a part could not be measured (the
  radio's transmit energy p·T_tx has no sensor: it is `modeled`).

Every function broadcasts over numpy arrays and also accepts plain floats; a result
from scalar inputs is a numpy scalar (`np.float64` / `np.bool_`), otherwise an array.

Units (also in every name): sizes in Mbit (10^6 bit), computational density in
cycles/bit, clocks in GHz (10^9 cycles/s), rates in Mbit/s, powers in W, times in s,
energies in J. κ (effective switched capacitance) is per cycle and per Hz², so the
dynamic energy of `cycles` cycles at clock f is κ·f²·cycles with f in Hz — the GHz
inputs are converted here, never by the caller.

See docs/cost-model.md for the equations with their functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from testbed.config import FailedLatency, RewardConfig

ArrayLike: TypeAlias = npt.ArrayLike
"""A float, a sequence of floats or a numpy array (broadcast together)."""
FloatArray: TypeAlias = Any
"""`np.float64` for scalar inputs, else `npt.NDArray[np.float64]`."""
BoolArray: TypeAlias = Any
"""`np.bool_` for scalar inputs, else `npt.NDArray[np.bool_]`."""

BITS_PER_MBIT = 1e6
CYCLES_PER_GHZ_S = 1e9
MBIT_PER_MB = 8.0
"""1 MB (10^6 bytes, the `_mb` of testbed.yaml) is 8 Mbit."""


def mb_to_mbit(size_mb: ArrayLike) -> FloatArray:
    """Size in MB (10^6 bytes) → Mbit (10^6 bit)."""
    return _out(np.asarray(size_mb, dtype=np.float64) * MBIT_PER_MB)


def bytes_to_mbit(nbytes: ArrayLike) -> FloatArray:
    """Size in bytes → Mbit (10^6 bit)."""
    return _out(np.asarray(nbytes, dtype=np.float64) * 8.0 / BITS_PER_MBIT)


def cycles(size_mbit: ArrayLike, density_cycles_per_bit: ArrayLike) -> FloatArray:
    """CPU cycles of a task's work: D[Mbit]·10^6·C[cycles/bit]."""
    return _out(_f(size_mbit) * BITS_PER_MBIT * _f(density_cycles_per_bit))


# ------------------------------------------------------------------------ local (3, 4)


def local_latency_s(
    ratio: ArrayLike, size_mbit: ArrayLike, density_cycles_per_bit: ArrayLike, local_ghz: ArrayLike
) -> FloatArray:
    """(3) T_loc = (1−x)·D·C / f_i, in s (f_i in GHz)."""
    x = _ratio(ratio)
    return _out((1.0 - x) * cycles(size_mbit, density_cycles_per_bit) / _hz(local_ghz))


def local_energy_j(
    ratio: ArrayLike,
    size_mbit: ArrayLike,
    density_cycles_per_bit: ArrayLike,
    local_ghz: ArrayLike,
    local_kappa: ArrayLike,
) -> FloatArray:
    """(4) E_loc = κ_i·f_i²·(1−x)·D·C, in J (f_i in GHz, κ_i per Hz² per cycle)."""
    x = _ratio(ratio)
    work = (1.0 - x) * cycles(size_mbit, density_cycles_per_bit)
    return _out(_f(local_kappa) * _hz(local_ghz) ** 2 * work)


# ----------------------------------------------------------------------- upload (5, 6)


def upload_latency_s(ratio: ArrayLike, size_mbit: ArrayLike, rate_mbps: ArrayLike) -> FloatArray:
    """(5) T_tx = x·D / r_ij, in s. 0 when x = 0 (whatever the rate); inf when x > 0 and
    the rate is 0 (the share can never arrive)."""
    x = _ratio(ratio)
    return _out(_div(x * _f(size_mbit), _f(rate_mbps), zero_when=x == 0))


def upload_energy_j(transmit_power_w: ArrayLike, upload_latency: ArrayLike) -> FloatArray:
    """(6) E_tx = p_i·T_tx, in J (the radio energy; `modeled`, no sensor sees it)."""
    return _out(_f(transmit_power_w) * _f(upload_latency))


# ------------------------------------------------------------------ model switch (7, 8)


def switch_latency_s(
    cached: ArrayLike, model_size_mbit: ArrayLike, cloud_rate_mbps: ArrayLike, load_s: ArrayLike
) -> FloatArray:
    """(7) T_sw = (1−c_jk)·(S_m / r_cj + T_load,m), in s; 0 when the model is cached.

    `load_s` is T_load,m: parameter loading, runtime set-up and warm-up of model m on
    the edge, a separately *measured* term (the paper names it but leaves it out of
    its formula; see docs/cost-model.md).
    """
    missing = ~_bool(cached)
    fetch = _div(_f(model_size_mbit), _f(cloud_rate_mbps), zero_when=~missing)
    return _out(np.where(missing, fetch + _f(load_s), 0.0))


def switch_energy_j(
    cached: ArrayLike,
    model_size_mbit: ArrayLike,
    cloud_rate_mbps: ArrayLike,
    load_s: ArrayLike,
    cloud_power_w: ArrayLike,
    edge_load_power_w: ArrayLike,
) -> FloatArray:
    """(8) E_sw = (1−c_jk)·(p_c·S_m / r_cj + P_j·T_load,m), in J; 0 when cached.

    `cloud_power_w` is p_c (the cloud's transmit power while sending the model),
    `edge_load_power_w` is P_j (the edge's power while loading and warming up).
    """
    missing = ~_bool(cached)
    fetch_s = _div(_f(model_size_mbit), _f(cloud_rate_mbps), zero_when=~missing)
    energy = _f(cloud_power_w) * fetch_s + _f(edge_load_power_w) * _f(load_s)
    return _out(np.where(missing, energy, 0.0))


# ---------------------------------------------------------------- edge compute (9, 10)


def edge_compute_latency_s(
    ratio: ArrayLike,
    size_mbit: ArrayLike,
    density_cycles_per_bit: ArrayLike,
    edge_ghz: ArrayLike,
    queue_delay_s: ArrayLike = 0.0,
) -> FloatArray:
    """(9) T_ec = x·D·C / f_j (+ the FIFO queueing delay at j), in s; 0 when x = 0."""
    x = _ratio(ratio)
    compute = x * cycles(size_mbit, density_cycles_per_bit) / _hz(edge_ghz)
    return _out(np.where(x > 0, compute + _f(queue_delay_s), 0.0))


def edge_compute_energy_j(
    ratio: ArrayLike,
    size_mbit: ArrayLike,
    density_cycles_per_bit: ArrayLike,
    edge_ghz: ArrayLike,
    edge_kappa: ArrayLike,
) -> FloatArray:
    """(10) E_ec = κ_j·f_j²·x·D·C, in J (f_j in GHz)."""
    x = _ratio(ratio)
    work = x * cycles(size_mbit, density_cycles_per_bit)
    return _out(_f(edge_kappa) * _hz(edge_ghz) ** 2 * work)


# ---------------------------------------------------------------- a task (11–14)
#
# `task_cost` takes its inputs in five groups — the task, the decision, the device,
# the chosen edge and the model switch there — so a call names what each number is
# about. Every field takes a float or a numpy array; arrays broadcast together across
# groups (the twin's environments × agents, a per-agent clock, a scalar power …).


@dataclass(frozen=True, slots=True)
class TaskWork:
    """The task's work: D (Mbit) and C (cycles/bit)."""

    size_mbit: ArrayLike
    density_cycles_per_bit: ArrayLike


@dataclass(frozen=True, slots=True)
class OffloadDecision:
    """The action for a task: the offload ratio x ∈ [0, 1] and whether a target ES j was
    chosen (bool). Without a target the task runs wholly on the device (x taken as 0)."""

    ratio: ArrayLike
    has_target: ArrayLike = True


@dataclass(frozen=True, slots=True)
class Device:
    """The end device i: f_i (GHz), κ_i (per Hz² per cycle) and p_i (W, the radio's
    transmit power; needed only where a task has an edge path)."""

    ghz: ArrayLike
    kappa: ArrayLike
    transmit_power_w: ArrayLike | None = None


@dataclass(frozen=True, slots=True)
class EdgeTarget:
    """The chosen target ES j, gathered by target index: r_ij (Mbit/s) from the device,
    f_j (GHz), κ_j, and the FIFO wait at j before compute (s)."""

    upload_rate_mbps: ArrayLike
    ghz: ArrayLike
    kappa: ArrayLike
    queue_delay_s: ArrayLike = 0.0


@dataclass(frozen=True, slots=True)
class ModelSwitch:
    """The task's model at the target j: c_jk (cached, bool), S_m (Mbit), r_cj (Mbit/s),
    T_load,m (s), p_c (W, the cloud sending) and P_j (W, the edge loading)."""

    cached: ArrayLike
    model_size_mbit: ArrayLike
    cloud_rate_mbps: ArrayLike
    load_s: ArrayLike
    cloud_power_w: ArrayLike
    edge_load_power_w: ArrayLike


@dataclass(frozen=True, slots=True)
class TaskCost:
    """Every term of one task's cost (or arrays of them); times in s, energies in J.

    Edge terms are 0 where the task has no edge path (x = 0 or no target).
    """

    t_local_s: FloatArray
    """(3) T_loc."""
    t_tx_s: FloatArray
    """(5) T_tx."""
    t_switch_s: FloatArray
    """(7) T_sw."""
    t_edge_s: FloatArray
    """(9) T_ec, queueing delay included."""
    t_edge_path_s: FloatArray
    """(11) T_es = T_tx + T_sw + T_ec."""
    latency_s: FloatArray
    """(13) T = max(T_loc, T_es): the two shares run in parallel."""
    e_local_j: FloatArray
    """(4) E_loc."""
    e_tx_j: FloatArray
    """(6) E_tx."""
    e_switch_j: FloatArray
    """(8) E_sw."""
    e_edge_j: FloatArray
    """(10) E_ec."""
    e_edge_path_j: FloatArray
    """(12) E_es = E_tx + E_sw + E_ec."""
    energy_j: FloatArray
    """(14) E = E_loc + E_es."""


def task_cost(
    task: TaskWork,
    decision: OffloadDecision,
    device: Device,
    edge: EdgeTarget | None = None,
    switch: ModelSwitch | None = None,
) -> TaskCost:
    """Equations (3)–(14) for a task split by the decision (target j, ratio x).

    A task has an edge path where `decision.has_target` and x > 0; elsewhere every edge
    term is 0 and the latency is T_loc. `edge`, `switch` and `device.transmit_power_w`
    describe the path to the chosen target and are required as soon as any task has an
    edge path — a forgotten one is a ValueError, never a silent zero; where no task has
    one they may be left out.
    """
    edge_path = _bool(decision.has_target) & (_ratio(decision.ratio) > 0)
    # x_edge is x on the edge path and 0 elsewhere: without a target the whole task
    # runs locally, and (5), (9), (10) vanish.
    x_edge = np.where(edge_path, _f(decision.ratio), 0.0)
    size, density = task.size_mbit, task.density_cycles_per_bit
    t_local = local_latency_s(x_edge, size, density, device.ghz)
    e_local = local_energy_j(x_edge, size, density, device.ghz, device.kappa)
    if not np.any(edge_path):
        zero = _out(np.zeros(np.broadcast(t_local, e_local, edge_path).shape))
        return TaskCost(
            t_local_s=_out(t_local + zero), t_tx_s=zero, t_switch_s=zero, t_edge_s=zero,
            t_edge_path_s=zero, latency_s=_out(t_local + zero), e_local_j=_out(e_local + zero),
            e_tx_j=zero, e_switch_j=zero, e_edge_j=zero, e_edge_path_j=zero,
            energy_j=_out(e_local + zero),
        )  # fmt: skip
    if edge is None or switch is None or device.transmit_power_w is None:
        given = {"edge": edge, "switch": switch, "device.transmit_power_w": device.transmit_power_w}
        missing = ", ".join(name for name, value in given.items() if value is None)
        raise ValueError(f"task_cost: a task has an edge path but {missing} not given")

    t_tx = upload_latency_s(x_edge, size, edge.upload_rate_mbps)
    e_tx = upload_energy_j(device.transmit_power_w, t_tx)
    # A task without an edge path never needs the model: treat it as cached.
    t_sw, e_sw = _switch_terms(switch, hit=_bool(switch.cached) | ~edge_path)
    t_ec = edge_compute_latency_s(x_edge, size, density, edge.ghz, edge.queue_delay_s)
    e_ec = edge_compute_energy_j(x_edge, size, density, edge.ghz, edge.kappa)

    shape = np.broadcast(t_local, e_local, t_tx, e_tx, t_sw, e_sw, t_ec, e_ec).shape
    zero = np.zeros(shape)
    t_es = t_tx + t_sw + t_ec + zero
    e_es = e_tx + e_sw + e_ec + zero
    return TaskCost(
        t_local_s=_out(t_local + zero),
        t_tx_s=_out(t_tx + zero),
        t_switch_s=_out(t_sw + zero),
        t_edge_s=_out(t_ec + zero),
        t_edge_path_s=_out(t_es),
        latency_s=_out(np.maximum(t_local, t_es)),
        e_local_j=_out(e_local + zero),
        e_tx_j=_out(e_tx + zero),
        e_switch_j=_out(e_sw + zero),
        e_edge_j=_out(e_ec + zero),
        e_edge_path_j=_out(e_es),
        energy_j=_out(e_local + e_es),
    )


def _switch_terms(switch: ModelSwitch, hit: npt.NDArray[np.bool_]) -> tuple[Any, Any]:
    """(7) T_sw and (8) E_sw of `switch`, with `hit` for its c_jk."""
    t_sw = switch_latency_s(hit, switch.model_size_mbit, switch.cloud_rate_mbps, switch.load_s)
    e_sw = switch_energy_j(
        hit, switch.model_size_mbit, switch.cloud_rate_mbps, switch.load_s,
        switch.cloud_power_w, switch.edge_load_power_w,
    )  # fmt: skip
    return t_sw, e_sw


# ------------------------------------------------------- objective, reward, constraints


def reward(
    latency_s: ArrayLike,
    energy_j: ArrayLike,
    weight: ArrayLike,
    reward_cfg: RewardConfig,
    violated: ArrayLike = False,
) -> FloatArray:
    """(18) r = −w_k·(ω1·T/latency_scale_s + ω2·E/energy_scale_j) − φ·[violated].

    `latency_s` and `energy_j` are measured on the live bench and modelled in the twin;
    `weight` is the task type's w_k; `violated` marks a broken constraint (bool).
    Pass finite numbers: a task that never finished should be charged a finite
    latency (e.g. the task timeout) by the caller, or the reward is −inf.
    """
    cost = (
        reward_cfg.omega_latency * _f(latency_s) / reward_cfg.latency_scale_s
        + reward_cfg.omega_energy * _f(energy_j) / reward_cfg.energy_scale_j
    )
    return _out(-_f(weight) * cost - reward_cfg.penalty * _bool(violated))


def charged_latency_s(
    latency_s: ArrayLike, deadline_s: ArrayLike, completed: ArrayLike, reward_cfg: RewardConfig
) -> FloatArray:
    """The T that (18) charges: a completed task's latency, else `reward.failed_latency`'s.

    `elapsed` charges a task that was not completed the time until it failed (a latency
    of 0, a task never served, is charged its deadline); `deadline` charges it at least
    its deadline, so refusing a task costs what letting it time out does (docs/papers.md).
    """
    latency, deadline, done = _f(latency_s), _f(deadline_s), _bool(completed)
    if reward_cfg.failed_latency is FailedLatency.DEADLINE:
        failed = np.maximum(latency, deadline)
    else:
        failed = np.where(latency > 0, latency, deadline)
    return _out(np.where(done, latency, failed))


def completed(latency_s: ArrayLike, deadline_s: ArrayLike) -> BoolArray:
    """A task is completed when its latency T ≤ its deadline, both in s."""
    return _out(_f(latency_s) <= _f(deadline_s))


@dataclass(frozen=True, slots=True)
class UplinkCheck:
    """The link-capacity constraint of (15): Σ_i r_ij over uploads into j ≤ B_j."""

    load_mbps: FloatArray
    """Sum of upload rates into each edge, shape (..., M)."""
    edge_overloaded: BoolArray
    """Edge j's capacity is exceeded, shape (..., M)."""
    agent_violated: BoolArray
    """The agent uploads into an overloaded edge, shape (..., N)."""


def uplink_check(
    rate_mbps: ArrayLike,
    target: ArrayLike,
    capacity_mbps: ArrayLike,
    uploading: ArrayLike = True,
) -> UplinkCheck:
    """Check Σ r_ij ≤ B_j for every edge j.

    Args:
        rate_mbps: r_ij of each agent to its target, shape (..., N).
        target: index j of each agent's target edge, shape (..., N); negative: none.
        capacity_mbps: B_j (`uplink_capacity_mbps`), shape (M,) or (..., M).
        uploading: whether the agent uploads at all (e.g. x > 0), shape (..., N).

    Only agents with a target (j ≥ 0) that upload count towards an edge's load.
    """
    rate = np.atleast_1d(_f(rate_mbps))
    tgt = np.atleast_1d(np.asarray(target))
    if not np.issubdtype(tgt.dtype, np.integer):
        raise TypeError(f"uplink_check: target must hold integer edge indices, got {tgt.dtype}")
    cap = np.atleast_1d(_f(capacity_mbps))
    num_edges = cap.shape[-1]
    if np.any(tgt >= num_edges):
        raise ValueError(f"uplink_check: a target index is ≥ the number of edges ({num_edges})")
    active = _bool(uploading) & (tgt >= 0)
    # one-hot (..., N, M): agent i uploads into edge j
    onehot = (tgt[..., None] == np.arange(num_edges)) & active[..., None]
    load = np.sum(np.where(onehot, rate[..., None], 0.0), axis=-2)
    over = load > cap
    # an agent violates when the edge it uploads into is over capacity
    agent_over = np.any(onehot & over[..., None, :], axis=-1)
    return UplinkCheck(load_mbps=load, edge_overloaded=over, agent_violated=agent_over)


# ---------------------------------------------------------------------------- helpers


def _f(value: ArrayLike) -> npt.NDArray[np.float64]:
    return np.asarray(value, dtype=np.float64)


def _bool(value: ArrayLike) -> npt.NDArray[np.bool_]:
    return np.asarray(value, dtype=bool)


def _hz(ghz: ArrayLike) -> npt.NDArray[np.float64]:
    return _f(ghz) * CYCLES_PER_GHZ_S


def _ratio(ratio: ArrayLike) -> npt.NDArray[np.float64]:
    x = _f(ratio)
    if not np.all((x >= 0.0) & (x <= 1.0)):  # also catches NaN
        raise ValueError("offload ratio x must lie in [0, 1]")
    return x


def _div(num: Any, den: Any, *, zero_when: Any) -> npt.NDArray[np.float64]:
    """num / den, 0 where `zero_when`, inf where den is 0 otherwise (no warnings)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.divide(num, den)
    q = np.where(np.asarray(den) == 0, np.inf, q)
    return np.where(zero_when, 0.0, q)


def _out(value: Any) -> Any:
    """A 0-d array as a numpy scalar (np.float64 / np.bool_), anything else as is."""
    arr = np.asarray(value)
    return arr[()] if arr.ndim == 0 else arr
