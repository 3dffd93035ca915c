"""The twin by hand: a slot's costs against testbed/costs.py and the live bench's rules.

The bench: one edge at (0, 0) with a 10 MB cache, r_cj = 80 Mbit/s; agent-0 at 100 m
(1.5 GHz), agent-1 at 200 m (2 GHz), p_i = 0.5 W. Models (unit = one sample):

    m-a 4 MB, 1 MFLOP/unit   m-b 5 MB, 1 MFLOP   m-c 3 MB, 0.5 MFLOP   m-big 12 MB
    dif 2 MB, diffusion, 0.1 MFLOP per pass, 20 default steps (type `dq` asks for 40)

Every type has D = 2 Mbit, C = 10 cycles/bit, flops_per_cycle 1 → 2e7 FLOPs: 20 units
of m-a or m-b. Calibrated prices, the same for every model: agent 0.015 GHz·s and
0.05 J per unit; edge 2 ms and 0.03 J per unit; a switch = the paced fetch + 50 ms
fetch overhead + 10 ms verify + 100 ms load + 40 ms warm-up, 2 J load + 1 J warm-up;
overheads: upload 3 ms, reply 2 ms, local 1 ms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from coordinator.calibration_file import (
    CALIBRATION_VERSION,
    BenchFacts,
    Calibration,
    ModelCalibration,
)
from coordinator.envs.heuristics import encode_actions, make_heuristic
from coordinator.envs.twin import REASONS, TaskSource, TwinEnv
from coordinator.envs.twin_params import DEFAULT_LOAD_S_PER_MB, CostModel, TwinParams
from testbed import costs
from testbed.config import TestbedConfig, ZooScale, config_from_dict
from testbed.links import shannon_rate_mbps
from testbed.observation import decode
from testbed.tasks import TaskGenerator
from testbed.types import FailureReason
from testbed.zoo.catalog import Catalog, ModelEntry, ModelFamily
from testbed.zoo.workload import split_units, units_for

MB = 1_000_000
MODELS: dict[str, tuple[ModelFamily, int, int, int]] = {
    "m-a": (ModelFamily.CGAN, 4 * MB, 1_000_000, 1),
    "m-b": (ModelFamily.AUTOENCODER, 5 * MB, 1_000_000, 1),
    "m-c": (ModelFamily.CGAN, 3 * MB, 500_000, 1),
    "m-big": (ModelFamily.CGAN, 12 * MB, 1_000_000, 1),
    "dif": (ModelFamily.DIFFUSION, 2 * MB, 100_000, 20),
}
TYPES = [("a", "m-a", None), ("b", "m-b", None), ("c", "m-c", None), ("big", "m-big", None),
         ("dq", "dif", 40)]  # fmt: skip
A, B, C, BIG, DQ = range(5)
UPLOAD, REPLY, LOCAL = 0.003, 0.002, 0.001


def entry(model_id: str) -> ModelEntry:
    family, size, flops, steps = MODELS[model_id]
    return ModelEntry(
        id=model_id, family=family, version="1", file=f"{model_id}.onnx", size_bytes=size,
        sha256="0" * 64, inputs=[], outputs=[], default_steps=steps,
        flops_per_invocation=flops, trained=False, scale=ZooScale.TINY,
    )  # fmt: skip


CATALOG = Catalog(ZooScale.TINY, [entry(m) for m in MODELS])


def bench(preload: list[str], *, capacity_mb: float = 10.0, **extra: Any) -> TestbedConfig:
    types = [
        {"name": n, "model": m, "size_mbit": [2.0, 2.0], "density_cycles_per_bit": 10.0,
         "deadline_s": 2.0, "weight": 1.0, "steps": s}
        for n, m, s in TYPES
    ]  # fmt: skip
    data: dict[str, Any] = {
        "cloud": {"transmit_power_w": 20.0},
        "edges": {
            "count": 1, "cpu_ghz": 7.0, "cache_capacity_mb": capacity_mb,
            "cloud_link_mbps": 80.0, "nodes": [{"position_m": [0.0, 0.0], "preload": preload}],
        },
        "agents": {
            "count": 2, "transmit_power_w": 0.5,
            "nodes": [{"position_m": [100.0, 0.0], "cpu_ghz": 1.5},
                      {"position_m": [200.0, 0.0], "cpu_ghz": 2.0}],
        },
        "twin": {"episode_slots": 4},
    }  # fmt: skip
    data["tasks"] = {"arrival_prob": 1.0, "flops_per_cycle": 1.0, "types": types,
                     **extra.pop("tasks", {})}  # fmt: skip
    data.update(extra)
    return config_from_dict(data)


def calibration() -> Calibration:
    models = [
        ModelCalibration(
            model_id=m, family=f, size_bytes=size, flops_per_invocation=flops,
            default_steps=steps, local_ghz_s_per_unit=0.015, local_j_per_unit=0.05,
            edge_s_per_unit=0.002, edge_j_per_unit=0.03, fetch_overhead_s=0.05, verify_s=0.01,
            load_s=0.1, warmup_s=0.04, load_j=2.0, warmup_j=1.0,
        )
        for m, (f, size, flops, steps) in MODELS.items()
    ]  # fmt: skip
    facts = BenchFacts(created_utc="2026-01-01T00:00:00+00:00", host={}, zoo_scale=ZooScale.TINY,
                       zoo_models=list(MODELS), broker="test", config_digest="")  # fmt: skip
    return Calibration(
        version=CALIBRATION_VERSION, bench=facts, edge_ghz=7.0, upload_overhead_s=UPLOAD,
        reply_overhead_s=REPLY, local_overhead_s=LOCAL, models=models,
    )  # fmt: skip


def twin(cfg: TestbedConfig, *, calibrated: bool = True, **kw: Any) -> TwinEnv:
    params = TwinParams.from_config(cfg, calibration() if calibrated else None, catalog=CATALOG)
    env = TwinEnv(params, kw.pop("num_envs", 1), **kw)
    env.reset(seed=0)
    return env


def give(env: TwinEnv, tasks: list[int | None]) -> None:
    """Replace the slot's tasks of environment 0: a type index per agent (None: no task)."""
    for i, t in enumerate(tasks):
        env.has_task[0, i] = t is not None
        env.task_type[0, i] = t or 0
        env.size_mbit[0, i] = 2.0


