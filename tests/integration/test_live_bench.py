"""The live loop with real processes: broker, cloud, edges, agents on (emulated) boards,
the coordinator's registry and slot driver."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from coordinator.actors import build_actor, export_actor
from coordinator.live import LiveBench
from coordinator.policy_choice import PolicySource, parse_policy
from coordinator.registry import NodeState
from coordinator.run_folder import write_config
from testbed.config import load_config
from testbed.observation import ObservationSpec
from testbed.types import FailureReason, Outcome

from .harness import write_config as write_test_config

pytestmark = pytest.mark.slow


def make_bench(tmp_path: Path, tiny_zoo: Path, **sections) -> LiveBench:
    sections.setdefault("edges", {})
    sections["edges"] = {
        "count": 2, "cache_capacity_mb": 8.0, "energy": {"meter": "estimated"},
        "nodes": [{"preload": ["diffusion-s"]}, {"preload": ["cgan-s"]}],
        **sections["edges"],
    }  # fmt: skip
    sections.setdefault("agents", {"count": 3, "energy": {"meter": "estimated"}})
    sections.setdefault("tasks", {"num_types": 3, "flops_per_cycle": 1.0})
    sections.setdefault("registry", {"heartbeat_interval_s": 0.3, "missing_after_beats": 3})
    path = write_test_config(tmp_path / "testbed.yaml", None, tiny_zoo, **sections)
    cfg = load_config(path, env={})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return LiveBench(cfg, run_dir, write_config(run_dir, cfg), tiny_zoo)


def test_heuristic_policies_each_record_every_task_once(tmp_path: Path, tiny_zoo: Path) -> None:
    with make_bench(tmp_path, tiny_zoo) as bench:
        bench.start(PolicySource("greedy"))
        seen: set[str] = set()
        for n, policy in enumerate(("greedy", "local", "offload", "random")):
            bench.load_policy(PolicySource(policy))
            results = [bench.step(slot) for slot in range(3 * n, 3 * n + 3)]
            records = [r for res in results for r in res.records]
            assert len(records) == 3 * 3, policy  # 3 agents x 3 slots, arrival probability 1
            ids = {r.task_id for r in records}
            assert len(ids) == len(records) and not ids & seen, "exactly one record per task"
            seen |= ids
            failures = Counter(r.reason.value for r in records if r.outcome is Outcome.FAILED)
            assert all(r.outcome is Outcome.COMPLETED for r in records), (policy, failures)
            if policy == "local":
                assert not any(r.edge_id for r in records)
                assert all(p.part == "local_compute" for r in records for p in r.energy)
            if policy == "offload":
                assert all(r.edge_id and r.share == 1.0 for r in records)
                assert all({p.part for p in r.energy} >= {"tx", "edge_compute"} for r in records)
            if policy == "greedy":  # only to an edge that holds the model: never a download
                assert all(not r.edge_id or (r.cache_hit and r.fetch_ms == 0) for r in records)
                assert any(r.edge_id for r in records)
            assert all(r.reward < 0 for r in records)
            assert all(s.acted for res in results for s in res.steps.values())


def test_an_onnx_actor_decides_on_the_boards(tmp_path: Path, tiny_zoo: Path) -> None:
    with make_bench(tmp_path, tiny_zoo) as bench:
        spec = ObservationSpec.from_config(bench.cfg)
        path = tmp_path / "actor.onnx"
        export_actor(build_actor(spec, hidden=(64, 64), seed=1), spec, path)
        bench.start(parse_policy(str(path)).board_policies([]))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for slot in range(3):
            result = bench.step(slot)
            assert len(result.records) == 3
            for step in result.steps.values():
                assert step.acted and step.observation is not None and step.decision
                expected = session.run(None, {"obs": step.observation[None]})[0][0]
                assert np.allclose(step.decision.raw, expected, atol=1e-5)
        noisy = bench.step(3, noise_std=1.0)
        assert len(noisy.records) == 3
        folder = tmp_path / "per-agent"  # each board its own actor, as training writes them
        folder.mkdir()
        for i, agent_id in enumerate(bench.agents):
            export_actor(
                build_actor(spec, hidden=(16,), seed=10 + i), spec, folder / f"{agent_id}.onnx"
            )
        bench.load_policy(parse_policy(str(folder)).board_policies(list(bench.agents)))
        result = bench.step(4)
        for agent_id, step in result.steps.items():
            own = ort.InferenceSession(str(folder / f"{agent_id}.onnx"))
            expected = own.run(None, {"obs": step.observation[None]})[0][0]
            assert np.allclose(step.decision.raw, expected, atol=1e-5)


def test_an_edge_killed_mid_run(tmp_path: Path, tiny_zoo: Path) -> None:
    with make_bench(tmp_path, tiny_zoo) as bench:
        bench.start(PolicySource("offload"))
        before = [r for s in range(2) for r in bench.step(s).records]
        assert all(r.outcome is Outcome.COMPLETED for r in before)
        bench.launcher.kill("edge-1", signal.SIGKILL)
        after = [r for s in range(2, 6) for r in bench.step(s).records]
        assert len(after) == 4 * 3  # the run goes on and loses no task
        for r in after:  # each task either fails for the dead edge or went elsewhere
            assert r.outcome is Outcome.COMPLETED or r.reason is FailureReason.EDGE_UNREACHABLE
            if r.edge_id == "edge-1":
                assert r.reason is FailureReason.EDGE_UNREACHABLE
        deadline = time.monotonic() + 5
        while (
            bench.node_states().get("edge-1") != NodeState.MISSING and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert bench.node_states()["edge-1"] == NodeState.MISSING
        assert any(e.node_id == "edge-1" and e.new == "missing" for e in bench.events)
        late = [r for s in range(6, 8) for r in bench.step(s).records]
        assert all(r.edge_id != "edge-1" for r in late)  # the boards saw it go offline


def test_a_restarted_agent_registers_again_and_carries_on(tmp_path: Path, tiny_zoo: Path) -> None:
    with make_bench(tmp_path, tiny_zoo) as bench:
        bench.start(PolicySource("local"))
        assert len(bench.step(0).records) == 3
        first_session = bench.table.get("agent-0").session_id
        bench.launcher.restart("agent-0")  # SIGTERM, then a fresh process
        bench.launcher.wait_ready([bench.launcher.nodes["agent-0"]])
        deadline = time.monotonic() + 10
        while bench.table.get("agent-0").session_id == first_session:
            assert time.monotonic() < deadline, "agent-0 never registered again"
            time.sleep(0.1)
        records = [r for s in range(1, 4) for r in bench.step(s).records]
        assert len(records) == 3 * 3
        mine = [r for r in records if r.agent_id == "agent-0"]
        assert all(r.outcome is Outcome.COMPLETED for r in mine), [r.reason for r in mine]
        assert bench.agents["agent-0"].needs_configure is False


def test_two_phase_slots_for_a_trainer(tmp_path: Path, tiny_zoo: Path) -> None:
    with make_bench(tmp_path, tiny_zoo) as bench:
        bench.start(PolicySource("local"))  # the boards' own policy must not be used
        spec = ObservationSpec.from_config(bench.cfg)
        seen = bench.observe(0)
        assert not seen.records
        obs = {a: s.observation for a, s in seen.steps.items()}
        assert all(o is not None and o.shape == (spec.obs_dim,) for o in obs.values())
        offload_to_edge_0 = np.array([0, 1, 0, 1.0, 1.0], dtype=np.float32)
        done = bench.act(0, dict.fromkeys(obs, offload_to_edge_0))
        assert len(done.records) == 3
        assert all(r.edge_id == "edge-0" and r.share == 1.0 for r in done.records)
        assert all(np.allclose(done.steps[a].observation, obs[a]) for a in obs)
