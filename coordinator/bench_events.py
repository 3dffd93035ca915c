"""The coordinator's own events on `{p}/{b}/events/coordinator` (docs/telemetry.md):
`slot_finished` after each slot and `policy_loaded` when a board is sent its policy.

The coordinator logs in as `coordinator` (testbed/mqtt_auth.py), whom the broker's ACL
(testbed/broker_config.py) lets write only these events. Publishing goes through an
`EventPublisher` (testbed/events.py), which never waits for the broker; a broker that
cannot be reached at start costs the events, never the run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from testbed.config import TestbedConfig
from testbed.events import EventKind, EventPublisher
from testbed.messages import TaskRecord
from testbed.mqtt import MqttClient, MqttUnavailable
from testbed.mqtt_auth import COORDINATOR_ID, node_broker_address
from testbed.topics import Topics
from testbed.types import Outcome

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
"""How long the bench waits for the broker before running without its events, in s."""


class CoordinatorEvents:
    """The coordinator's event publisher; silent (every call a no-op) when not connected."""

    def __init__(self, client: MqttClient | None, topics: Topics) -> None:
        self._client = client
        self._publisher = EventPublisher(client, topics, COORDINATOR_ID) if client else None

    @classmethod
    def silent(cls) -> CoordinatorEvents:
        return cls(None, Topics())

    @classmethod
    def connect(cls, cfg: TestbedConfig, broker_url: str) -> CoordinatorEvents:
        """Connected to the bench's broker at `broker_url`, or silent when it cannot be."""
        if not broker_url:
            return cls.silent()
        address = node_broker_address(broker_url, cfg, COORDINATOR_ID)
        client = MqttClient(address, f"{COORDINATOR_ID}-events")
        try:
            client.connect(CONNECT_TIMEOUT_S)
        except MqttUnavailable as exc:
            log.warning("the coordinator's events are off: %s", exc)
            return cls.silent()
        return cls(client, Topics.of(cfg))

    def slot_finished(self, slot: int, records: Sequence[TaskRecord], wall_ms: float) -> None:
        if self._publisher is None:
            return
        completed = sum(1 for r in records if r.outcome is Outcome.COMPLETED)
        self._publisher.emit(
            EventKind.SLOT_FINISHED, slot=slot, tasks=len(records), completed=completed,
            wall_ms=round(wall_ms, 3),
        )  # fmt: skip

    def policy_loaded(self, policy: str, agents: Sequence[str]) -> None:
        if self._publisher is not None:
            self._publisher.emit(EventKind.POLICY_LOADED, policy=policy, agents=list(agents))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client, self._publisher = None, None
