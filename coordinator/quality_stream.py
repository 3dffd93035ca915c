"""The users of the §C live run (docs/quality-live.md): each slot's requests, drawn
from the config and a seed alone, and the record each request ends in.

A request is a category (drawn with `allocation.categories[].weight`), the condition
its user asks for (testbed/quality/conditions.py: the digit, and the thickness and
slant terciles its category fixes, each uniform) and the model the assignment gives it
(a row of the assignment matrix, testbed/allocation/assignment.py). Everything is a
function of (master seed, `quality.live.seed`, slot): the coordinator can say which
requests a slot owes before it sends any, and two runs of one seed send the same.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from testbed.allocation.assignment import sample_assignment, sample_categories
from testbed.config import TestbedConfig
from testbed.quality.conditions import BINS, CONDITION_SIZE, DIGITS, ImageProperties, encode
from testbed.types import FailureReason, Outcome

SEED_DOMAIN = 0x5143  # "QC": keeps the stream's draws apart from other uses of the seed


@dataclass(frozen=True)
class QualityRequest:
    """One user's request in one slot."""

    task_id: str
    slot: int
    category: str
    category_index: int
    model: str
    """The allocation's name of the assigned model (allocation.models)."""
    model_id: str
    """That model's zoo id (quality.live.model_ids)."""
    condition: np.ndarray = field(compare=False, repr=False)
    """(CONDITION_SIZE,) of ±1: what the request asks for; its payload bytes."""


def slot_rng(cfg: TestbedConfig, slot: int) -> np.random.Generator:
    """The generator of slot `slot`'s draws: a function of the seeds and the slot only."""
    return np.random.default_rng([SEED_DOMAIN, cfg.seed, cfg.quality.live.seed, slot])


def draw_requests(cfg: TestbedConfig, slot: int, matrix: Any) -> list[QualityRequest]:
    """Slot `slot`'s `quality.live.requests_per_slot` requests, assigned with the (C, M)
    assignment `matrix` (rows: quality.categories; columns: allocation.models)."""
    live = cfg.quality.live
    rng = slot_rng(cfg, slot)
    n = live.requests_per_slot
    weights = [c.weight for c in cfg.allocation.categories]
    categories = sample_categories(weights, n, rng)
    props = ImageProperties(
        rng.integers(0, DIGITS, n), rng.integers(0, BINS, n), rng.integers(0, BINS, n)
    )
    rows = []
    for c, category in enumerate(cfg.quality.categories):  # one encode per category
        mask = np.flatnonzero(categories == c)
        rows.append((mask, encode(props.take(mask), category, rng)))
    conditions = np.zeros((n, CONDITION_SIZE), dtype=np.float32)
    for mask, cond in rows:
        conditions[mask] = cond
    models = sample_assignment(categories, matrix, rng)
    names = cfg.allocation.models
    return [
        QualityRequest(
            task_id=f"users/s{slot:06d}/r{i:04d}",
            slot=slot,
            category=cfg.quality.categories[int(categories[i])].name,
            category_index=int(categories[i]),
            model=names[int(models[i])],
            model_id=live.model_ids[names[int(models[i])]],
            condition=conditions[i],
        )
        for i in range(n)
    ]


@dataclass
class QualityRecord:
    """One request's measured life: exactly one per request (times in ms)."""

    task_id: str
    slot: int
    category: str
    model: str
    model_id: str
    steps: int
    """Denoising steps the request ran with (sent in its header)."""
    compute_share: float
    """φ of its model in its slot (the allocation set on the edge; 0: none set)."""
    outcome: Outcome = Outcome.FAILED
    reason: FailureReason = FailureReason.NONE
    detail: str = ""
    latency_ms: float = 0.0
    """Request sent to its result back: what the user waited."""
    t_edge_queue_ms: float = 0.0
    t_edge_compute_ms: float = 0.0
    score: float = math.nan
    """The evaluator's score of the returned sample (nan: none, the request failed)."""
    score_method: str = ""
    """Which evaluator scored it (`builtin:digits-eval@1`, `operator_clip:FILE`)."""
    output_sha256: str = ""

    @property
    def completed(self) -> bool:
        return self.outcome is Outcome.COMPLETED

    def utility(self, latency_weight_per_s: float) -> float:
        """S − λ·T of this request; a failed request scores 0 (this project's choice)."""
        score = self.score if self.completed and math.isfinite(self.score) else 0.0
        return score - latency_weight_per_s * self.latency_ms / 1e3


RECORD_FIELDS = [f.name for f in dataclasses.fields(QualityRecord)]
"""The columns of the quality run's tasks.csv."""


def record_row(record: QualityRecord) -> dict[str, Any]:
    row = dataclasses.asdict(record)
    row["outcome"] = record.outcome.value
    row["reason"] = record.reason.value
    return row


def record_from_row(row: dict[str, str]) -> QualityRecord:
    """A record back from a tasks.csv row (`record_row`)."""
    kinds = {f.name: f.type for f in dataclasses.fields(QualityRecord)}
    values: dict[str, Any] = {}
    for name, text in row.items():
        kind = kinds[name]
        values[name] = (
            Outcome(text) if name == "outcome"
            else FailureReason(text) if name == "reason"
            else int(text) if kind == "int"
            else float(text) if kind == "float"
            else text
        )  # fmt: skip
    return QualityRecord(**values)


def failed(request: QualityRequest, steps: int, share: float, reason: FailureReason,
           detail: str) -> QualityRecord:  # fmt: skip
    """The record of a request that ended without a sample."""
    return QualityRecord(
        request.task_id, request.slot, request.category, request.model, request.model_id,
        steps, share, Outcome.FAILED, reason, detail,
    )  # fmt: skip
