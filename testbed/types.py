"""Domain types shared by every node: outcomes, failure reasons, energy labels.

These are the Python side of the enums in proto/testbed/v1/common.proto; only
`testbed.serde` converts between the two. Values are the lower-case names used in
task records, summaries, telemetry and docs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class NodeKind(enum.StrEnum):
    AGENT = "agent"
    EDGE = "edge"
    CLOUD = "cloud"
    COORDINATOR = "coordinator"


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"


class FailureReason(enum.StrEnum):
    NONE = "none"
    DEADLINE = "deadline"
    EDGE_UNREACHABLE = "edge_unreachable"
    MODEL_MISSING = "model_missing"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    TIMEOUT = "timeout"
    MODEL_TOO_LARGE = "model_too_large"
    CACHE_FULL = "cache_full"
    MODEL_UNKNOWN = "model_unknown"
    FETCH_FAILED = "fetch_failed"
    LOAD_FAILED = "load_failed"
    QUEUE_FULL = "queue_full"
    INVALID_REQUEST = "invalid_request"
    INTERNAL = "internal"
    SHUTTING_DOWN = "shutting_down"
    LOCAL_FAILED = "local_failed"
    NO_TASK_SLOT = "no_task_slot"
    AGENT_UNREACHABLE = "agent_unreachable"
    RECORD_MISSING = "record_missing"
    CANCELLED = "cancelled"
    DISK_FULL = "disk_full"
    INTERRUPTED = "interrupted"


class EnergyMethod(enum.StrEnum):
    """How an energy figure was obtained (docs/energy.md)."""

    NVML_COUNTER = "nvml_counter"
    NVML_POWER = "nvml_power"
    JETSON_RAILS = "jetson_rails"
    RAPL = "rapl"
    ESTIMATED = "estimated"
    MODELED = "modeled"


class EnergyPartName(enum.StrEnum):
    """The parts of a task's energy, each measured (or modelled) on its own."""

    LOCAL_COMPUTE = "local_compute"  # the board's share, on the board
    TX = "tx"  # the board's radio, uploading the offloaded share
    CLOUD_TX = "cloud_tx"  # the cloud sending a missing model to the edge
    EDGE_LOAD = "edge_load"  # the edge loading a model into its runtime
    EDGE_WARMUP = "edge_warmup"  # the edge's first invocation of a freshly loaded model
    EDGE_COMPUTE = "edge_compute"  # the edge's share, on the edge


@dataclass(frozen=True, slots=True)
class EnergyPart:
    """The energy of one part of a task (e.g. "compute", "load", "tx"), with its method."""

    part: str
    energy_j: float
    method: EnergyMethod


class TestbedError(Exception):
    """A failure that ends a task with a reason (never a crash of the node)."""

    __test__ = False

    def __init__(self, reason: FailureReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail
