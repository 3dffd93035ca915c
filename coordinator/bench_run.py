"""What `testbed up` runs: a live bench (boards decide) or an edges-only stream, each
handing every finished slot to a `RunRecorder` (coordinator/recorder.py).

Both follow one shape: `start(catalog)` brings the bench up, `run(recorder)` drives
the slots, `end()` gives the records of tasks still owed when the last slot finished
(queued on the boards), `interrupted()` those of tasks in flight when Ctrl-C or
SIGTERM stopped it, `extra()` what the summary says about the bench beyond its tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from coordinator.bench_hosts import hosts_manifest
from coordinator.boards import SlotResult
from coordinator.launcher import Launcher
from coordinator.live import LiveBench
from coordinator.monitor.recorder import TelemetryRecorder, start_recording
from coordinator.node_directory import NodeDirectory
from coordinator.policy_choice import BoardPolicies
from coordinator.progress import ProgressBar
from coordinator.recorder import RunRecorder, RunStatus
from coordinator.records import percentile
from coordinator.remote_bench import waiting_line
from coordinator.run_folder import write_manifest
from coordinator.stream import EdgeStream, StreamEdge
from testbed.config import TestbedConfig
from testbed.edge_client import EdgeClient
from testbed.messages import TaskRecord
from testbed.security.credentials import coordinator_identity
from testbed.zoo.catalog import Catalog


class BenchRun(Protocol):
    launcher: Launcher

    def start(self, catalog: Catalog) -> None: ...
    def run(self, recorder: RunRecorder) -> None: ...
    def end(self) -> list[TaskRecord]: ...
    def interrupted(self) -> list[TaskRecord]: ...
    def extra(self, final: bool) -> dict[str, Any]: ...
    def close(self, keep: bool) -> None: ...


def write_run_manifest(
    cfg: TestbedConfig,
    launcher: Launcher,
    run_dir: Path,
    catalog: Catalog,
    nodes: NodeDirectory | None = None,
    **extra: Any,
) -> None:
    """The run's manifest: its nodes from `nodes` (where each is; without it, the
    launcher's processes) and, on a bench of hosts, what each host runs on."""
    hosts = {"hosts": hosts_manifest(cfg, nodes)} if nodes is not None and nodes.remote else {}
    write_manifest(run_dir, cfg, {
        "broker": launcher.broker_description,
        "broker_url": launcher.broker_url,
        "nodes": nodes.describe() if nodes is not None else
                 {n.node_id: {**n.info, "log": str(n.log_path)} for n in launcher.nodes.values()},
        **hosts,
        "zoo": {"dir": str(launcher.zoo_dir), "scale": catalog.scale.value,
                "models": [e.key for e in catalog.entries]},
        **extra,
    })  # fmt: skip


class _Tally:
    """The progress line: tasks so far and the share completed."""

    def __init__(self, slots: int) -> None:
        self.bar = ProgressBar(slots, "slots")
        self.done = self.tasks = 0

    def slot(self, records: list[TaskRecord]) -> None:
        self.done += sum(r.completed for r in records)
        self.tasks += len(records)
        pct = 100 * self.done / max(1, self.tasks)
        self.bar.update(1, f"tasks {self.tasks}, completed {pct:.0f}%")


