"""`quality.live`: the system of docs/papers.md §C on the live bench (docs/quality-live.md).

The coordinator plays the users: each slot it draws `requests_per_slot` requests of
the categories of `quality.categories` (weighted by `allocation.categories[].weight`),
assigns each to a model (`assignment`), sets the slot's steps and compute shares on one
edge running `edges.executor: shares` (`allocation_method`), sends the requests, and
scores every returned sample with the evaluator. Every value here is this project's
choice: the paper's users, server and measurement are not available.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from testbed.config.allocation import NAME_PATTERN, AssignmentMethod
from testbed.config.limits import COUNT_MAX
from testbed.ids import NODE_ID_PATTERN
from testbed.schema import meta

MAX_OUTPUT_KB = 3000.0
"""Outputs travel in one TaskResult, under gRPC's 4 MiB message limit (testbed/daemon.py)."""


class AllocationMethod(enum.StrEnum):
    """How a slot's steps and compute shares are chosen (testbed/allocation/)."""

    SA = "sa"
    """Simulated annealing (`allocation.annealing`), the paper's."""
    EQUAL = "equal"
    """Equal-allocation: φ = 1/M, then the best steps for it."""
    OPTIMAL_STEP = "optimal_step"
    """Optimal-step: the best-score steps, then the best shares for them."""
    EXHAUSTIVE = "exhaustive"
    """The exact optimum on the step grid × the share grid."""
    FIXED = "fixed"
    """No allocation call: the edge's own `edges.model_shares` and `edges.model_steps`."""


def _default_model_ids() -> dict[str, str]:
    return {"small": "digits-s", "medium": "digits-m", "large": "digits-l"}


@dataclass(frozen=True)
class QualityLiveConfig:
    edge: str = field(
        default="",
        metadata=meta(
            "Node id of the edge that serves the requests (it must run edges.executor: "
            "shares); empty: the first edge.",
            pattern=f"(|{NODE_ID_PATTERN})",
        ),
    )  # fmt: skip
    model_ids: dict[str, str] = field(
        default_factory=_default_model_ids,
        metadata=meta(
            "The zoo's model id of each of allocation.models (the quality zoo's "
            "generators, docs/quality.md).",
            pattern=NAME_PATTERN,
        ),
    )  # fmt: skip
    requests_per_slot: int = field(
        default=12,
        metadata=meta("Requests the users send in each slot (all at the slot's start).",
                      ge=1, le=COUNT_MAX),
    )  # fmt: skip
    assignment: AssignmentMethod = field(
        default=AssignmentMethod.PROBABILISTIC,
        metadata=meta("probabilistic (the paper's), direct or random."),
    )
    allocation_method: AllocationMethod = field(
        default=AllocationMethod.SA,
        metadata=meta("sa (the paper's), equal, optimal_step, exhaustive or fixed."),
    )
    calibration_requests: int = field(
        default=3,
        metadata=meta(
            "Latency calibration before slot 0: requests per model at its fewest and "
            "most steps, alone on the edge (the latency curve g_m is fitted to them).",
            ge=1, le=1000,
        ),
    )  # fmt: skip
    max_output_kb: float = field(
        default=64.0,
        metadata=meta(
            "Generated outputs each request asks back (10^3 bytes; one 8 × 8 sample is "
            "0.256); at most the edge's edges.max_output_kb.",
            gt=0, le=MAX_OUTPUT_KB,
        ),
    )  # fmt: skip
    seed: int = field(
        default=0,
        metadata=meta("Offset of the request stream's seed from the master seed.", ge=0,
                      le=COUNT_MAX),
    )  # fmt: skip

    def check(self) -> list[tuple[str, str]]:
        ids = list(self.model_ids.values())
        if len(set(ids)) != len(ids):
            return [("model_ids", "expected a different model id for every model")]
        return []
