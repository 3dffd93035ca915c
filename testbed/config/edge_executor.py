"""The edge keys of the share executor (docs/share-executor.md): which executor an edge
runs, how it lends idle shares, and each model's initial share and steps. A base of
`EdgeSettings` (testbed/config/bench.py), so they sit under `edges:` and per edge.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from testbed.config.limits import STEPS_MAX
from testbed.schema import meta

SHARE_SUM_TOLERANCE = 1e-9


class EdgeExecutorKind(enum.StrEnum):
    """How an edge orders its tasks."""

    FIFO = "fifo"  # arrival order
    SHARES = "shares"  # a compute share and a FIFO per model


class ShareMode(enum.StrEnum):
    WORK_CONSERVING = "work_conserving"  # an idle model's share goes to the others
    STRICT = "strict"  # a model never gets more than its share: the slots idle


@dataclass(frozen=True)
class EdgeExecutorSettings:
    executor: EdgeExecutorKind = field(
        default=EdgeExecutorKind.FIFO,
        metadata=meta("fifo (arrival order) or shares (a compute share per model)."),
    )
    share_mode: ShareMode = field(
        default=ShareMode.WORK_CONSERVING,
        metadata=meta("shares: work_conserving (idle shares lent) or strict (never more)."),
    )
    model_shares: dict[str, float] = field(
        default_factory=dict,
        metadata=meta("shares: φ per model id, Σ ≤ 1; unlisted models split the rest.", ge=0, le=1),
    )
    model_steps: dict[str, int] = field(
        default_factory=dict,
        metadata=meta("Denoising steps per model id for tasks that ask 0.", ge=1, le=STEPS_MAX),
    )

    def check(self) -> list[tuple[str, str]]:
        problems = []
        total = sum(self.model_shares.values())
        if total > 1.0 + SHARE_SUM_TOLERANCE:
            problems.append(("model_shares", f"expected shares summing to ≤ 1, got {total:.6g}"))
        max_steps = getattr(self, "max_steps", STEPS_MAX)  # EdgeSettings' bound
        too_many = {m: k for m, k in self.model_steps.items() if k > max_steps}
        if too_many:
            problems.append(("model_steps", f"expected ≤ max_steps {max_steps}: {too_many}"))
        return problems
