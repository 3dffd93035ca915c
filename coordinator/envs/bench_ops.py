"""Operations on a running live bench that the live env (live_env.py) and `testbed
calibrate` (coordinator/calibration/) share: start one for an env, talk to an edge's
operator service, bring the edges' caches back to their preload, and switch the boards
to another master seed."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from coordinator.bench_setup import zoo_dir_of
from coordinator.live import LiveBench
from coordinator.run_folder import new_run_dir, write_config
from testbed.config import TestbedConfig
from testbed.edge_client import EdgeClient
from testbed.messages import ModelRef, TaskRecord

log = logging.getLogger(__name__)


def new_bench(cfg: TestbedConfig, label: str, run_dir: Path | None = None) -> LiveBench:
    """A LiveBench (not started) with its own run folder under `run.out_dir`."""
    zoo_dir, _ = zoo_dir_of(cfg)
    if run_dir is None:
        run_dir = new_run_dir(cfg.run.out_dir, cfg.experiment, label, cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    return LiveBench(cfg, run_dir, write_config(run_dir, cfg), zoo_dir)


def edge_client(bench: LiveBench, edge_id: str) -> EdgeClient:
    """A client of a running edge's operator service (evict, prefetch, state)."""
    return EdgeClient(bench.nodes.address(edge_id), edge_id, bench.grpc_identity)


def restore_caches(bench: LiveBench, timeout_s: float = 120.0) -> int:
    """Bring every live edge's cache back to its `preload` list in order (the state
    a bench starts in, and a twin episode starts in). An edge already holding exactly
    its preload in that LRU order is left alone; otherwise its models are evicted and
    the preload fetched again. Returns how many edges were changed."""
    changed = 0
    for spec in bench.cfg.edge_specs():
        if not bench.nodes.alive(spec.id):
            continue
        want = list(dict.fromkeys(spec.preload))
        with edge_client(bench, spec.id) as client:
            held = [c.model.model_id for c in client.state(timeout_s=10).cached]
            if held == want:
                continue
            changed += 1
            for model_id in held:
                client.evict(ModelRef(model_id))
            for model_id in want:
                op = client.prefetch(ModelRef(model_id), timeout_s=timeout_s)
                if not op.ok:
                    log.warning("%s: preload of %s failed: %s", spec.id, model_id, op.detail)
    return changed


def reseed(bench: LiveBench, seed: int) -> list[TaskRecord]:
    """Run the boards under another master seed from their next step: each is
    configured again (its task stream, position and clock derive from the seed). The
    tasks still queued on the boards end first (`LiveBench.drain`): their records."""
    if seed == bench.cfg.seed:
        return []
    records = bench.drain()
    bench.cfg = dataclasses.replace(bench.cfg, seed=seed)
    for handle in bench.agents.values():
        handle.needs_configure = True
        handle.owed.generator = bench.task_generator(handle.agent_id)
    return records


def wait_settled(seconds: float = 0.5) -> None:
    """Let the edges' retained state reach the boards after operator calls (ms on an
    idle host; the margin is for a host busy with other work)."""
    time.sleep(seconds)
