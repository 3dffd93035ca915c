"""The kinds of JSON payload on the MQTT topic tree (testbed/topics.py), each named in
the payload's own `schema` field and described by `docs/schemas/<kind>.v1.json`.

A reader picks the schema from the field, never from the topic, so that a tool
subscribed to `{p}/{b}/#` can check or route every message alone. The only payloads
without the field are the node status (plain `online` / `offline` text, kept plain for
tools such as `mosquitto_sub`) and the model feed's binary frames (testbed/feed.py).
"""

from __future__ import annotations

import enum
import json
from typing import Any

SCHEMA_KEY = "schema"


class PayloadSchema(enum.StrEnum):
    """`<kind>/v<version>`: a change that breaks readers makes a new version."""

    TELEMETRY = "telemetry/v1"
    EVENT = "event/v1"
    EDGE_STATE = "edge-state/v1"
    TASK_RECORD = "task-record/v1"
    CATALOG = "catalog/v1"
    FETCH_REQUEST = "fetch-request/v1"

    @property
    def file_name(self) -> str:
        """Its JSON Schema's file in docs/schemas/ (`edge-state/v1` -> edge-state.v1.json)."""
        return self.value.replace("/", ".") + ".json"


def stamped(schema: PayloadSchema, body: dict[str, Any]) -> dict[str, Any]:
    """`body` with its `schema` field first."""
    return {SCHEMA_KEY: schema.value, **body}


def stamped_json(schema: PayloadSchema, text: str | bytes) -> str:
    """A JSON object's text with its `schema` field added (compact)."""
    return json.dumps(stamped(schema, json.loads(text)), separators=(",", ":"))


def unstamped(raw: dict[str, Any]) -> dict[str, Any]:
    """A parsed payload without its `schema` field (for dataclasses that do not keep it)."""
    return {k: v for k, v in raw.items() if k != SCHEMA_KEY}