def act(env: TwinEnv, decisions: list[tuple[int, float, bool]]) -> Any:
    target, ratio, download = zip(*decisions, strict=True)
    raw = encode_actions(1, np.array([target]), np.array([ratio]), np.array([download]))
    return env.step(raw)


def rate(distance_m: float) -> float:
    return float(shannon_rate_mbps(0.5, distance_m, bench([]).links))


def reason(out: Any, i: int) -> FailureReason:
    return REASONS[int(out.info["reason"][0, i])]


def test_local_only_is_units_times_the_calibrated_cost() -> None:
    cfg = bench(["m-a"])
    env = twin(cfg)
    give(env, [A, None])
    out = act(env, [(-1, 0.0, False), (-1, 0.0, False)])
    t = 20 * 0.015 / 1.5 + LOCAL  # 20 units x 0.015 GHz·s / 1.5 GHz + overhead
    assert out.latency_s[0, 0] == pytest.approx(t, rel=1e-6)
    assert out.energy_j[0, 0] == pytest.approx(20 * 0.05, rel=1e-6)
    assert out.completed[0, 0] and out.has_task[0, 0] and not out.has_task[0, 1]
    assert out.reward[0, 0] == pytest.approx(costs.reward(t, 1.0, 1.0, cfg.reward), rel=1e-6)
    assert out.reward[0, 1] == 0.0 and out.latency_s[0, 1] == 0.0


