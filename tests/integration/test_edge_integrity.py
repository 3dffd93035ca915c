"""Edges and the cloud accept only what they are allowed to: real broker, cloud and edge
processes against forged manifests, hostile fetch requests, task headers outside the
bounds, callers that leave, and a cache on a full disk."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from testbed import feed, serde
from testbed.broker import EmbeddedBroker
from testbed.config import BrokerConfig, BrokerKind
from testbed.daemon import GRPC_OPTIONS
from testbed.messages import EdgeTaskRequest, ModelRef
from testbed.mqtt import BrokerAddress, MqttClient
from testbed.rpc.v1 import edge_pb2, edge_pb2_grpc
from testbed.topics import Topics
from testbed.types import FailureReason, Outcome
from tests.waiting import WAIT_S, wait_until

from .harness import EdgeBench, catalog_sizes

pytestmark = pytest.mark.slow

CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    kind = BrokerKind.MOSQUITTO if shutil.which("mosquitto") else BrokerKind.AMQTT
    with EmbeddedBroker.start(BrokerConfig(), tmp_path_factory.mktemp("broker"), kind=kind) as b:
        yield b.url


def _client(broker_url: str, name: str) -> MqttClient:
    return MqttClient(
        BrokerAddress.from_url(broker_url), f"{name}-{threading.get_ident()}"
    ).connect()


def _catalog(zoo: Path) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in json.loads((zoo / "catalog.json").read_text())["models"]}


def _transfer(rid: str, data: bytes, entry: dict[str, Any]) -> list[bytes]:
    """Every frame of a whole transfer of `data`, described by `entry`."""
    count = max(1, math.ceil(len(data) / CHUNK))
    manifest = feed.Manifest(
        rid, entry["id"], entry["version"], len(data), hashlib.sha256(data).hexdigest(),
        CHUNK, count, entry,
    )  # fmt: skip
    chunks = [feed.encode_chunk(rid, i, data[i * CHUNK : (i + 1) * CHUNK]) for i in range(count)]
    return [manifest.encode(), *chunks, feed.Done(rid, count).encode()]


class Forger:
    """An MQTT client that reads the request ids on the fetch topic and answers the
    first whole-file request itself, before any cloud does."""

    def __init__(self, broker_url: str, frames: Any) -> None:
        self.frames = frames
        self.answered = threading.Event()
        self.client = _client(broker_url, "forger")
        self.client.subscribe(Topics().fetch_requests, self._on_request)

    def _on_request(self, _topic: str, payload: bytes) -> None:
        request = feed.FetchRequest.decode(payload)
        if request.chunks is not None or self.answered.is_set():
            return
        for frame in self.frames(request.request_id):
            self.client.publish(Topics().feed(request.edge_id), frame)
        self.answered.set()

    def close(self) -> None:
        self.client.close()


def _forgeries(zoo: Path) -> dict[str, Any]:
    """Forged answers for cgan-s: another model's bytes under cgan-s's name (other
    size and sha256), and the genuine bytes under an id that climbs out of the cache."""
    models = _catalog(zoo)
    target, impostor = models["cgan-s"], models["cgan-l"]
    genuine = (zoo / target["file"]).read_bytes()
    other = (zoo / impostor["file"]).read_bytes()  # a valid model with cgan-s's inputs
    forged_entry = {**target, "size_bytes": len(other), "sha256": hashlib.sha256(other).hexdigest()}
    climbing = {**target, "id": "../../x"}
    return {
        "other_sha256": lambda rid: _transfer(rid, other, forged_entry),
        "path_id": lambda rid: _transfer(rid, genuine, climbing),
    }


@pytest.mark.parametrize("forgery", ["other_sha256", "path_id"])
def test_a_forged_manifest_is_refused_and_the_genuine_transfer_completes(
    broker_url: str, tiny_zoo: Path, tmp_path: Path, forgery: str
) -> None:
    target = _catalog(tiny_zoo)["cgan-s"]
    with EdgeBench(tmp_path, broker_url, tiny_zoo) as bench:
        # the catalog the cloud publishes (retained): the edge knows what it asks for
        publisher = _client(broker_url, "catalog")
        catalog = (tiny_zoo / "catalog.json").read_bytes()
        publisher.publish(Topics().catalog, catalog, retain=True).wait_for_publish(10)
        publisher.close()
        forger = Forger(broker_url, _forgeries(tiny_zoo)[forgery])
        bench.start(cloud=False)  # the forger answers first: no cloud has subscribed yet
        results: list[Any] = []
        task = threading.Thread(target=lambda: results.append(bench.submit("cgan-s").result))
        task.start()
        assert forger.answered.wait(WAIT_S)
        bench.launcher.wait_ready([bench.launcher.start_cloud()])
        task.join(60)
        forger.close()
        assert results and results[0].outcome is Outcome.COMPLETED, results
        assert results[0].bytes_fetched == target["size_bytes"]
        cache_dir = tmp_path / "run" / "cache" / "edge-0"
        (cached,) = cache_dir.glob("*.onnx")
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == target["sha256"]
        edge_log = bench.launcher.nodes["edge-0"].log_path.read_text()
    assert not list(tmp_path.rglob("x-*.onnx")), "a file was written outside the cache"
    said = {"other_sha256": "ignored a manifest", "path_id": "dropped a feed frame"}[forgery]
    assert said in edge_log


# ---------------------------------------------------------------------------- the cloud


def _hostile_request(model_id: str, **extra: Any) -> bytes:
    return json.dumps(
        {"request_id": feed.new_request_id(), "edge_id": "edge-0", "model_id": model_id,
         "version": "", "chunks": None, **extra}
    ).encode()  # fmt: skip


def _cloud_listening(bench: EdgeBench, model_id: str) -> None:
    """A genuine fetch has been served: the cloud has subscribed to the fetch topic
    (a request published before it had would be lost, and an attacker does not ask
    again as an edge does)."""
    result = bench.submit(model_id).result
    assert result.outcome is Outcome.COMPLETED and result.bytes_fetched > 0, result


def test_requests_at_a_crawling_rate_cannot_starve_a_genuine_fetch(
    broker_url: str, tiny_zoo: Path, tmp_path: Path
) -> None:
    sizes = catalog_sizes(tiny_zoo)
    target, first = sorted(sizes, key=sizes.get)[:2]
    others = [m for m in sizes if m != target]
    with EdgeBench(
        tmp_path, broker_url, tiny_zoo, emulation={"links": True, "compute": False},
        edges={"cloud_link_mbps": 1000.0, "fetch_timeout_s": 10.0},
    ) as bench:  # fmt: skip
        bench.start()
        _cloud_listening(bench, first)
        attacker = _client(broker_url, "attacker")
        for i in range(8):  # as many as the cloud has transfer workers
            payload = _hostile_request(others[i % len(others)], rate_mbps=1e-9)
            attacker.publish(Topics().fetch_requests, payload).wait_for_publish(10)
        result = bench.submit(target).result
        attacker.close()
        assert result.outcome is Outcome.COMPLETED, result.detail


class FeedWatcher:
    """Counts what the cloud publishes on edge-0's feed topic, and its telemetry."""

    def __init__(self, broker_url: str) -> None:
        self.chunk_bytes: dict[str, int] = {}
        self.done: list[str] = []
        self.telemetry: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.client = _client(broker_url, "feed-watcher")
        self.client.subscribe(Topics().feed("edge-0"), self._on_frame)
        self.client.subscribe(Topics().telemetry("cloud"), self._on_telemetry)

    def _on_frame(self, _topic: str, payload: bytes) -> None:
        frame = feed.decode(payload)
        with self.lock:
            if isinstance(frame, feed.Chunk):
                rid = frame.request_id
                self.chunk_bytes[rid] = self.chunk_bytes.get(rid, 0) + len(frame.data)
            elif isinstance(frame, feed.Done):
                self.done.append(frame.request_id)

    def _on_telemetry(self, _topic: str, payload: bytes) -> None:
        with self.lock:
            self.telemetry.append(json.loads(payload))

    def idle_since(self, index: int) -> bool:
        """A telemetry record after the `index`-th says no transfer is under way."""
        with self.lock:
            return any(r.get("active_transfers") == 0 for r in self.telemetry[index + 1 :])