class LiveRun:
    """Agents on (emulated) boards decide and execute; the coordinator drives slots."""

    def __init__(self, cfg: TestbedConfig, run_dir: Path, config_path: Path, zoo_dir: Path,
                 keep: bool, policy: BoardPolicies, label: str) -> None:  # fmt: skip
        self.cfg, self.run_dir, self.policy, self.label = cfg, run_dir, policy, label
        self.bench = LiveBench(cfg, run_dir, config_path, zoo_dir, keep=keep)
        self.launcher = self.bench.launcher
        self._overhead_ms: list[float] = []
        self._t0 = time.monotonic()
        self.telemetry: TelemetryRecorder | None = None  # telemetry.jsonl (coordinator/monitor/)

    def start(self, catalog: Catalog) -> None:
        self._t0 = time.monotonic()
        if self.cfg.inventory.remote:
            print(waiting_line(self.cfg, self.launcher.registry_address or ""))
        self.bench.start(self.policy)
        self.telemetry = start_recording(self.launcher.broker_url, self.cfg, self.run_dir)
        print(f"broker: {self.launcher.broker_description}")
        print(
            f"bench up in {time.monotonic() - self._t0:.1f} s: cloud, {self.cfg.edges.count} "
            f"edge(s), {self.cfg.agents.count} agent(s); policy {self.label}"
        )
        write_run_manifest(
            self.cfg, self.launcher, self.run_dir, catalog, self.bench.nodes, policy=self.label
        )

    def run(self, recorder: RunRecorder) -> None:
        tally = _Tally(self.cfg.run.slots)

        def slot_done(result: SlotResult) -> None:
            recorder.add_slot(result.slot, result.records, _timing(result))
            self._overhead_ms.append(result.overhead_ms)
            tally.slot(result.records)

        self.bench.run(self.cfg.run.slots, slot_done)

    def end(self) -> list[TaskRecord]:
        return self.bench.drain()

    def interrupted(self) -> list[TaskRecord]:
        return self.bench.interrupted("the run was stopped (Ctrl-C or SIGTERM) in its slot")

    def extra(self, final: bool) -> dict[str, Any]:
        return {
            "mode": "live: agents decide on the boards",
            **live_summary(self.bench, self.label, self.cfg.run.slots, self._t0, final),
            "orchestration_overhead_ms": {
                "p50": percentile(self._overhead_ms, 50),
                "p95": percentile(self._overhead_ms, 95),
            },
        }

    def close(self, keep: bool) -> None:
        if self.telemetry is not None:
            self.telemetry.stop()
            self.telemetry = None
        self.bench.keep = keep
        self.bench.close()


def live_summary(
    bench: LiveBench, label: str, slots: int, t0: float, final: bool
) -> dict[str, Any]:
    """What a live run's summary says of its bench (the §B run's too,
    coordinator/coedge_run.py): policy, nodes and their events, refused records, wall
    time, and at the end the edges' cache counters."""
    events = [e for e in bench.events if e.old != "new"]
    out: dict[str, Any] = {
        "policy": label,
        "slots": slots,
        "broker": bench.launcher.broker_description,
        "nodes": bench.node_states(),
        "node_events": [e.__dict__ for e in events],
        "node_lines": [
            f"node {e.node_id}: {e.old} -> {e.new} at slot {max(e.slot, 0)} ({e.t_s:.1f} s)"
            for e in events
        ],
        "refused_records": bench.refused_records(),
        "wall_s": round(time.monotonic() - t0, 2),
    }
    if final:  # asks the edges: not while a run is being stopped
        out["cache"] = bench.cache_counters()
    return out


def record_slots(
    bench: LiveBench,
    recorder: RunRecorder,
    slots: range,
    progress: Callable[[SlotResult], None] | None = None,
) -> list[TaskRecord]:
    """Drive `slots` of a started `bench`, each recorded as it finishes, then the tasks
    still queued on the boards (`drain`); the recorder is finished. Ctrl-C or SIGTERM:
    the tasks in flight are recorded as interrupted, the recorder finished as such, and
    the interrupt goes on up. Returns every record."""
    try:
        for slot in slots:
            result = bench.step(slot)
            recorder.add_slot(slot, result.records, _timing(result))
            if progress is not None:
                progress(result)
        recorder.add_records(bench.drain())
    except KeyboardInterrupt:
        recorder.add_records(bench.interrupted("the run was stopped (Ctrl-C or SIGTERM)"))
        in_flight = slots.start if recorder.last_slot is None else recorder.last_slot + 1
        recorder.finish(RunStatus.INTERRUPTED, interrupted_in_slot=in_flight)
        raise
    recorder.finish(RunStatus.COMPLETED)
    return recorder.records


def _timing(result: SlotResult) -> dict[str, float]:
    return {
        "wall_ms": result.wall_ms,
        "max_step_ms": result.max_step_ms,
        "overhead_ms": result.overhead_ms,
    }