def test_offload_to_an_edge_holding_the_model() -> None:
    env = twin(bench(["m-a"]))
    give(env, [A, None])
    out = act(env, [(0, 1.0, False), (-1, 0.0, False)])
    t_tx = costs.upload_latency_s(1.0, 2.0, rate(100.0)) + UPLOAD
    assert out.info["t_tx_s"][0, 0] == pytest.approx(t_tx, rel=1e-6)
    assert out.latency_s[0, 0] == pytest.approx(t_tx + 20 * 0.002 + REPLY, rel=1e-6)
    energy = costs.upload_energy_j(0.5, t_tx) + 20 * 0.03
    assert out.energy_j[0, 0] == pytest.approx(energy, rel=1e-6)
    assert out.info["cache_hit"][0, 0] and reason(out, 0) is FailureReason.NONE


def test_a_missing_model_is_fetched_loaded_and_cached() -> None:
    env = twin(bench(["m-a"]))
    give(env, [B, None])
    out = act(env, [(0, 1.0, True), (-1, 0.0, False)])
    t_tx = costs.upload_latency_s(1.0, 2.0, rate(100.0)) + UPLOAD
    fetch = 5 * 8 / 80 + 0.05  # 5 MB at 80 Mbit/s, paced, + overhead
    switch = fetch + 0.01 + 0.1 + 0.04
    assert out.info["t_switch_s"][0, 0] == pytest.approx(switch, rel=1e-6)
    assert out.latency_s[0, 0] == pytest.approx(t_tx + switch + 20 * 0.002 + REPLY, rel=1e-6)
    energy = costs.upload_energy_j(0.5, t_tx) + 20.0 * fetch + 2.0 + 1.0 + 20 * 0.03
    assert out.energy_j[0, 0] == pytest.approx(energy, rel=1e-6)
    assert not out.info["cache_hit"][0, 0]
    models = env.params.models
    assert env.cached[0, 0, models.index("m-b")] and env.cached[0, 0, models.index("m-a")]


def test_no_download_of_a_missing_model_fails_at_once() -> None:
    cfg = bench(["m-a"])
    env = twin(cfg)
    give(env, [B, None])
    out = act(env, [(0, 1.0, False), (-1, 0.0, False)])
    t_tx = costs.upload_latency_s(1.0, 2.0, rate(100.0)) + UPLOAD
    assert reason(out, 0) is FailureReason.MODEL_MISSING and not out.completed[0, 0]
    assert out.latency_s[0, 0] == pytest.approx(t_tx + REPLY, rel=1e-6)
    energy = costs.upload_energy_j(0.5, t_tx)
    assert out.energy_j[0, 0] == pytest.approx(energy, rel=1e-6)
    want = costs.reward(t_tx + REPLY, energy, 1.0, cfg.reward, violated=True)
    assert out.reward[0, 0] == pytest.approx(want, rel=1e-6)
    assert not env.cached[0, 0, env.params.models.index("m-b")]


def test_a_refusal_charged_the_deadline_costs_what_a_timeout_does() -> None:
    cfg = bench(["m-a"], reward={"failed_latency": "deadline"})
    env = twin(cfg)
    give(env, [B, None])
    out = act(env, [(0, 1.0, False), (-1, 0.0, False)])
    t_tx = costs.upload_latency_s(1.0, 2.0, rate(100.0)) + UPLOAD
    assert reason(out, 0) is FailureReason.MODEL_MISSING
    assert out.latency_s[0, 0] == pytest.approx(t_tx + REPLY, rel=1e-6)  # what it took
    energy = costs.upload_energy_j(0.5, t_tx)
    want = costs.reward(2.0, energy, 1.0, cfg.reward, violated=True)  # charged D = 2 s
    assert out.reward[0, 0] == pytest.approx(want, rel=1e-6)


def test_two_uploads_are_served_fifo_in_order_of_arrival() -> None:
    env = twin(bench(["m-a"]))
    give(env, [A, A])
    out = act(env, [(0, 1.0, False), (0, 1.0, False)])
    a0 = costs.upload_latency_s(1.0, 2.0, rate(100.0)) + UPLOAD  # nearer: arrives first
    a1 = costs.upload_latency_s(1.0, 2.0, rate(200.0)) + UPLOAD
    assert a0 < a1 < a0 + 0.04  # the second arrives while the first computes
    assert out.info["t_edge_queue_s"][0, 0] == 0.0
    assert out.info["t_edge_queue_s"][0, 1] == pytest.approx(a0 + 0.04 - a1, rel=1e-5)
    assert out.latency_s[0, 1] == pytest.approx(a0 + 0.04 + 0.04 + REPLY, rel=1e-6)