def test_repeated_requests_send_a_model_once_at_the_configured_rate(
    broker_url: str, tiny_zoo: Path, tmp_path: Path
) -> None:
    sizes = catalog_sizes(tiny_zoo)
    target, first = max(sizes, key=sizes.get), min(sizes, key=sizes.get)
    rate_mbps = sizes[target] * 8 / 1e6  # one second for the model at the edge's r_cj
    watcher = FeedWatcher(broker_url)
    with EdgeBench(
        tmp_path, broker_url, tiny_zoo, emulation={"links": True, "compute": False},
        edges={"cloud_link_mbps": rate_mbps},
    ) as bench:  # fmt: skip
        bench.start()
        _cloud_listening(bench, first)
        attacker = _client(broker_url, "attacker")
        asked = [_hostile_request(target, rate_mbps=None) for _ in range(5)]
        for payload in asked:
            attacker.publish(Topics().fetch_requests, payload).wait_for_publish(10)
        attacker.close()
        theirs = {json.loads(payload)["request_id"] for payload in asked}
        assert wait_until(lambda: theirs & set(watcher.done), timeout_s=30)
        with watcher.lock:
            seen = len(watcher.telemetry)
        assert wait_until(lambda: watcher.idle_since(seen))
        with watcher.lock:
            sent = sum(n for rid, n in watcher.chunk_bytes.items() if rid in theirs)
            refused = watcher.telemetry[-1].get("refused")
    watcher.client.close()
    assert sent == sizes[target], f"{sent / sizes[target]:.1f} copies of the model sent"
    assert refused == 4


