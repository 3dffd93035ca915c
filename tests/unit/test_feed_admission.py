"""The cloud's admission of fetch requests (cloud_node/admission.py, feed_server.py):
only known edges, one transfer per (edge, model), a bounded rate of requests per edge,
pacing from the cloud's own config; malformed requests are refused without a traceback."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cloud_node.admission import FeedLimits, Refusal, RequestGate
from cloud_node.feed_server import FeedServer, ModelRepository
from testbed import feed
from testbed.config import ZooScale, config_from_dict
from testbed.messages import ModelRef
from testbed.topics import Topics
from testbed.types import FailureReason
from testbed.zoo.catalog import Catalog, ModelEntry, ModelFamily, TensorDType, TensorSpec
from tests.waiting import wait_until

LIMITS = FeedLimits(pace_mbps={"edge-0": None, "edge-1": 100.0}, max_requests=4, window_s=10.0)


def _request(edge: str = "edge-0", model: str = "m", rid: str | None = None, chunks=None):
    return feed.FetchRequest(rid or feed.new_request_id(), edge, ModelRef(model), chunks)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_unknown_edges_are_refused() -> None:
    gate = RequestGate(LIMITS)
    assert gate.admit(_request("edge-7")) is Refusal.UNKNOWN_EDGE
    assert gate.admit(_request("edge-0/#")) is Refusal.UNKNOWN_EDGE
    assert gate.admit(_request("edge-0")) is None


def test_one_transfer_per_edge_and_model_at_a_time() -> None:
    gate = RequestGate(replace(LIMITS, max_requests=100))
    first = _request()
    assert gate.admit(first) is None
    assert gate.admit(_request()) is Refusal.BUSY  # another request id, same model
    assert gate.admit(_request(rid=first.request_id)) is Refusal.REPEAT  # asked again
    assert gate.admit(_request(model="other")) is None  # another model is another transfer
    assert gate.admit(_request("edge-1")) is None  # the same model to another edge
    gate.release(first)
    assert gate.admit(_request(rid=first.request_id, chunks=(2,))) is None  # the resume


def test_requests_per_edge_are_bounded_in_a_sliding_window() -> None:
    clock = Clock()
    gate = RequestGate(LIMITS, clock=clock)
    for i in range(4):
        request = _request(model=f"m{i}")
        assert gate.admit(request) is None
        gate.release(request)
    assert gate.admit(_request(model="m9")) is Refusal.TOO_MANY
    assert gate.admit(_request("edge-1")) is None  # other edges have their own budget
    clock.now += 10.5
    assert gate.admit(_request(model="m9")) is None


def test_limits_come_from_the_config() -> None:
    raw: dict[str, Any] = {
        "edges": {"count": 2, "cloud_link_mbps": 80.0, "nodes": [{}, {"cloud_link_mbps": 5.0}]},
        "cloud": {"max_fetch_requests_per_edge": 7, "fetch_request_window_s": 3.0},
    }
    limits = FeedLimits.from_config(config_from_dict(raw))
    assert limits.pace_mbps == {"edge-0": 80.0, "edge-1": 5.0}
    assert (limits.max_requests, limits.window_s) == (7, 3.0)
    raw["emulation"] = {"links": False}
    assert FeedLimits.from_config(config_from_dict(raw)).pace_mbps == {
        "edge-0": None, "edge-1": None,
    }  # fmt: skip


# ---------------------------------------------------------------------------- the server


class FakeClient:
    """What FeedServer uses of MqttClient, recording what it publishes."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.handlers: dict[str, Any] = {}
        self.lock = threading.Lock()

    def subscribe(self, topic: str, handler: Any, qos: int = 1) -> None:
        self.handlers[topic] = handler

    def unsubscribe(self, topic: str) -> None:
        self.handlers.pop(topic, None)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False):
        with self.lock:
            self.published.append(
                (topic, payload if isinstance(payload, bytes) else payload.encode())
            )
        return self

    def publish_retained(self, topic: str, payload: bytes | str):
        return self.publish(topic, payload, qos=0, retain=True)

    def wait_for_publish(self, timeout: float | None = None) -> None:
        return None

    def frames(self, topic: str) -> list[Any]:
        with self.lock:
            return [feed.decode(p) for t, p in self.published if t == topic]


