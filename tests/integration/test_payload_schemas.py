"""Every message on the bench's topic tree is what docs/schemas/ says: a plain paho
subscriber (no testbed code on the reading side) watches `{prefix}/{bench}/#` through a
short live run and checks each JSON payload against the schema its `schema` field names."""

from __future__ import annotations

import json
import threading
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from jsonschema import Draft202012Validator

from coordinator.live import LiveBench
from coordinator.policy_choice import PolicySource
from testbed.events import EventKind
from testbed.payloads import PayloadSchema
from testbed.topics import Topics

from ..waiting import wait_until
from .test_live_bench import make_bench

pytestmark = pytest.mark.slow

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


class PlainSubscriber:
    """A paho client that keeps every (topic, payload) it receives under a filter."""

    def __init__(self, url: str, topic_filter: str) -> None:
        host, port = url.removeprefix("mqtt://").rsplit(":", 1)
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="plain-watcher")
        self._client.on_message = self._on_message
        self._client.on_connect = lambda c, *_a: c.subscribe(topic_filter, qos=1)
        self._client.connect(host, int(port))
        self._client.loop_start()

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def seen(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def _json_of(payloads: list[tuple[str, bytes]], schema: PayloadSchema) -> list[dict]:
    out = []
    for _topic, payload in payloads:
        try:
            body = json.loads(payload)
        except ValueError:
            continue
        if isinstance(body, dict) and body.get("schema") == schema.value:
            out.append(body)
    return out


def _watch_a_short_run(bench: LiveBench, nodes: set[str]) -> list[tuple[str, bytes]]:
    """Everything published under the prefix from just after start until the bench is closed
    (the nodes stop while the watcher listens: their node_down events are in)."""
    watcher: PlainSubscriber | None = None
    try:
        bench.start(PolicySource("offload"))  # every task to an edge: fetches and evictions
        watcher = PlainSubscriber(bench.launcher.broker_url, f"{bench.cfg.broker.topic_prefix}/#")
        for slot in range(4):
            bench.step(slot)

        def of(schema: PayloadSchema) -> list[dict]:
            assert watcher is not None
            return _json_of(watcher.seen(), schema)

        assert wait_until(lambda: {b["node_id"] for b in of(PayloadSchema.TELEMETRY)} >= nodes)
        assert wait_until(lambda: len(of(PayloadSchema.TASK_RECORD)) >= 12)  # 3 agents x 4
    finally:
        bench.close()
        if watcher is not None:
            watcher.close()
    return watcher.seen()


def test_every_message_of_a_live_run_matches_its_schema(tmp_path: Path, tiny_zoo: Path) -> None:
    validators = {
        kind.value: Draft202012Validator(json.loads((SCHEMAS / kind.file_name).read_text()))
        for kind in PayloadSchema
    }
    bench = make_bench(tmp_path, tiny_zoo, telemetry={"interval_s": 0.2, "bench_id": "lab-1"})
    topics = Topics.of(bench.cfg)
    nodes = {"cloud", *(s.id for s in bench.cfg.edge_specs())}
    seen = _watch_a_short_run(bench, nodes | {s.id for s in bench.cfg.agent_specs()})
    kinds: Counter[str] = Counter()
    for topic, payload in seen:
        assert topic.startswith(topics.root + "/"), topic  # the whole tree moved with the bench id
        if topic.endswith("/status"):  # documented exception: plain text
            assert payload in (b"online", b"offline"), (topic, payload)
            kinds["status"] += 1
        elif topic.endswith("/feed"):  # documented exception: binary frames (testbed/feed.py)
            kinds["feed"] += 1
        else:
            body = json.loads(payload)
            errors = [e.message for e in validators[body["schema"]].iter_errors(body)]
            assert not errors, (topic, errors, body)
            kinds[body["schema"]] += 1
    assert {k.value for k in PayloadSchema} <= set(kinds), kinds
    events = {b["kind"] for b in _json_of(seen, PayloadSchema.EVENT)}
    wanted = {EventKind.NODE_DOWN, EventKind.MODEL_FETCH_STARTED, EventKind.MODEL_FETCH_FINISHED}
    assert wanted | {EventKind.SLOT_FINISHED} <= events, events  # the coordinator's own too
    slots = [b for b in _json_of(seen, PayloadSchema.EVENT) if b["kind"] == "slot_finished"]
    assert [b["fields"]["slot"] for b in slots] == [0, 1, 2, 3]
    assert all(b["node_id"] == "coordinator" for b in slots)
    telemetry = _json_of(seen, PayloadSchema.TELEMETRY)
    edges = [t for t in telemetry if t["kind"] == "edge"]
    assert edges and all("cache" in t and "energy" in t for t in edges)
    assert any(t["tasks"]["count"] > 0 for t in telemetry if t["kind"] == "agent")
    telemetry_topics = [t for t, _ in seen if t.endswith("/telemetry")]
    check_telegraf_example(telemetry_topics, telemetry)


def check_telegraf_example(topics: list[str], telemetry: list[dict]) -> None:
    """docs/telemetry.md's Telegraf consumer reads these messages: its topic pattern
    matches every telemetry topic with one tag per named segment, and every JSON path it
    reads (json_v2 paths are GJSON: dotted keys) is in every telemetry message, since
    Telegraf rejects a message that lacks a non-optional path."""
    doc = (SCHEMAS.parent / "telemetry.md").read_text()
    toml_text = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    consumer = tomllib.loads(toml_text)["inputs"]["mqtt_consumer"][0]
    parsing = consumer["topic_parsing"][0]
    pattern, tags = parsing["topic"].split("/"), parsing["tags"].split("/")
    assert len(pattern) == len(tags)
    for topic in topics:
        parts = topic.split("/")
        assert len(parts) == len(pattern), topic
        assert all(p in ("+", part) for p, part in zip(pattern, parts, strict=True)), topic
    parser = consumer["json_v2"][0]
    required, optional = [parser["timestamp_path"]], []
    for entry in parser["tag"] + parser["field"]:
        (required if not entry.get("optional") else optional).append(entry["path"])
    for path in required:  # in every message
        assert all(_has(body, path) for body in telemetry), path
    for path in optional:  # in some: a typo would be in none
        assert any(_has(body, path) for body in telemetry), path


def _has(body: dict, path: str) -> bool:
    value: Any = body
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return True