# ---------------------------------------------------------------------------- task headers


@pytest.fixture(scope="module")
def edge_bench(
    broker_url: str, tiny_zoo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeBench]:
    with EdgeBench(tmp_path_factory.mktemp("headers"), broker_url, tiny_zoo) as bench:
        bench.start()
        yield bench


def _stub(bench: EdgeBench) -> tuple[grpc.Channel, edge_pb2_grpc.EdgeServiceStub]:
    channel = grpc.insecure_channel(bench.launcher.nodes["edge-0"].address, options=GRPC_OPTIONS)
    return channel, edge_pb2_grpc.EdgeServiceStub(channel)


def _header(task_id: str = "hostile/t1", **change: Any) -> edge_pb2.SubmitTaskRequest:
    request = EdgeTaskRequest(task_id, ModelRef("cgan-s"), 1, True, share=1.0)
    return edge_pb2.SubmitTaskRequest(header=serde.task_header_to_pb(replace(request, **change)))


def _data(size: int) -> edge_pb2.SubmitTaskRequest:
    return edge_pb2.SubmitTaskRequest(data=b"\x01" * size)


def _refusal(stub: edge_pb2_grpc.EdgeServiceStub, messages: Any) -> tuple[Any, str]:
    try:
        stub.SubmitTask(iter(messages), timeout=20)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return None, "accepted"


def test_a_billion_steps_is_rejected_naming_the_bound(edge_bench: EdgeBench) -> None:
    sub = edge_bench.client().submit(
        EdgeTaskRequest("hostile/steps", ModelRef("diffusion-s"), 1, True, steps=10**9),
        b"", timeout_s=20,
    )  # fmt: skip
    assert sub.result.reason is FailureReason.INVALID_REQUEST
    assert "INVALID_ARGUMENT: steps 1000000000 > 1000 (edges.max_steps)" in sub.result.detail
    assert edge_bench.submit("diffusion-s").result.outcome is Outcome.COMPLETED


