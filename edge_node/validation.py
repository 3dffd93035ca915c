"""What an edge accepts in a task header, checked before any of the task's data is read.

`validate_task_header` is a pure function of the header and the edge's `TaskLimits`:
it raises `InvalidTaskRequest` naming every field that is out of bounds (and the config
key of the bound), and nothing else, whatever the header holds (fuzzed in
tests/unit/test_task_validation.py). The servicer answers it with INVALID_ARGUMENT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from testbed.config import EdgeSpec
from testbed.messages import EdgeTaskRequest, ModelRef
from testbed.zoo.catalog import model_name_problem

MAX_TASK_ID_CHARS = 256
"""Task ids are `<agent>/<sequence>`-like; far shorter than this in practice."""


class InvalidTaskRequest(ValueError):
    """A task the edge refuses to start; the message says which field and why."""


@dataclass(frozen=True)
class TaskLimits:
    """The bounds of one task on an edge (from `edges.*` in the config)."""

    max_steps: int
    max_units: int
    max_data_bytes: int
    max_output_bytes: int = 0

    @classmethod
    def of(cls, spec: EdgeSpec) -> TaskLimits:
        return cls(spec.max_steps, spec.max_units, int(spec.max_task_data_mb * 1e6),
                   int(spec.max_output_kb * 1e3))  # fmt: skip


def validate_task_header(request: EdgeTaskRequest, limits: TaskLimits) -> None:
    """Raise `InvalidTaskRequest` listing every field of `request` outside `limits`."""
    problems = [
        *_task_id_problems(request.task_id),
        *_model_problems(request.model),
        *_share_problems(request.share),
        *_count_problems("units", request.units, limits.max_units, "edges.max_units"),
        *_count_problems("steps", request.steps, limits.max_steps, "edges.max_steps"),
        *_count_problems(
            "data_bytes", request.data_bytes, limits.max_data_bytes, "edges.max_task_data_mb"
        ),
        *_count_problems(
            "max_output_bytes",
            request.max_output_bytes,
            limits.max_output_bytes,
            "edges.max_output_kb",
        ),
    ]
    if problems:
        raise InvalidTaskRequest("; ".join(problems))


def _task_id_problems(task_id: Any) -> list[str]:
    if not isinstance(task_id, str):
        return [f"task_id must be a string, got {type(task_id).__name__}"]
    if not task_id:
        return ["task_id is empty"]
    if len(task_id) > MAX_TASK_ID_CHARS:
        return [f"task_id is longer than {MAX_TASK_ID_CHARS} characters"]
    if not task_id.isprintable():
        return ["task_id has characters that are not printable"]
    return []


def _model_problems(model: Any) -> list[str]:
    if not isinstance(model, ModelRef):
        return [f"model must be a model reference, got {type(model).__name__}"]
    problems = []
    for what, value, empty_ok in (("id", model.model_id, False), ("version", model.version, True)):
        if not isinstance(value, str):
            problems.append(f"model {what} must be a string, got {type(value).__name__}")
        elif not (empty_ok and value == "") and (why := model_name_problem(value)):
            problems.append(f"model {what} {_short(value)}: {why}")
    return problems


def _share_problems(share: Any) -> list[str]:
    if isinstance(share, bool) or not isinstance(share, int | float):
        return [f"share must be a number, got {type(share).__name__}"]
    if math.isnan(share) or not 0.0 <= share <= 1.0:
        return [f"share {share!r} is outside [0, 1]"]
    return []


def _count_problems(name: str, value: Any, bound: int, key: str) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"{name} must be an integer, got {type(value).__name__}"]
    if value < 0:
        return [f"{name} {value} < 0"]
    if value > bound:
        return [f"{name} {value} > {bound} ({key})"]
    return []


def _short(value: Any) -> str:
    """A remote value for a message: its repr, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."
