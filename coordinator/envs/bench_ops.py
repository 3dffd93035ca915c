"""Operations on a running live bench that the live env and `testbed calibrate` share:
start one for an env, bring the edges' caches back to their preload, switch the boards
to another master seed, measure model switches with the edges' operator calls, and
run a heuristic for a number of slots."""

from __future__ import annotations

import csv
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coordinator.boards import SlotResult
from coordinator.live import LiveBench
from coordinator.policy_choice import PolicySource
from coordinator.run_folder import new_run_dir, write_config
from testbed.config import TestbedConfig
from testbed.edge_client import EdgeClient
from testbed.messages import ModelRef, TaskRecord
from testbed.tasks import TaskGenerator
from testbed.zoo.catalog import Catalog

log = logging.getLogger(__name__)


def zoo_dir_of(cfg: TestbedConfig) -> tuple[Path, Catalog]:
    """The bench's zoo folder (absolute) and catalog, checked as `testbed up` checks them:
    TestbedExit(ZOO_MISSING) with the fix, or CONFIG_INVALID for models it lacks."""
    from coordinator.commands.up import check_models, load_catalog

    zoo_dir, catalog = load_catalog(cfg)
    check_models(cfg, catalog)
    return zoo_dir.resolve(), catalog


def new_bench(cfg: TestbedConfig, label: str, run_dir: Path | None = None) -> LiveBench:
    """A LiveBench (not started) with its own run folder under `run.out_dir`."""
    zoo_dir, _ = zoo_dir_of(cfg)
    if run_dir is None:
        run_dir = new_run_dir(cfg.run.out_dir, cfg.experiment, label, cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    return LiveBench(cfg, run_dir, write_config(run_dir, cfg), zoo_dir)


def _client(bench: LiveBench, edge_id: str) -> EdgeClient:
    return EdgeClient(bench.launcher.nodes[edge_id].address, edge_id)


def restore_caches(bench: LiveBench, timeout_s: float = 120.0) -> int:
    """Bring every live edge's cache back to its `preload` list in order (the state
    a bench starts in, and a twin episode starts in). An edge already holding exactly
    its preload in that LRU order is left alone; otherwise its models are evicted and
    the preload fetched again. Returns how many edges were changed."""
    changed = 0
    for spec in bench.cfg.edge_specs():
        node = bench.launcher.nodes.get(spec.id)
        if node is None or not node.alive():
            continue
        want = list(dict.fromkeys(spec.preload))
        with _client(bench, spec.id) as client:
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


def reseed(bench: LiveBench, seed: int) -> None:
    """Run the boards under another master seed from their next step: each is
    configured again (its task stream, position and clock derive from the seed)."""
    if seed == bench.cfg.seed:
        return
    cfg = dataclasses.replace(bench.cfg, seed=seed)
    bench.cfg = cfg
    for handle in bench.agents.values():
        handle.needs_configure = True
        handle.generator = TaskGenerator(
            handle.agent_id, cfg.tasks.active_types, cfg.tasks.arrival_prob, seed
        )


@dataclass(frozen=True)
class SwitchSample:
    """One operator prefetch of a model that was not cached (times in s)."""

    model_id: str
    edge_id: str
    fetch_s: float
    verify_s: float
    load_s: float
    warmup_s: float
    total_s: float


def measure_switches(
    bench: LiveBench,
    models: list[str],
    repeats: int,
    progress: Callable[[str], None] = lambda _line: None,
) -> list[SwitchSample]:
    """Evict and prefetch each model `repeats` times on the first edge (the edges are
    one class); the cache is left as it was found only by `restore_caches`."""
    spec = bench.cfg.edge_specs()[0]
    samples = []
    with _client(bench, spec.id) as client:
        for model_id in models:
            for n in range(repeats):
                ref = ModelRef(model_id)
                held = {c.model.model_id for c in client.state(timeout_s=10).cached}
                if model_id in held:
                    client.evict(ref)
                op = client.prefetch(ref)
                if not op.ok:
                    log.warning("prefetch of %s failed: %s %s", model_id, op.reason, op.detail)
                    break
                t = op.timing
                samples.append(
                    SwitchSample(
                        model_id, spec.id, t.fetch_ms / 1e3, t.verify_ms / 1e3, t.load_ms / 1e3,
                        t.warmup_ms / 1e3, t.total_ms / 1e3,
                    )
                )  # fmt: skip
                progress(f"switch {model_id} {n + 1}/{repeats}: {t.total_ms:.0f} ms")
    return samples


SWITCHES_CSV = "switches.csv"


def write_switches(path: Path, samples: list[SwitchSample]) -> None:
    """The switch measurements as CSV (one row per prefetch, times in s)."""
    fields = [f.name for f in dataclasses.fields(SwitchSample)]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(s) for s in samples)


def read_switches(path: Path) -> list[SwitchSample]:
    with open(path, newline="") as f:
        return [
            SwitchSample(
                r["model_id"],
                r["edge_id"],
                *(float(r[k]) for k in ("fetch_s", "verify_s", "load_s", "warmup_s", "total_s")),
            )
            for r in csv.DictReader(f)
        ]


def run_policy(
    bench: LiveBench,
    policy: str,
    first_slot: int,
    slots: int,
    progress: Callable[[SlotResult], None] | None = None,
) -> list[TaskRecord]:
    """`slots` slots of a heuristic from `first_slot` on (the boards decide); records."""
    bench.load_policy(PolicySource(policy))
    records: list[TaskRecord] = []
    for slot in range(first_slot, first_slot + slots):
        result = bench.step(slot)
        records.extend(result.records)
        if progress is not None:
            progress(result)
    return records


def wait_settled(seconds: float = 0.5) -> None:
    """Let the edges' retained state reach the boards after operator calls (ms on an
    idle host; the margin is for a host busy with other work)."""
    time.sleep(seconds)
