"""The §C system on the live bench (docs/quality-live.md): the coordinator plays the
users of one edge server that runs several generators at once with compute shares
(edge_node/share_executor.py).

Before slot 0 it times each model alone on the edge (`calibrate`) and fits the latency
curve g_m(k, φ) to those requests; the score curves come from the zoo's gate
(coordinator/quality_plan.py). Each slot (`run_slot`): the slot's requests are drawn
and assigned (coordinator/quality_stream.py), the allocation is planned on the fitted
curves and set on the edge with SetAllocation (or the edge's own, `fixed`), every
request is sent at once with its condition as payload and its steps in the header,
asking its sample back; the slot ends when every request has a result. Each returned
sample is checked against the edge's sha256 of it and scored off the measured path
(after its latency was taken) by the evaluator plug-in. Every request ends in exactly
one `QualityRecord`: a transport failure is an outcome (testbed/edge_client.py), and
`interrupted` records the requests of a slot stopped by Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.launcher import Launcher
from coordinator.quality_plan import SlotPlan, calibration_steps, plan_slot
from coordinator.quality_stream import QualityRecord, QualityRequest, draw_requests, failed
from testbed.allocation import (
    LatencyCurve,
    LatencyFit,
    ModelProfile,
    fit_latency,
    task_counts,
)
from testbed.config import AllocationMethod, EdgeSpec, TestbedConfig
from testbed.edge_client import EdgeClient, Submission
from testbed.messages import EdgeTaskRequest, ModelRef
from testbed.quality.conditions import CONDITION_SIZE, IMAGE_SHAPE, to_payload
from testbed.quality.evaluator import Evaluator, EvaluatorInputError
from testbed.security.credentials import coordinator_identity
from testbed.types import FailureReason, Outcome
from testbed.zoo.catalog import Catalog

log = logging.getLogger(__name__)

SAMPLE_BYTES = int(np.prod(IMAGE_SHAPE)) * 4
"""One generated 8 × 8 sample as the edge returns it: float32."""
USERS_ID = "users"
"""The agent id the coordinator's requests carry."""


@dataclass
class SlotOutcome:
    """A finished slot: its records and its row of slots.csv."""

    slot: int
    records: list[QualityRecord]
    row: dict[str, Any] = field(default_factory=dict)


def serving_edge(cfg: TestbedConfig) -> EdgeSpec:
    """The edge of `quality.live.edge` (the first edge when empty)."""
    specs = cfg.edge_specs()
    wanted = cfg.quality.live.edge
    return next(s for s in specs if s.id == wanted) if wanted else specs[0]