def test_two_servers_serve_at_once_and_share_one_download() -> None:
    cfg = bench(["m-a"], edges={
        "count": 1, "cpu_ghz": 7.0, "cache_capacity_mb": 10.0, "cloud_link_mbps": 80.0,
        "parallel_slots": 2, "nodes": [{"position_m": [0.0, 0.0], "preload": ["m-a"]}],
    })  # fmt: skip
    env = twin(cfg)
    a0 = costs.upload_latency_s(1.0, 2.0, rate(100.0)) + UPLOAD
    a1 = costs.upload_latency_s(1.0, 2.0, rate(200.0)) + UPLOAD
    give(env, [A, A])  # both hit: the second starts on the other server at once
    out = act(env, [(0, 1.0, False), (0, 1.0, False)])
    assert out.info["t_edge_queue_s"][0, 1] == 0.0
    assert out.latency_s[0, 1] == pytest.approx(a1 + 0.04 + REPLY, rel=1e-6)
    give(env, [B, B])  # both need m-b: one download; the second waits for it
    out = act(env, [(0, 1.0, True), (0, 1.0, True)])
    switch = 5 * 8 / 80 + 0.05 + 0.01 + 0.1 + 0.04
    assert out.latency_s[0, 1] == pytest.approx(a0 + switch + 0.04 + REPLY, rel=1e-6)
    assert not out.info["cache_hit"][0, 1] and out.info["t_edge_queue_s"][0, 1] == 0.0
    fetch_j = 20.0 * (5 * 8 / 80 + 0.05) + 3.0  # cloud_tx + load + warm-up, paid once
    assert out.energy_j[0, 0] - out.energy_j[0, 1] == pytest.approx(
        fetch_j + costs.upload_energy_j(0.5, a0 - a1), rel=1e-5
    )


def test_lru_eviction_by_bytes_of_models_not_in_use() -> None:
    env = twin(bench(["m-a", "m-b"]))  # 4 + 5 of 10 MB; m-a is least recently used
    models = env.params.models

    def held() -> set[str]:
        return {m for u, m in enumerate(models) if env.cached[0, 0, u]}

    assert held() == {"m-a", "m-b"}
    give(env, [C, None])  # m-c (3 MB) needs 2 MB more: m-a goes
    act(env, [(0, 1.0, True), (-1, 0.0, False)])
    assert held() == {"m-b", "m-c"}
    give(env, [B, None])  # a hit makes m-b the most recent
    act(env, [(0, 1.0, False), (-1, 0.0, False)])
    give(env, [A, None])  # m-a (4 MB) needs 2 MB: m-c, now least recent, goes
    out = act(env, [(0, 1.0, True), (-1, 0.0, False)])
    assert held() == {"m-a", "m-b"} and out.completed[0, 0]


def test_a_hit_in_the_first_slot_is_more_recent_than_the_preload() -> None:
    env = twin(bench(["m-a", "m-b"]))
    give(env, [A, C])  # agent-0 uses m-a first; agent-1's m-c (3 MB) then needs room
    act(env, [(0, 1.0, False), (0, 1.0, True)])
    held = {m for u, m in enumerate(env.params.models) if env.cached[0, 0, u]}
    assert held == {"m-a", "m-c"}  # m-b, untouched since the preload, went


def test_a_model_larger_than_the_cache_is_refused() -> None:
    env = twin(bench(["m-a"]))
    give(env, [BIG, None])
    out = act(env, [(0, 1.0, True), (-1, 0.0, False)])
    assert reason(out, 0) is FailureReason.MODEL_TOO_LARGE and not out.completed[0, 0]
    t_tx = costs.upload_latency_s(1.0, 2.0, rate(100.0)) + UPLOAD
    assert out.latency_s[0, 0] == pytest.approx(t_tx + 0.05 + REPLY, rel=1e-6)
    assert {m for u, m in enumerate(env.params.models) if env.cached[0, 0, u]} == {"m-a"}


