"""Which fetch requests the cloud serves: anyone can publish on the fetch topic, so
nothing in a request decides how much the cloud sends or how fast.

- Only the edges of the cloud's own config are served (an unknown edge id would also
  name a topic the cloud publishes on), each paced to its own configured cloud link
  rate r_cj (`edges.cloud_link_mbps`) when link emulation is on — never to a rate the
  request names.
- One transfer per (edge, model) at a time: a second request for a model already on
  its way to that edge is refused (the edge asks again for what it still misses once
  that transfer is done).
- At most `cloud.max_fetch_requests_per_edge` requests per edge in any
  `cloud.fetch_request_window_s` (a sliding window): a flood is refused, the edges'
  own requests (one per fetch, a few resumes) stay far below it.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from testbed.config import TestbedConfig
from testbed.feed import FetchRequest


class Refusal(enum.StrEnum):
    """Why a fetch request is not served."""

    UNKNOWN_EDGE = "unknown_edge"
    """The edge id is not an edge of the cloud's config."""
    TOO_MANY = "too_many"
    """The edge asked more than its share of the window."""
    BUSY = "busy"
    """That model is already on its way to that edge (another request id)."""
    REPEAT = "repeat"
    """The edge asked again, with the same request id, for a transfer under way."""


@dataclass(frozen=True)
class FeedLimits:
    pace_mbps: Mapping[str, float | None]
    """The edges the cloud serves → the rate it paces each one's transfers to, in
    Mbit/s (None: unpaced, link emulation off)."""
    max_requests: int
    """Requests one edge may make in `window_s`."""
    window_s: float

    @classmethod
    def from_config(cls, cfg: TestbedConfig) -> FeedLimits:
        links = cfg.emulation.links_paced(cfg.inventory.remote)
        return cls(
            pace_mbps={s.id: s.cloud_link_mbps if links else None for s in cfg.edge_specs()},
            max_requests=cfg.cloud.max_fetch_requests_per_edge,
            window_s=cfg.cloud.fetch_request_window_s,
        )


class RequestGate:
    """Admits fetch requests under `FeedLimits`; thread-safe. `admit` takes a transfer
    slot for the request's (edge, model); `release` gives it back."""

    def __init__(self, limits: FeedLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: dict[str, deque[float]] = {edge: deque() for edge in limits.pace_mbps}
        self._serving: dict[tuple[str, str], str] = {}  # (edge, model id) -> request id

    def admit(self, request: FetchRequest) -> Refusal | None:
        """None if `request` may be served now (its slot is taken), else why not."""
        recent = self._recent.get(request.edge_id)
        if recent is None:
            return Refusal.UNKNOWN_EDGE
        key = (request.edge_id, request.model.model_id)
        with self._lock:
            now = self._clock()
            while recent and recent[0] <= now - self.limits.window_s:
                recent.popleft()
            if len(recent) >= self.limits.max_requests:
                return Refusal.TOO_MANY
            recent.append(now)
            under_way = self._serving.get(key)
            if under_way is not None:
                return Refusal.REPEAT if under_way == request.request_id else Refusal.BUSY
            self._serving[key] = request.request_id
        return None

    def release(self, request: FetchRequest) -> None:
        """The transfer of `request` is over (sent, failed or refused after admission)."""
        with self._lock:
            key = (request.edge_id, request.model.model_id)
            if self._serving.get(key) == request.request_id:
                del self._serving[key]

    def pace_mbps(self, edge_id: str) -> float | None:
        return self.limits.pace_mbps.get(edge_id)