class StreamRun:
    """No agents: the coordinator itself sends a task stream to the edges."""

    def __init__(self, cfg: TestbedConfig, run_dir: Path, config_path: Path, zoo_dir: Path,
                 keep: bool) -> None:  # fmt: skip
        self.cfg, self.run_dir = cfg, run_dir
        self.bench: LiveBench | None = None
        if cfg.inventory.remote:  # its nodes run on the hosts and register (coordinator/live.py)
            self.bench = LiveBench(cfg, run_dir, config_path, zoo_dir, keep=keep)
            self.launcher = self.bench.launcher
        else:
            self.launcher = Launcher(cfg, run_dir, config_path, zoo_dir=zoo_dir, keep=keep)
        self.stream: EdgeStream | None = None
        self._t0 = time.monotonic()
        self.telemetry: TelemetryRecorder | None = None  # telemetry.jsonl (coordinator/monitor/)

    def start(self, catalog: Catalog) -> None:
        cfg, launcher = self.cfg, self.launcher
        self._t0 = time.monotonic()
        if self.bench is not None:
            print(waiting_line(cfg, launcher.registry_address or ""))
            self.bench.start()
            print(f"broker: {launcher.broker_description}")
        else:
            launcher.start_broker()
            print(f"broker: {launcher.broker_description}")
            cloud = launcher.start_cloud()
            edges = [launcher.start_edge(spec) for spec in cfg.edge_specs()]
            launcher.wait_ready([cloud, *edges])
        self.telemetry = start_recording(launcher.broker_url, cfg, self.run_dir)
        print(f"bench up in {time.monotonic() - self._t0:.1f} s: cloud, {cfg.edges.count} "
              "edge(s), no agents")  # fmt: skip
        nodes = self.bench.nodes if self.bench is not None else None
        write_run_manifest(cfg, launcher, self.run_dir, catalog, nodes, policy="stream")
        stream_edges = [
            StreamEdge(spec.id, self._address(spec.id), spec.position_m or (0.0, 0.0))
            for spec in cfg.edge_specs()
        ]
        self.stream = EdgeStream(cfg, catalog, stream_edges)

    def _address(self, node_id: str) -> str:
        if self.bench is not None:
            return self.bench.nodes.address(node_id)
        return self.launcher.nodes[node_id].address

    def run(self, recorder: RunRecorder) -> None:
        assert self.stream is not None, "start() first"
        tally = _Tally(self.cfg.run.slots)

        def slot_done(slot: int, rows: list[TaskRecord], wall_ms: float) -> None:
            recorder.add_slot(slot, rows, {"wall_ms": wall_ms})
            tally.slot(rows)

        self.stream.run(self.cfg.run.slots, slot_done)

    def end(self) -> list[TaskRecord]:
        return []  # the stream's slots are barriers: nothing is owed after the last

    def interrupted(self) -> list[TaskRecord]:
        return self.stream.interrupted() if self.stream is not None else []

    def extra(self, final: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": "edges-only stream (the coordinator is the task source)",
            "slots": self.cfg.run.slots,
            "broker": self.launcher.broker_description,
            "wall_s": round(time.monotonic() - self._t0, 2),
        }
        if final:
            out["cache"] = self._cache_counters()
        return out

    def _cache_counters(self) -> dict[str, dict[str, int]]:
        cache = {}
        for spec in self.cfg.edge_specs():
            address = self._address(spec.id)
            with EdgeClient(address, spec.id, coordinator_identity(self.cfg)) as client:
                c = client.state().counters
            cache[spec.id] = {"hits": c.hits, "misses": c.misses, "evictions": c.evictions,
                              "bytes_fetched": c.bytes_fetched}  # fmt: skip
        return cache

    def close(self, keep: bool) -> None:
        if self.telemetry is not None:
            self.telemetry.stop()
            self.telemetry = None
        if self.stream is not None:
            self.stream.close()
        if self.bench is not None:
            self.bench.keep = keep
            self.bench.close()
        elif not keep:
            self.launcher.stop_all()