def test_a_share_rounding_to_no_unit_runs_locally() -> None:
    env = twin(bench(["m-a"]))
    give(env, [A, None])
    out = act(env, [(0, 0.02, True), (-1, 0.0, False)])  # 0.02 x 20 units = 0.4 → 0
    assert out.info["target"][0, 0] == -1 and out.info["edge_units"][0, 0] == 0
    assert out.latency_s[0, 0] == pytest.approx(20 * 0.015 / 1.5 + LOCAL, rel=1e-6)


def test_paper_model_equals_task_cost() -> None:
    cfg = bench(["m-a"])
    env = twin(cfg, calibrated=False)
    assert env.params.cost_model is CostModel.PAPER
    give(env, [B, A])  # agent-0 offloads half and downloads m-b, agent-1 stays local
    out = act(env, [(0, 0.5, True), (-1, 0.0, False)])
    size_mbit = costs.bytes_to_mbit(5 * MB)
    power = cfg.edges.energy.power
    want = costs.task_cost(
        costs.TaskWork(size_mbit=2.0, density_cycles_per_bit=10.0),
        costs.OffloadDecision(ratio=0.5),
        costs.Device(ghz=1.5, kappa=1e-28, transmit_power_w=0.5),
        costs.EdgeTarget(upload_rate_mbps=rate(100.0), ghz=7.0, kappa=1e-28),
        costs.ModelSwitch(
            cached=False, model_size_mbit=size_mbit, cloud_rate_mbps=80.0,
            load_s=DEFAULT_LOAD_S_PER_MB * 5, cloud_power_w=20.0,
            edge_load_power_w=power.idle_w + power.active_w_per_core,
        ),
    )  # fmt: skip
    assert out.latency_s[0, 0] == pytest.approx(want.latency_s, rel=1e-6)
    assert out.energy_j[0, 0] == pytest.approx(want.energy_j, rel=1e-6)
    local = costs.task_cost(
        costs.TaskWork(size_mbit=2.0, density_cycles_per_bit=10.0),
        costs.OffloadDecision(ratio=0.0),
        costs.Device(ghz=2.0, kappa=1e-28),
    )
    assert out.latency_s[0, 1] == pytest.approx(local.latency_s, rel=1e-6)
    assert out.energy_j[0, 1] == pytest.approx(local.energy_j, rel=1e-6)


def test_units_and_split_equal_the_workload_rules() -> None:
    types = [
        {"name": n, "model": m, "size_mbit": [0.3, 7.0], "density_cycles_per_bit": d,
         "deadline_s": 2.0, "steps": s}
        for (n, m, s), d in zip(TYPES, (33.0, 71.0, 12.5, 40.0, 180.0), strict=True)
    ]  # fmt: skip
    cfg = bench(["m-a"], tasks={"flops_per_cycle": 3.7, "types": types})
    env = twin(cfg, num_envs=64)
    rng = np.random.default_rng(7)
    for _ in range(5):
        ratio = np.round(rng.uniform(0, 1, env.has_task.shape), 2)  # many exact halves
        target = rng.integers(-1, 1, env.has_task.shape)
        sizes, ttypes, has = env.size_mbit.copy(), env.task_type.copy(), env.has_task.copy()
        out = env.step(encode_actions(1, target, ratio, True))
        for e, i in zip(*np.nonzero(has), strict=True):
            t = cfg.tasks.types[ttypes[e, i]]
            units = units_for(sizes[e, i], t.density_cycles_per_bit, entry(t.model), 3.7)
            assert out.info["units"][e, i] == units
            share = ratio[e, i] if target[e, i] >= 0 else 0.0
            assert out.info["edge_units"][e, i] == split_units(units, share)[1]