@pytest.mark.parametrize(
    ("messages", "says"),
    [
        ([_header(share=-0.5)], "share -0.5 is outside [0, 1]"),
        ([_header(share=1.5)], "share 1.5 is outside [0, 1]"),
        ([_header(share=math.nan)], "share nan is outside [0, 1]"),
        ([_header("")], "task_id is empty"),
        ([_header(model=ModelRef("../../x"))], "model id '../../x'"),
        ([_header(data_bytes=10), _data(10), _header("hostile/t2")], "second header"),
        ([_header(data_bytes=10), _data(2048)], "more data than the 10 bytes announced"),
        ([_header(data_bytes=10), _data(4)], "announced 10 bytes, 4 arrived"),
        ([_data(10)], "the first message must be a header"),
    ],
)
def test_a_bad_header_is_invalid_argument_saying_which(
    edge_bench: EdgeBench, messages: list[Any], says: str
) -> None:
    channel, stub = _stub(edge_bench)
    with channel:
        code, details = _refusal(stub, messages)
    assert code is grpc.StatusCode.INVALID_ARGUMENT, details
    assert says in details


def test_too_much_data_is_refused_on_the_header_before_any_is_sent(
    edge_bench: EdgeBench,
) -> None:
    hold = threading.Event()

    def messages() -> Iterator[edge_pb2.SubmitTaskRequest]:
        yield _header(data_bytes=300 * 2**20)
        hold.wait(30)  # nothing more until the edge has answered
        yield _data(1)

    channel, stub = _stub(edge_bench)
    with channel:
        code, details = _refusal(stub, messages())
        hold.set()
    assert code is grpc.StatusCode.INVALID_ARGUMENT, details
    assert "data_bytes 314572800 > 64000000 (edges.max_task_data_mb)" in details


def _long_task(task_id: str) -> list[edge_pb2.SubmitTaskRequest]:
    """Hours of diffusion: the largest task the bounds allow."""
    return [_header(task_id, model=ModelRef("diffusion-s"), units=100_000, steps=1000)]


def test_a_cancelled_long_task_frees_the_executor(edge_bench: EdgeBench) -> None:
    records: list[dict[str, Any]] = []
    listener = _client(str(edge_bench.cfg.broker.url), "telemetry")
    listener.subscribe(Topics().telemetry("edge-0"), lambda _t, p: records.append(json.loads(p)))
    channel, stub = _stub(edge_bench)
    with channel, listener:
        call = stub.SubmitTask.future(iter(_long_task("hostile/long")), timeout=600)
        assert wait_until(lambda: edge_bench.state().running == 1, timeout_s=30)
        code, details = _refusal(stub, _long_task("hostile/long"))
        assert code is grpc.StatusCode.INVALID_ARGUMENT and "already" in details, details
        call.cancel()  # the caller goes away: the edge stops at the next batch
        after = edge_bench.client().submit(
            EdgeTaskRequest("test/after", ModelRef("cgan-s"), 1, True), b"", timeout_s=30
        )
        assert after.result.outcome is Outcome.COMPLETED, after.result.detail
        assert wait_until(lambda: any(r.get("tasks_cancelled") == 1 for r in records))
    log = edge_bench.launcher.nodes["edge-0"].log_path.read_text()
    assert "task hostile/long failed: cancelled" in log


# ---------------------------------------------------------------------------- a full disk


@pytest.fixture
def one_mib_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root: skipped elsewhere; the unit test of the writer,
    tests/unit/test_model_feed_client.py, covers the same path everywhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_disk_full_and_the_edge_keeps_serving(
    broker_url: str, tiny_zoo: Path, tmp_path: Path, one_mib_disk: Path
) -> None:
    sizes = catalog_sizes(tiny_zoo)
    large, small = max(sizes, key=sizes.get), min(sizes, key=sizes.get)
    assert sizes[large] > 2**20 > sizes[small]
    with EdgeBench(tmp_path, broker_url, tiny_zoo, edges={"cache_dir": str(one_mib_disk)}) as bench:
        bench.start()
        full = bench.submit(large).result
        assert (full.outcome, full.reason) == (Outcome.FAILED, FailureReason.DISK_FULL), full
        assert str(one_mib_disk) in full.detail
        assert bench.submit(small).result.outcome is Outcome.COMPLETED
