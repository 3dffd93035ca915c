"""An edges-only bench: the coordinator itself is the task source.

Used by `testbed up --agents 0`, the edge benchmarks and tests. Every slot, each of
`devices` virtual devices draws its task (testbed/tasks.py, the same generator the
agents use) and sends it whole to an edge (round robin), with the download flag set;
the data are streamed, paced to the device→edge Shannon rate when link emulation is on.
All tasks of a slot run concurrently; the slot ends when every one has an outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from testbed.config import TestbedConfig
from testbed.edge_client import EdgeClient
from testbed.links import Pacer, distance_m, shannon_rate_mbps
from testbed.messages import EdgeTaskRequest, ModelRef, TaskRecord
from testbed.records import add_edge_share, failed_record, judge, new_record
from testbed.security.credentials import coordinator_identity
from testbed.tasks import Task, TaskGenerator, task_data
from testbed.types import FailureReason
from testbed.zoo.catalog import Catalog, UnknownModel
from testbed.zoo.workload import units_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamEdge:
    edge_id: str
    address: str
    position_m: tuple[float, float]


class EdgeStream:
    def __init__(
        self,
        cfg: TestbedConfig,
        catalog: Catalog,
        edges: Sequence[StreamEdge],
        *,
        devices: int | None = None,
    ) -> None:
        if not edges:
            raise ValueError("an edge stream needs at least one edge")
        self.cfg = cfg
        self.catalog = catalog
        self.edges = list(edges)
        specs = cfg.agent_specs()
        n = devices if devices is not None else max(1, len(specs))
        self.devices = [(f"device-{i}", specs[i % len(specs)].position_m) for i in range(n)]
        types = cfg.tasks.active_types
        self.generators = [
            TaskGenerator(dev_id, types, cfg.tasks.arrival_prob, cfg.seed)
            for dev_id, _ in self.devices
        ]
        identity = coordinator_identity(cfg)  # mTLS when the bench's gRPC is
        self.clients = {e.edge_id: EdgeClient(e.address, e.edge_id, identity) for e in self.edges}
        self._pool = ThreadPoolExecutor(max(4, n), thread_name_prefix="stream")
        self._next_edge = 0
        self._in_flight: dict[str, Task] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for client in self.clients.values():
            client.close()

    def run(
        self,
        slots: int,
        progress: Callable[[int, list[TaskRecord], float], None] | None = None,
    ) -> list[TaskRecord]:
        """`slots` slots; after each, `progress(slot, its records, its wall ms)`."""
        rows: list[TaskRecord] = []
        for slot in range(slots):
            t0 = time.perf_counter()
            jobs = []
            for (_device, pos), gen in zip(self.devices, self.generators, strict=True):
                task = gen.next(slot)
                if task is None:
                    continue
                edge = self.edges[self._next_edge % len(self.edges)]
                self._next_edge += 1
                self._in_flight[task.task_id] = task
                jobs.append(self._pool.submit(self._one, task, pos, edge))
            slot_rows = [job.result() for job in jobs]
            for row in slot_rows:
                self._in_flight.pop(row.task_id, None)
            rows.extend(slot_rows)
            if progress is not None:
                progress(slot, slot_rows, (time.perf_counter() - t0) * 1e3)
        return rows

    def interrupted(self) -> list[TaskRecord]:
        """Ctrl-C or SIGTERM: a record for each task of the slot in flight."""
        detail = "the run was stopped (Ctrl-C or SIGTERM) in its slot"
        records = [
            failed_record(task, task.slot, FailureReason.INTERRUPTED, detail)
            for task in self._in_flight.values()
        ]
        self._in_flight.clear()
        return records

    def _one(self, task: Task, pos: tuple[float, float] | None, edge: StreamEdge) -> TaskRecord:
        row = new_record(task, task.slot)
        row.edge_id, row.share, row.download = edge.edge_id, 1.0, True
        try:
            entry = self.catalog.get(task.model_id)
        except UnknownModel as exc:
            row.reason, row.detail = FailureReason.MODEL_UNKNOWN, str(exc)
            return row
        row.units = row.edge_units = units_for(
            task.size_mbit, task.density_cycles_per_bit, entry, self.cfg.tasks.flops_per_cycle
        )
        nbytes = int(task.size_mbit * 1e6 / 8)
        rate = None
        if self.cfg.emulation.links_paced(self.cfg.inventory.remote) and pos is not None:
            d = distance_m(pos, edge.position_m)
            rate = float(shannon_rate_mbps(self.cfg.agents.transmit_power_w, d, self.cfg.links))
        request = EdgeTaskRequest(
            task_id=task.task_id, model=ModelRef(task.model_id), units=row.units, download=True,
            agent_id=task.agent_id, task_type=task.task_type, share=1.0, steps=task.steps or 0,
            data_bytes=nbytes, slot=task.slot, upload_rate_mbps=rate or 0.0,
        )  # fmt: skip
        sub = self.clients[edge.edge_id].submit(
            request, task_data(task.task_id, nbytes), timeout_s=self.cfg.run.task_timeout_s,
            pacer=Pacer(rate),
        )  # fmt: skip
        add_edge_share(row, sub, self.cfg.agents.transmit_power_w)
        row.latency_ms = sub.round_trip_s * 1e3
        return judge(row, edge_results=[sub.result])
