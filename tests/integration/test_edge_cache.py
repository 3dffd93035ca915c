"""Broker + cloud + edges as real processes: the model cache as a user sees it.

Runs against amqtt, and against Mosquitto too where it is installed.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
from collections import OrderedDict
from pathlib import Path

import pytest

from testbed.broker import EmbeddedBroker
from testbed.config import BrokerConfig, BrokerKind
from testbed.messages import ModelRef
from testbed.mqtt import BrokerAddress, MqttClient
from testbed.topics import Topics
from testbed.types import FailureReason, Outcome

from .harness import EdgeBench, StateWatcher, broker_kinds, catalog_sizes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=broker_kinds())
def broker_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp(f"broker-{request.param}")
    with EmbeddedBroker.start(BrokerConfig(), workdir, kind=BrokerKind(request.param)) as broker:
        yield broker.url


class LruReference:
    """What a byte-sized LRU cache must hold after each access."""

    def __init__(self, capacity: int, sizes: dict[str, int]) -> None:
        self.capacity, self.sizes = capacity, sizes
        self.entries: OrderedDict[str, int] = OrderedDict()
        self.hits = self.misses = self.evictions = self.bytes_fetched = 0

    def access(self, model: str) -> bool:
        if model in self.entries:
            self.entries.move_to_end(model)
            self.hits += 1
            return True
        self.misses += 1
        self.bytes_fetched += self.sizes[model]
        while sum(self.entries.values()) + self.sizes[model] > self.capacity:
            self.entries.popitem(last=False)
            self.evictions += 1
        self.entries[model] = self.sizes[model]
        return False


def test_lru_order_and_capacity_under_a_stream(broker_url: str, tiny_zoo: Path, tmp_path: Path):
    sizes = catalog_sizes(tiny_zoo)
    capacity = sum(sorted(sizes.values())[-3:])  # any three fit, all six do not
    rng = random.Random(7)
    stream = [rng.choice(list(sizes)) for _ in range(24)]
    watcher = StateWatcher(broker_url)
    ref = LruReference(capacity, sizes)
    with EdgeBench(
        tmp_path, broker_url, tiny_zoo, edges={"cache_capacity_mb": capacity / 1e6}
    ) as bench:
        bench.start()
        for model in stream:
            result = bench.submit(model).result
            assert result.outcome is Outcome.COMPLETED, result.detail
            assert result.cache_hit == ref.access(model), f"hit/miss of {model}"
            state = bench.state()
            assert [c.model.model_id for c in state.cached] == list(ref.entries), "LRU order"
            assert state.cache_used_bytes == sum(ref.entries.values()) <= capacity
        c = bench.state().counters
        assert (c.hits, c.misses, c.evictions) == (ref.hits, ref.misses, ref.evictions)
        assert (c.fetches, c.bytes_fetched) == (ref.misses, ref.bytes_fetched)
        assert ref.evictions > 0  # the stream really needed more room than there was
    published = watcher.of("edge-0")
    watcher.close()
    assert len(published) > len(stream)
    assert all(s.cache_used_bytes <= capacity for s in published)
    assert [s.seq for s in published] == sorted(s.seq for s in published)


def test_corrupted_model_on_the_cloud_is_never_loaded(
    broker_url: str, tiny_zoo: Path, tmp_path: Path
):
    zoo = tmp_path / "zoo" / "tiny"
    shutil.copytree(tiny_zoo, zoo)
    entry = next(m for m in json.loads((zoo / "catalog.json").read_text())["models"])
    path = zoo / entry["file"]
    clean = path.read_bytes()
    damaged = bytearray(clean)
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with EdgeBench(tmp_path, broker_url, zoo) as bench:
        bench.start()
        result = bench.submit(entry["id"]).result
        assert (result.outcome, result.reason) == (Outcome.FAILED, FailureReason.CHECKSUM_MISMATCH)
        state = bench.state()
        assert not state.holds(entry["id"]) and state.cache_used_bytes == 0
        assert state.counters.checksum_failures == 1
        cache_dir = tmp_path / "run" / "cache" / "edge-0"
        assert not [p for p in cache_dir.rglob("*") if entry["id"] in p.name]
        path.write_bytes(clean)  # the operator repairs the cloud's copy
        again = bench.submit(entry["id"]).result
        assert again.outcome is Outcome.COMPLETED, again.detail
        assert bench.state().holds(entry["id"])


def test_two_tasks_one_download(broker_url: str, tiny_zoo: Path, tmp_path: Path):
    sizes = catalog_sizes(tiny_zoo)
    model = max(sizes, key=sizes.get)
    rate_mbps = sizes[model] * 8 / 1e6 / 0.8  # the download takes ~0.8 s: both tasks wait
    with EdgeBench(
        tmp_path, broker_url, tiny_zoo,
        emulation={"links": True, "compute": False},
        edges={"parallel_slots": 2, "cloud_link_mbps": rate_mbps},
    ) as bench:  # fmt: skip
        bench.start()
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(bench.submit(model).result))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert [r.outcome for r in results] == [Outcome.COMPLETED] * 2
        c = bench.state().counters
        assert (c.fetches, c.bytes_fetched, c.misses) == (1, sizes[model], 2)
        assert sorted(r.bytes_fetched for r in results) == [0, sizes[model]]


def test_cache_survives_a_restart_and_drops_a_tampered_file(
    broker_url: str, tiny_zoo: Path, tmp_path: Path
):
    cache_dir = tmp_path / "cache"
    a, b = list(catalog_sizes(tiny_zoo))[:2]
    with EdgeBench(tmp_path, broker_url, tiny_zoo, edges={"cache_dir": str(cache_dir)}) as bench:
        bench.start()
        for model in (a, b):
            assert bench.submit(model).result.outcome is Outcome.COMPLETED
        assert [c.model.model_id for c in bench.state().cached] == [a, b]
        tampered = next(cache_dir.glob(f"{b}-*.onnx"))
        tampered.write_bytes(tampered.read_bytes()[:-10] + b"0123456789")
        bench.restart("edge-0")
        assert [c.model.model_id for c in bench.state().cached] == [a]
        hit = bench.submit(a, download=False).result
        assert (hit.outcome, hit.cache_hit, hit.bytes_fetched) == (Outcome.COMPLETED, True, 0)
        gone = bench.submit(b, download=False).result
        assert gone.reason is FailureReason.MODEL_MISSING


def test_missing_model_without_download_is_rejected_at_once(
    broker_url: str, tiny_zoo: Path, tmp_path: Path
):
    model = next(iter(catalog_sizes(tiny_zoo)))
    with EdgeBench(tmp_path, broker_url, tiny_zoo) as bench:
        bench.start(cloud=False)  # no cloud at all: the edge must not even try
        result = bench.submit(model, download=False).result
        assert (result.outcome, result.reason) == (Outcome.FAILED, FailureReason.MODEL_MISSING)
        assert result.bytes_fetched == 0 and result.timing.fetch_ms == 0
        assert bench.state().counters.rejected_missing == 1


def test_failures_each_have_their_reason(broker_url: str, tiny_zoo: Path, tmp_path: Path):
    sizes = catalog_sizes(tiny_zoo)
    small = min(sizes, key=sizes.get)
    large = max(sizes, key=sizes.get)
    capacity_mb = (sizes[small] + 1000) / 1e6
    with EdgeBench(
        tmp_path, broker_url, tiny_zoo, edges={"cache_capacity_mb": capacity_mb}
    ) as bench:
        bench.start()
        too_large = bench.submit(large).result
        assert too_large.reason is FailureReason.MODEL_TOO_LARGE, too_large.detail
        unknown = bench.submit("no-such-model").result
        assert unknown.reason is FailureReason.MODEL_UNKNOWN, unknown.detail
        assert bench.submit(small).result.outcome is Outcome.COMPLETED
        assert bench.state().cache_used_bytes == sizes[small]


def test_cloud_down_means_fetch_failed(broker_url: str, tiny_zoo: Path, tmp_path: Path):
    model = next(iter(catalog_sizes(tiny_zoo)))
    with EdgeBench(tmp_path, broker_url, tiny_zoo, edges={"fetch_timeout_s": 1.5}) as bench:
        bench.start(cloud=False)
        result = bench.submit(model).result
        assert result.reason is FailureReason.FETCH_FAILED
        assert "cloud" in result.detail


def test_operator_prefetch_evict_and_telemetry(broker_url: str, tiny_zoo: Path, tmp_path: Path):
    model = next(iter(catalog_sizes(tiny_zoo)))
    records: list[dict] = []
    got = threading.Event()
    listener = MqttClient(BrokerAddress.from_url(broker_url), "telemetry-listener").connect()

    def on_record(_topic: str, payload: bytes) -> None:
        records.append(json.loads(payload))
        got.set()

    listener.subscribe(Topics().telemetry("edge-0"), on_record)
    with EdgeBench(tmp_path, broker_url, tiny_zoo) as bench:
        bench.start()
        client = bench.client()
        op = client.prefetch(ModelRef(model))
        assert op.ok and op.state is not None and op.state.holds(model)
        assert op.timing.fetch_ms > 0 and op.timing.load_ms > 0
        assert client.evict(ModelRef(model)).ok
        assert not bench.state().holds(model)
        again = client.evict(ModelRef(model))
        assert not again.ok and again.reason is FailureReason.MODEL_MISSING
        assert got.wait(5), "no telemetry from the edge"
    listener.close()
    assert records[0]["node_id"] == "edge-0" and records[0]["energy"]["method"] == "estimated"
