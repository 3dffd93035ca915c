"""Events and task records on MQTT, as they happen (docs/telemetry.md).

`{p}/{b}/events/{node}` carries `event/v1`: a time, the node, a kind (`EventKind`) and
the kind's fields; `{p}/{b}/tasks/{agent}` carries `task-record/v1`: a finished task's
TaskRecord (testbed/messages.py), published by the agent that generated it.

Publishing never waits for the broker: a message goes at QoS 1 into the client's
bounded queue (testbed/mqtt.py), which drops it when full, so a slow or absent broker
costs events, never task work. Nothing here is retained: an event is a fact of its
moment, a late subscriber reads the run folder for the past.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Sequence
from typing import Any

from testbed.messages import TaskRecord
from testbed.mqtt import MqttClient
from testbed.payloads import PayloadSchema, stamped
from testbed.topics import Topics
from testbed.types import Outcome

log = logging.getLogger(__name__)


class EventKind(enum.StrEnum):
    NODE_UP = "node_up"
    NODE_DOWN = "node_down"
    MODEL_FETCH_STARTED = "model_fetch_started"
    MODEL_FETCH_FINISHED = "model_fetch_finished"
    MODEL_FETCH_FAILED = "model_fetch_failed"
    MODEL_EVICTED = "model_evicted"
    CHECKSUM_FAILURE = "checksum_failure"
    TASK_FAILED = "task_failed"
    POLICY_LOADED = "policy_loaded"
    SLOT_FINISHED = "slot_finished"


def event_payload(node_id: str, kind: EventKind, fields: dict[str, Any]) -> dict[str, Any]:
    """The `event/v1` payload (docs/schemas/event.v1.json)."""
    body = {"ts_unix_s": round(time.time(), 3), "node_id": node_id, "kind": kind.value}
    return stamped(PayloadSchema.EVENT, {**body, "fields": fields})


def task_record_payload(record: TaskRecord) -> dict[str, Any]:
    """The `task-record/v1` payload: every field of the TaskRecord, plus its energy."""
    body = dataclasses.asdict(record)
    body["outcome"], body["reason"] = record.outcome.value, record.reason.value
    body["energy_j"] = record.energy_j
    return stamped(PayloadSchema.TASK_RECORD, body)


class EventPublisher:
    """One node's events and (for an agent) its task records."""

    def __init__(self, client: MqttClient, topics: Topics, node_id: str) -> None:
        self._client = client
        self._node_id = node_id
        self._events_topic = topics.events(node_id)
        self._tasks_topic = topics.tasks(node_id)

    def emit(self, kind: EventKind, **fields: Any) -> None:
        """Publish one event now (never blocks; dropped when the queue is full)."""
        try:
            self._client.publish_json(
                self._events_topic, event_payload(self._node_id, kind, fields)
            )
        except Exception:  # an event must never break the work it reports on
            log.exception("publishing event %s failed", kind.value)

    def task_records(self, records: Sequence[TaskRecord]) -> None:
        """Publish each finished task's record, and a `task_failed` event for each failure."""
        for record in records:
            try:
                self._client.publish_json(self._tasks_topic, task_record_payload(record))
            except Exception:
                log.exception("publishing the record of %s failed", record.task_id)
            if record.outcome is not Outcome.COMPLETED:
                self.emit(
                    EventKind.TASK_FAILED, task_id=record.task_id,
                    outcome=record.outcome.value, reason=record.reason.value,
                    detail=record.detail,
                )  # fmt: skip
