"""The `coedge:` section of `testbed.yaml`: the system of docs/papers.md §B — base
stations, each with one edge server, scheduling AIGC task workloads over all the
servers in clocked slots (docs/coedge.md).

Defaults are the ones docs/papers.md §B gives for the author's sibling simulations
(five servers at 10–90 GHz, 400–500 Mbit/s core links, D 2–5 Mbit, C 100–300
cycles/bit, Δ = 1 s, up to 50 tasks per station and slot, deadline 1 s, penalty
−10·deadline); the arrival probability and the episode length are this project's
choices (docs/coedge.md, "Reconstructed and chosen").
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass, field

from testbed.config.limits import COUNT_MAX, STEPS_MAX
from testbed.schema import meta

MAX_STATIONS = 64
"""Most base stations (= edge servers) of one system."""
MAX_SUBSET_STATIONS = 16
"""Most stations in `subset` mode: 2^B − 1 actions, 65 535 at 16."""
MAX_TOPK_ACTIONS = 1 << 16
"""Most actions (k-subsets of the stations, C(B, k)) in `topk` mode."""


class CoedgeActionMode(enum.StrEnum):
    """What one scheduling decision picks for a task (docs/coedge.md, "Actions")."""

    ONE = "one"
    """One edge server (DRLCoEdge, DDRL-ATS): B actions."""
    SUBSET = "subset"
    """Any non-empty set of servers (DDRL-AMSA): 2^B − 1 actions."""
    TOPK = "topk"
    """A set of exactly k servers (SMCoEdge; AMSA beyond 6 servers): C(B, k) actions."""


def _default_edge_ghz() -> list[float]:
    return [10.0, 30.0, 50.0, 70.0, 90.0]


@dataclass(frozen=True)
class CoedgeConfig:
    edge_ghz: list[float] = field(
        default_factory=_default_edge_ghz,
        metadata=meta(
            "Compute capacity f_j of each base station's edge server (one station per entry).",
            gt=0, le=1e6, min_len=1, max_len=MAX_STATIONS,
        ),
    )  # fmt: skip
    link_mbps: list[list[float]] = field(
        default_factory=list,
        metadata=meta(
            "Core-network rate r_bj, a B×B matrix (the diagonal is unused: the home "
            "server needs no transfer); empty: drawn from link_mbps_range.",
            gt=0, le=1e9, max_len=MAX_STATIONS,
        ),
    )  # fmt: skip
    link_mbps_range: tuple[float, float] = field(
        default=(400.0, 500.0),
        metadata=meta("Range r_bj is drawn from (symmetric, master seed).", gt=0, le=1e9),
    )
    slot_s: float = field(
        default=1.0, metadata=meta("Slot length Δ: the queues drain f_j·Δ per slot.", gt=0, le=3600)
    )
    arrival_prob: float = field(
        default=0.5,
        metadata=meta("Chance p that each of max_tasks tasks arrives in a slot.", gt=0, le=1),
    )
    max_tasks: int = field(
        default=50, metadata=meta("Most tasks per station and slot.", ge=1, le=COUNT_MAX)
    )
    size_mbit: tuple[float, float] = field(
        default=(2.0, 5.0), metadata=meta("Task size D, drawn uniformly.", gt=0, le=1e6)
    )
    density_cycles_per_bit: tuple[float, float] = field(
        default=(100.0, 300.0),
        metadata=meta("Computational density C, drawn uniformly.", gt=0, le=1e9),
    )
    deadline_s: float = field(
        default=1.0, metadata=meta("A task later than this is penalised.", gt=0, le=86400)
    )
    deadline_penalty: float = field(
        default=10.0,
        metadata=meta("A late task's reward is −deadline_penalty × deadline_s.", ge=0, le=1e6),
    )
    action_mode: CoedgeActionMode = field(
        default=CoedgeActionMode.SUBSET,
        metadata=meta("one (ATS, DRLCoEdge), subset (AMSA) or topk (SMCoEdge)."),
    )
    top_k: int = field(
        default=3, metadata=meta("Servers per task in topk mode.", ge=1, le=MAX_STATIONS)
    )
    episode_slots: int = field(
        default=20, metadata=meta("Slots per episode of the twin.", ge=1, le=STEPS_MAX)
    )
    calibration: str | None = field(
        default=None,
        metadata=meta(
            "§B calibration.json from `testbed calibrate` (run.system: coedge): the twin "
            "takes its effective f_j, r_bj and per-share fixed costs; null: edge_ghz and "
            "the rates above, no fixed cost.",
            path=True,
        ),
    )

    @property
    def num_stations(self) -> int:
        return len(self.edge_ghz)

    def check(self) -> list[tuple[str, str]]:
        problems = []
        b = self.num_stations
        for key in ("link_mbps_range", "size_mbit", "density_cycles_per_bit"):
            lo, hi = getattr(self, key)
            if lo > hi:
                problems.append((key, f"expected low ≤ high, got [{lo}, {hi}]"))
        if self.link_mbps and (
            len(self.link_mbps) != b or any(len(row) != b for row in self.link_mbps)
        ):
            problems.append(("link_mbps", f"expected a {b}×{b} matrix (one row per edge_ghz)"))
        if self.action_mode is CoedgeActionMode.SUBSET and b > MAX_SUBSET_STATIONS:
            why = f"subset mode has 2^B − 1 actions: at most {MAX_SUBSET_STATIONS} stations"
            problems.append(("action_mode", f"{why}, got {b}; use topk"))
        if self.action_mode is CoedgeActionMode.TOPK:
            if self.top_k > b:
                problems.append(("top_k", f"expected ≤ {b} (stations), got {self.top_k}"))
            elif math.comb(b, self.top_k) > MAX_TOPK_ACTIONS:
                count = math.comb(b, self.top_k)
                problems.append(("top_k", f"C({b}, {self.top_k}) = {count} actions: too many"))
        return problems

    def rate_matrix_mbps(self, seed: int) -> list[list[float]]:
        """r_bj: `link_mbps` as given, else drawn uniformly from `link_mbps_range`,
        symmetric (one cable each way), from the master seed; the diagonal is inf (the
        home server takes the task without a transfer)."""
        b = self.num_stations
        if self.link_mbps:
            rates = [list(map(float, row)) for row in self.link_mbps]
        else:
            rng = random.Random(f"{seed}/coedge-links")
            rates = [[0.0] * b for _ in range(b)]
            lo, hi = self.link_mbps_range
            for i in range(b):
                for j in range(i + 1, b):
                    rates[i][j] = rates[j][i] = round(rng.uniform(lo, hi), 3)
        for i in range(b):
            rates[i][i] = math.inf
        return rates