class QualityBench:
    """A cloud and one edge with the share executor; the coordinator sends the requests."""

    def __init__(self, cfg: TestbedConfig, run_dir: Path, config_path: Path, zoo_dir: Path,
                 catalog: Catalog, evaluator: Evaluator, matrix: Any) -> None:  # fmt: skip
        self.cfg, self.catalog, self.evaluator, self.matrix = cfg, catalog, evaluator, matrix
        self.spec = serving_edge(cfg)
        self.launcher = Launcher(cfg, run_dir, config_path, zoo_dir=zoo_dir)
        self.client: EdgeClient | None = None
        self.models: tuple[ModelProfile, ...] = ()
        self._pool = ThreadPoolExecutor(max(4, cfg.quality.live.requests_per_slot),
                                        thread_name_prefix="users")  # fmt: skip
        self._in_flight: list[tuple[QualityRequest, int, float]] = []
        self._lat = cfg.allocation.latency_weight_per_s
        self.latency_fits: dict[str, LatencyFit] = {}

    def start(self) -> None:
        self.launcher.check_ports()
        self.launcher.start_broker()
        cloud = self.launcher.start_cloud()
        self.launcher.wait_ready([cloud])
        edge = self.launcher.start_edge(self.spec)
        self.launcher.wait_ready([edge])
        address = self.launcher.nodes[self.spec.id].address
        self.client = EdgeClient(address, self.spec.id, coordinator_identity(self.cfg))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.client is not None:
            self.client.close()
        self.launcher.stop_all()

    # ------------------------------------------------------------------ requests

    def _send(self, request: QualityRequest, steps: int) -> Submission:
        assert self.client is not None, "start() first"
        payload = to_payload(request.condition[None, :])
        header = EdgeTaskRequest(
            task_id=request.task_id, model=ModelRef(request.model_id), units=1, download=True,
            agent_id=USERS_ID, task_type=request.category, share=1.0, steps=steps,
            data_bytes=len(payload), slot=max(request.slot, 0),
            max_output_bytes=int(self.cfg.quality.live.max_output_kb * 1e3),
        )  # fmt: skip
        return self.client.submit(header, payload, timeout_s=self.cfg.run.task_timeout_s)

    def _serve(
        self, request: QualityRequest, steps: int, share: float
    ) -> tuple[QualityRecord, np.ndarray | None]:
        """Send one request and take its latency; its sample if it came back whole (the
        bytes the edge's output_sha256 names), to be scored after the slot."""
        sub = self._send(request, steps)
        result = sub.result
        record = failed(request, steps, share, result.reason, result.detail)
        record.latency_ms = sub.round_trip_s * 1e3
        record.t_edge_queue_ms = result.timing.queue_ms
        record.t_edge_compute_ms = result.timing.compute_ms
        record.output_sha256 = result.output_sha256.hex()
        if result.outcome is not Outcome.COMPLETED:
            return record, None
        outputs = result.outputs
        if len(outputs) != SAMPLE_BYTES or hashlib.sha256(outputs).digest() != result.output_sha256:
            record.reason = FailureReason.CHECKSUM_MISMATCH
            record.detail = (f"the returned outputs ({len(outputs)} bytes) are not the "
                             f"{SAMPLE_BYTES}-byte sample its output_sha256 names")  # fmt: skip
            return record, None
        return record, np.frombuffer(outputs, dtype=np.float32).reshape(IMAGE_SHAPE)

    def _score(self, served: list[tuple[QualityRecord, np.ndarray | None]],
               requests: list[QualityRequest]) -> list[QualityRecord]:  # fmt: skip
        """Score the slot's returned samples in one evaluator call, after every latency
        was taken (the scoring never competes with the edge for the host)."""
        kept = [i for i, (_, image) in enumerate(served) if image is not None]
        records = [record for record, _ in served]
        if not kept:
            return records
        images = np.stack([image for _, image in served if image is not None])
        conditions = np.stack([requests[i].condition for i in kept])
        try:
            scores = self.evaluator.score(images, conditions)
        except EvaluatorInputError as exc:
            for i in kept:
                records[i].reason = FailureReason.INTERNAL
                records[i].detail = f"evaluator refused the slot's samples: {exc}"
            return records
        for i, score in zip(kept, scores, strict=True):
            record = records[i]
            record.score, record.score_method = float(score), self.evaluator.method
            record.outcome, record.reason = Outcome.COMPLETED, FailureReason.NONE
        return records

    # ------------------------------------------------------------------ calibration

    def calibrate(self) -> dict[str, Any]:
        """Time each model alone at its calibration steps (after one warm-up request,
        which also fetches it) and fit g_m(k, φ = 1); the points and fits, by model id."""
        fits: dict[str, LatencyFit] = {}
        report: dict[str, Any] = {}
        live = self.cfg.quality.live
        for model in self.cfg.allocation.models:
            model_id = live.model_ids[model]
            steps_list = calibration_steps(self.cfg, model)
            points: list[tuple[int, float]] = []
            for i in range(1 + live.calibration_requests * len(steps_list)):
                steps = steps_list[max(i - 1, 0) % len(steps_list)]
                request = QualityRequest(f"calibration/{model_id}/{i:04d}", -1, "calibration",
                                         -1, model, model_id, _any_condition())  # fmt: skip
                result = self._send(request, steps).result
                if result.outcome is not Outcome.COMPLETED:
                    raise RuntimeError(f"calibration request of {model_id} failed: "
                                       f"{result.reason.value} {result.detail}")  # fmt: skip
                if i > 0:  # the first one warmed up (and fetched) the model
                    points.append((steps, result.timing.compute_ms / 1e3))
            k, t = zip(*points, strict=True)
            fits[model_id] = fit_latency(k, [1.0] * len(k), t)
            curve = fits[model_id].curve
            report[model_id] = {"points": [{"steps": s, "compute_s": c} for s, c in points],
                                "fixed_s": curve.fixed_s, "per_step_s": curve.per_step_s,
                                "r_squared": fits[model_id].r_squared}  # fmt: skip
        self.latency_fits = fits
        return report

    def use_calibration(self, path: Path) -> dict[str, Any]:
        """Plan with another run's latency fits (its calibration.json, e.g. the first run
        of the seed, so every method of a seed plans on the same curves); this run's own
        calibration stays measured beside them as a check. What calibration.json records."""
        self.latency_fits = shared_latency_fits(path, list(self.latency_fits))
        return {"from": str(path), **{m: {"fixed_s": f.curve.fixed_s,
                                          "per_step_s": f.curve.per_step_s}
                                      for m, f in self.latency_fits.items()}}  # fmt: skip

    # ------------------------------------------------------------------ slots

    def _allocation(self, counts: tuple[int, ...]) -> SlotPlan:
        """Plan the slot and set it on the edge; `fixed`: the edge's own allocation."""
        names, live = self.cfg.allocation.models, self.cfg.quality.live
        ids = [live.model_ids[m] for m in names]
        if live.allocation_method is AllocationMethod.FIXED:
            steps = tuple(self.spec.model_steps.get(i) or self.catalog.get(i).default_steps
                          for i in ids)  # fmt: skip
            shares = tuple(self.spec.model_shares.get(i, 0.0) for i in ids)
            return SlotPlan(steps, shares, math.nan, 0.0)
        plan = plan_slot(self.cfg, self.models, counts)
        assert self.client is not None
        op = self.client.set_allocation(
            {i: s for i, s in zip(ids, plan.shares, strict=True) if s > 0},
            dict(zip(ids, plan.steps, strict=True)),
        )
        if not op.ok:
            raise RuntimeError(f"the edge refused the allocation: {op.reason.value} {op.detail}")
        return plan

    def run_slot(self, slot: int) -> SlotOutcome:
        t0 = time.perf_counter()
        requests = draw_requests(self.cfg, slot, self.matrix)
        names = self.cfg.allocation.models
        counts = task_counts([names.index(r.model) for r in requests], len(names))
        plan = self._allocation(counts)
        chosen = {m: (plan.steps[i], plan.shares[i]) for i, m in enumerate(names)}
        self._in_flight = [(r, *chosen[r.model]) for r in requests]
        jobs = [self._pool.submit(self._serve, r, k, phi) for r, k, phi in self._in_flight]
        served = [job.result() for job in jobs]
        self._in_flight = []
        records = self._score(served, requests)
        row = self._slot_row(slot, records, counts, plan, (time.perf_counter() - t0) * 1e3)
        return SlotOutcome(slot, records, row)

    def _slot_row(self, slot: int, records: list[QualityRecord], counts: tuple[int, ...],
                  plan: SlotPlan, wall_ms: float) -> dict[str, Any]:  # fmt: skip
        names = self.cfg.allocation.models
        done = [r for r in records if r.completed]
        return {
            "slot": slot, "requests": len(records), "completed": len(done),
            "tasks_per_model": _per_model(names, counts),
            "steps_per_model": _per_model(names, plan.steps),
            "share_per_model": _per_model(names, [round(s, 6) for s in plan.shares]),
            "utility": round(sum(r.utility(self._lat) for r in records), 6),
            "planned_utility": round(plan.planned_utility, 6),
            "mean_score": round(float(np.mean([r.score for r in done])), 6) if done else math.nan,
            "mean_latency_ms": round(float(np.mean([r.latency_ms for r in records])), 3),
            "plan_ms": round(plan.plan_ms, 3), "wall_ms": round(wall_ms, 3),
        }  # fmt: skip

    def interrupted(self) -> list[QualityRecord]:
        """Ctrl-C or SIGTERM: a record for each request of the slot in flight."""
        detail = "the run was stopped (Ctrl-C or SIGTERM) in its slot"
        out = [failed(r, k, phi, FailureReason.INTERRUPTED, detail)
               for r, k, phi in self._in_flight]  # fmt: skip
        self._in_flight = []
        return out


def shared_latency_fits(path: Path, model_ids: list[str]) -> dict[str, LatencyFit]:
    """The latency fits a run's calibration.json recorded (its `latency` section), for
    `model_ids`; ValueError if it lacks one."""
    try:
        section = json.loads(Path(path).read_text())["latency"]
        return {m: LatencyFit(LatencyCurve(float(section[m]["fixed_s"]),
                                           float(section[m]["per_step_s"])),
                              float(section[m]["r_squared"]), math.nan,
                              len(section[m]["points"]))
                for m in model_ids}  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: not a calibration.json with the latency of "
            f"{', '.join(model_ids)} ({type(exc).__name__}: {exc})"
        ) from None


def _per_model(names: list[str], values: Any) -> str:
    """`small=4;medium=5;large=3`: one CSV cell for a value per model."""
    return ";".join(f"{n}={v}" for n, v in zip(names, values, strict=True))


def _any_condition() -> np.ndarray:
    """A well-formed request for calibration (a basic "a 0"): its cost is any request's."""
    cond = np.full(CONDITION_SIZE, -1.0, dtype=np.float32)
    cond[0] = 1.0
    return cond
