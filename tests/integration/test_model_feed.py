"""The cloud→edge model feed over a real broker: resume of missing chunks, damaged
chunks, and several edges fetching from the cloud node at once."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge_node.model_feed import FeedClient
from testbed import feed
from testbed.broker import EmbeddedBroker
from testbed.config import BrokerConfig, ZooScale
from testbed.mqtt import BrokerAddress, MqttClient
from testbed.topics import Topics
from testbed.types import FailureReason, Outcome, TestbedError
from testbed.zoo.catalog import ModelEntry, ModelFamily, TensorDType, TensorSpec
from tests.waiting import WAIT_S, wait_until

from .harness import EdgeBench, catalog_sizes

CHUNK = 64 * 1024
MODEL = bytes(range(256)) * 1000  # 256,000 bytes: 4 chunks
ENTRY = ModelEntry(
    id="m", family=ModelFamily.CGAN, version="1", file="m.onnx", size_bytes=len(MODEL),
    sha256=hashlib.sha256(MODEL).hexdigest(),
    inputs=[TensorSpec("z", TensorDType.FLOAT32, ["batch", 4])],
    outputs=[TensorSpec("y", TensorDType.FLOAT32, ["batch", 4])],
    default_steps=1, flops_per_invocation=8, trained=False, scale=ZooScale.TINY,
)  # fmt: skip


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory):
    with EmbeddedBroker.start(BrokerConfig(), tmp_path_factory.mktemp("broker")) as broker:
        yield broker.url


class ScriptedCloud:
    """A cloud that loses (or damages) chosen chunks on the first answer only."""

    def __init__(self, url: str, lose: set[int], damage: set[int] = frozenset()) -> None:
        self.lose, self.damage = set(lose), set(damage)
        self.requests: list[feed.FetchRequest] = []
        self.client = MqttClient(BrokerAddress.from_url(url), "scripted-cloud").connect()
        self.client.subscribe(Topics().fetch_requests, self._on_request)

    def _on_request(self, _topic: str, payload: bytes) -> None:
        threading.Thread(target=self._answer, args=(feed.FetchRequest.decode(payload),)).start()

    def _answer(self, req: feed.FetchRequest) -> None:
        first = not self.requests
        self.requests.append(req)
        topic = Topics().feed(req.edge_id)
        count = -(-len(MODEL) // CHUNK)
        sha = hashlib.sha256(MODEL).hexdigest()
        if first:
            manifest = feed.Manifest(req.request_id, "m", "1", len(MODEL), sha, CHUNK, count)
            self.client.publish(topic, manifest.encode())
        for i in req.chunks if req.chunks is not None else range(count):
            if first and i in self.lose:
                continue
            frame = feed.encode_chunk(req.request_id, i, MODEL[i * CHUNK : (i + 1) * CHUNK])
            if first and i in self.damage:
                frame = frame[:-1] + bytes([frame[-1] ^ 0xFF])
            self.client.publish(topic, frame)
        self.client.publish(topic, feed.Done(req.request_id, count).encode())

    def close(self) -> None:
        self.client.close()


@pytest.mark.parametrize(("lose", "damage"), [({1, 3}, set()), (set(), {0, 2})])
def test_missing_and_damaged_chunks_are_asked_for_again(
    broker_url: str, tmp_path: Path, lose: set[int], damage: set[int]
) -> None:
    cloud = ScriptedCloud(broker_url, lose, damage)
    edge = MqttClient(BrokerAddress.from_url(broker_url), "edge-under-test").connect()
    try:
        client = FeedClient(edge, Topics(), "edge-x")
        result = client.fetch(ENTRY, tmp_path / "m.part", timeout_s=20)
    finally:
        edge.close()
        cloud.close()
    assert result.path.read_bytes() == MODEL
    assert result.resume_rounds == 1
    assert cloud.requests[1].chunks == tuple(sorted(lose | damage))
    assert result.bytes_received == len(MODEL)


def test_a_silent_cloud_is_a_fetch_failure(broker_url: str, tmp_path: Path) -> None:
    edge = MqttClient(BrokerAddress.from_url(broker_url), "edge-alone").connect()
    try:
        client = FeedClient(edge, Topics(), "edge-y")
        with pytest.raises(TestbedError) as info:
            client.fetch(ENTRY, tmp_path / "m.part", timeout_s=1.0)
        assert info.value.reason is FailureReason.FETCH_FAILED
    finally:
        edge.close()


def test_three_edges_fetch_from_the_cloud_at_once(
    broker_url: str, tiny_zoo: Path, tmp_path: Path
) -> None:
    sizes = catalog_sizes(tiny_zoo)
    model = max(sizes, key=sizes.get)
    with EdgeBench(tmp_path, broker_url, tiny_zoo, edges={"count": 3}) as bench:
        bench.start()
        results: dict[str, object] = {}
        threads = [
            threading.Thread(target=lambda e=e: results.update({e: bench.submit(model, edge_id=e)}))
            for e in ("edge-0", "edge-1", "edge-2")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for edge_id, sub in results.items():
            assert sub.result.outcome is Outcome.COMPLETED, sub.result.detail
            assert sub.result.bytes_fetched == sizes[model]
            assert bench.state(edge_id).holds(model)
        assert len(results) == 3
        for node in bench.launcher.nodes.values():  # every daemon answers standard probes
            with grpc.insecure_channel(node.address) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, node.node_id


def test_a_cloud_that_starts_late_is_asked_again(
    broker_url: str, tiny_zoo: Path, tmp_path: Path
) -> None:
    model = next(iter(catalog_sizes(tiny_zoo)))
    asked = threading.Event()
    watcher = MqttClient(BrokerAddress.from_url(broker_url), "request-watcher").connect()
    with watcher, EdgeBench(tmp_path, broker_url, tiny_zoo) as bench:
        topics = Topics.of(bench.cfg)
        # the catalog a cloud that ran before left retained: the edge knows the model
        catalog = (tiny_zoo / "catalog.json").read_bytes()
        watcher.publish(topics.catalog, catalog, retain=True).wait_for_publish(10)
        watcher.subscribe(topics.fetch_requests, lambda _topic, _payload: asked.set())
        bench.start(cloud=False)
        results: list = []
        waiting = threading.Thread(target=lambda: results.append(bench.submit(model).result))
        waiting.start()
        assert asked.wait(WAIT_S)  # the edge has asked: lost, no cloud had subscribed
        bench.launcher.wait_ready([bench.launcher.start_cloud()])
        waiting.join(60)
        assert results and results[0].outcome is Outcome.COMPLETED, results
        assert results[0].bytes_fetched == catalog_sizes(tiny_zoo)[model]


def test_an_edge_without_a_catalog_waits_for_the_clouds(
    broker_url: str, tiny_zoo: Path, tmp_path: Path
) -> None:
    """An edge fetches only what the cloud's catalog lists: with none retained on the
    broker yet, a task waits for the cloud's (within the fetch timeout), then fetches."""
    model = next(iter(catalog_sizes(tiny_zoo)))
    clearer = MqttClient(BrokerAddress.from_url(broker_url), "catalog-clearer").connect()
    with clearer, EdgeBench(tmp_path, broker_url, tiny_zoo) as bench:
        topics = Topics.of(bench.cfg)
        clearer.publish(topics.catalog, b"", retain=True).wait_for_publish(10)  # none retained
        bench.start(cloud=False)
        results: list = []
        waiting = threading.Thread(target=lambda: results.append(bench.submit(model).result))
        waiting.start()
        assert wait_until(lambda: bench.state().running == 1)  # waiting for a catalog
        bench.launcher.wait_ready([bench.launcher.start_cloud()])
        waiting.join(60)
        assert results and results[0].outcome is Outcome.COMPLETED, results