def test_actions_decode_as_the_board_decodes_them() -> None:
    env = twin(bench(["m-a"]), num_envs=16)
    raw = np.random.default_rng(3).uniform(-0.2, 1.2, (16, 2, 4)).astype(np.float32)
    raw[0, 0, 2] = np.nan
    target, ratio, download = env.decode(raw)
    want_t, want_r, want_d = decode(env.spec, raw)
    want_r = np.nan_to_num(want_r)
    assert np.array_equal(target[~np.isnan(raw[..., 2])], want_t[~np.isnan(raw[..., 2])])
    assert np.array_equal(ratio[1:], want_r[1:].astype(np.float64))
    assert np.array_equal(download, want_d)


def test_crn_tasks_are_the_task_generators_across_episodes() -> None:
    cfg = bench(["m-a"], tasks={"arrival_prob": 0.6, "flops_per_cycle": 1.0})
    env = twin(cfg, num_envs=2, tasks=TaskSource.CRN)
    env.reset(seed=5)
    names = [t.name for t in cfg.tasks.active_types]
    gens = {
        (e, a): TaskGenerator(a, cfg.tasks.active_types, 0.6, 5 + e)
        for e in range(2) for a in env.agent_ids
    }  # fmt: skip
    local = make_heuristic("local")
    for slot in range(2 * env.episode_slots + 1):  # through an auto-reset
        for e in range(2):
            for i, agent in enumerate(env.agent_ids):
                task = gens[(e, agent)].next(slot)
                assert env.has_task[e, i] == (task is not None)
                if task is not None:
                    assert names[env.task_type[e, i]] == task.task_type
                    assert env.size_mbit[e, i] == task.size_mbit
        env.step(local.act(env))


def test_the_same_seed_gives_the_same_run() -> None:
    def run(seed: int) -> list[np.ndarray]:
        env = twin(bench(["m-a", "m-b"]), num_envs=8)
        env.reset(seed=seed)
        policy = make_heuristic("random", seed=seed)
        outs = [env.step(policy.act(env)) for _ in range(6)]
        return [x for o in outs for x in (o.obs, o.reward, o.latency_s, o.energy_j)]

    first, again, other = run(1), run(1), run(2)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other, strict=True))


def test_episodes_end_and_reset_themselves() -> None:
    env = twin(bench(["m-a"]), num_envs=3)  # episode_slots 4
    offload = make_heuristic("offload")
    for step in range(4):
        out = env.step(offload.act(env))
        if step < 3:
            assert not out.done.any() and out.final_obs is out.obs
    assert out.done.all()
    assert (env.slot == 0).all() and (env.episode == 1).all()
    # the ended episode's caches hold what offloading fetched; the new one's the preload
    cache = env._writer._free  # columns of the free cache fraction
    assert not np.array_equal(out.final_obs[..., cache], out.obs[..., cache])
    assert np.array_equal(env.cached, np.broadcast_to(env._pre_cached, env.cached.shape))
    assert out.obs.shape == (3, 2, env.spec.obs_dim) and out.obs.dtype == np.float32


def test_observations_are_observes_numbers() -> None:
    env = twin(bench(["m-a", "m-b"]), num_envs=32)
    rng = np.random.default_rng(0)
    for aware in (True, False):
        env = TwinEnv(env.params, 32, model_aware=aware)
        env.reset(seed=1)
        env.cached[:] = rng.random(env.cached.shape) < 0.5
        env.has_task[:] = rng.random(env.has_task.shape) < 0.7
        p, k = env.params, env.task_type
        free = 1.0 - (env.cached @ p.model_size_bytes) / p.edge_capacity_bytes
        want = env._writer.reference(
            has_task=env.has_task, task_type=k, size_mbit=env.size_mbit,
            density_cycles_per_bit=p.type_density[k], deadline_s=p.type_deadline_s[k],
            cache_free=free, cached=env.cached[..., : len(env.spec.models)],
        )  # fmt: skip
        assert np.array_equal(env._observe(), want)


def test_the_edges_failure_codes_index_reasons() -> None:
    from coordinator.envs.twin_edges import _CODE

    for reason, code in _CODE.items():
        assert REASONS[int(code)] is reason