MODEL_BYTES = bytes(range(256)) * 40  # 10,240 bytes


def _zoo(root: Path, size_bytes: int = len(MODEL_BYTES)) -> Path:
    (root / "m.onnx").write_bytes(MODEL_BYTES)
    entry = ModelEntry(
        id="m", family=ModelFamily.CGAN, version="1", file="m.onnx", size_bytes=size_bytes,
        sha256=hashlib.sha256(MODEL_BYTES).hexdigest(),
        inputs=[TensorSpec("z", TensorDType.FLOAT32, ["batch", 4])],
        outputs=[TensorSpec("y", TensorDType.FLOAT32, ["batch", 4])],
        default_steps=1, flops_per_invocation=8, trained=False, scale=ZooScale.TINY,
    )  # fmt: skip
    Catalog(ZooScale.TINY, [entry]).save(root)
    return root


@pytest.fixture
def served(tmp_path: Path):
    client = FakeClient()
    limits = FeedLimits(pace_mbps={"edge-0": 1000.0}, max_requests=20, window_s=60.0)
    server = FeedServer(
        client, Topics(), ModelRepository(_zoo(tmp_path)),  # type: ignore[arg-type]
        chunk_bytes=4096, max_parallel=2, limits=limits,
    )  # fmt: skip
    server.start()
    yield client, server
    server.stop()


def _ask(client: FakeClient, payload: bytes | dict) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    client.handlers[Topics().fetch_requests]("testbed/cloud/fetch", body)


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"edge-0"', b"null", b"3", b"\xff{", b"{"])
def test_a_request_that_is_not_a_json_object_is_refused_without_a_traceback(
    served, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    client, _server = served
    with caplog.at_level(logging.DEBUG):
        _ask(client, payload)
    assert not client.published
    assert any("fetch request" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"


def _raw(model: str = "m", edge: str = "edge-0", **extra: Any) -> dict:
    rid = feed.new_request_id()
    return {"request_id": rid, "edge_id": edge, "model_id": model, "version": "", **extra}


def test_an_unknown_model_is_answered_with_a_refusal(served) -> None:
    client, _server = served
    request = _raw("no-such-model")
    _ask(client, request)
    (answer,) = client.frames(Topics().feed("edge-0"))
    assert isinstance(answer, feed.FeedError)
    assert (answer.request_id, answer.reason) == (
        request["request_id"],
        FailureReason.MODEL_UNKNOWN,
    )


def test_an_unknown_edge_gets_nothing(served) -> None:
    client, server = served
    _ask(client, _raw(edge="edge-9"))
    _ask(client, _raw(edge="../edge-0"))
    assert not client.published
    assert server.stats.refused == 2


def test_the_rate_a_request_names_is_not_used(served) -> None:
    client, _server = served
    _ask(client, _raw(rate_mbps=1e-9))  # would take years at that rate
    topic = Topics().feed("edge-0")
    assert wait_until(lambda: any(isinstance(f, feed.Done) for f in client.frames(topic)))
    chunks = [f for f in client.frames(topic) if isinstance(f, feed.Chunk)]
    assert b"".join(bytes(c.data) for c in chunks) == MODEL_BYTES


def test_a_file_that_differs_from_the_catalog_is_not_sent(tmp_path: Path) -> None:
    client = FakeClient()
    limits = FeedLimits(pace_mbps={"edge-0": None}, max_requests=20, window_s=60.0)
    repo = ModelRepository(_zoo(tmp_path, size_bytes=len(MODEL_BYTES) + 1))
    server = FeedServer(client, Topics(), repo, chunk_bytes=4096, max_parallel=1, limits=limits)  # type: ignore[arg-type]
    server.start()
    try:
        _ask(client, _raw())
        topic = Topics().feed("edge-0")
        assert wait_until(lambda: client.frames(topic))
        (answer,) = client.frames(topic)
        assert isinstance(answer, feed.FeedError)
        assert answer.reason is FailureReason.CHECKSUM_MISMATCH and "catalog" in answer.detail
    finally:
        server.stop()
