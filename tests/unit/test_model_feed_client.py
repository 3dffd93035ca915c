"""The edge's fetch (edge_node/model_feed.py) against a scripted cloud on a loopback
client: only a manifest that matches the catalog entry asked for is followed, and a full
disk ends the fetch as `disk_full`, saying where; the edge stopping ends a fetch in flight
as `shutting_down`."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from edge_node.model_feed import FeedClient
from testbed import feed
from testbed.config import ZooScale
from testbed.topics import Topics
from testbed.types import FailureReason, TestbedError
from testbed.zoo.catalog import ModelEntry, ModelFamily, TensorDType, TensorSpec

CHUNK = 4096
GENUINE = bytes(range(256)) * 50  # 12,800 bytes: 4 chunks
FORGED = b"\x00forged model\x00" * 700


def _entry(data: bytes = GENUINE, model_id: str = "m") -> ModelEntry:
    return ModelEntry(
        id=model_id, family=ModelFamily.CGAN, version="1", file=f"{model_id}.onnx",
        size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
        inputs=[TensorSpec("z", TensorDType.FLOAT32, ["batch", 4])],
        outputs=[TensorSpec("y", TensorDType.FLOAT32, ["batch", 4])],
        default_steps=1, flops_per_invocation=8, trained=False, scale=ZooScale.TINY,
    )  # fmt: skip


def frames_of(rid: str, data: bytes, model_id: str = "m", version: str = "1") -> list[bytes]:
    """A whole transfer of `data` as a cloud would send it."""
    count = -(-len(data) // CHUNK)
    sha = hashlib.sha256(data).hexdigest()
    manifest = feed.Manifest(rid, model_id, version, len(data), sha, CHUNK, count)
    chunks = [feed.encode_chunk(rid, i, data[i * CHUNK : (i + 1) * CHUNK]) for i in range(count)]
    return [manifest.encode(), *chunks, feed.Done(rid, count).encode()]


Script = Callable[[feed.FetchRequest], Iterable[bytes]]


class Loopback:
    """What FeedClient uses of MqttClient; a fetch request is answered at once by
    `script` (a forger and the cloud, in the order the script gives)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.handlers: dict[str, Any] = {}
        self.requests: list[feed.FetchRequest] = []

    def subscribe(self, topic: str, handler: Any, qos: int = 1) -> None:
        self.handlers[topic] = handler

    def unsubscribe(self, topic: str) -> None:
        self.handlers.pop(topic, None)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        request = feed.FetchRequest.decode(payload)
        self.requests.append(request)
        for frame in self.script(request):
            self.handlers[Topics().feed(request.edge_id)]("feed", frame)


def _fetch(script: Script, dest: Path, timeout_s: float = 10.0) -> Any:
    client = FeedClient(Loopback(script), Topics(), "edge-0")  # type: ignore[arg-type]
    try:
        return client.fetch(_entry(), dest, timeout_s=timeout_s, silence_s=0.5)
    finally:
        client.close()


def test_a_forged_manifest_is_ignored_and_the_genuine_one_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def forger_first(req: feed.FetchRequest) -> list[bytes]:
        if req.chunks is not None:
            return frames_of(req.request_id, GENUINE)[1:]
        return frames_of(req.request_id, FORGED) + frames_of(req.request_id, GENUINE)

    with caplog.at_level(logging.WARNING):
        result = _fetch(forger_first, tmp_path / "m.part")
    assert result.path.read_bytes() == GENUINE
    assert result.entry == _entry()
    assert any("ignored a manifest" in r.getMessage() for r in caplog.records)


def test_only_forged_manifests_end_in_a_failure_that_says_so(tmp_path: Path) -> None:
    with pytest.raises(TestbedError) as info:
        _fetch(lambda req: frames_of(req.request_id, FORGED), tmp_path / "m.part", 2.0)
    assert info.value.reason is FailureReason.FETCH_FAILED
    assert "did not match the catalog" in info.value.detail
    assert not (tmp_path / "m.part").exists() or (tmp_path / "m.part").read_bytes() != FORGED


def test_a_manifest_naming_a_path_is_dropped(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()

    def path_first(req: feed.FetchRequest) -> list[bytes]:
        rid = req.request_id
        return [*frames_of(rid, GENUINE, model_id="../../x"), *frames_of(rid, GENUINE)]

    result = _fetch(path_first, cache / "m.part")
    assert result.path.read_bytes() == GENUINE
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cache", "m.part"]


def test_a_chunk_of_the_wrong_length_is_not_written(tmp_path: Path) -> None:
    def oversized_first(req: feed.FetchRequest) -> list[bytes]:
        frames = frames_of(req.request_id, GENUINE)
        if req.chunks is None:
            frames[1] = feed.encode_chunk(req.request_id, 0, b"x" * (10 * CHUNK))
        return frames

    result = _fetch(oversized_first, tmp_path / "m.part")
    assert result.path.read_bytes() == GENUINE and result.resume_rounds == 1


def test_a_full_disk_is_disk_full_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("edge_node.model_feed.os.pwrite", no_space)
    with pytest.raises(TestbedError) as info:
        _fetch(lambda req: frames_of(req.request_id, GENUINE), tmp_path / "m.part")
    assert info.value.reason is FailureReason.DISK_FULL
    assert str(tmp_path) in info.value.detail


def test_closing_ends_a_fetch_in_flight_as_shutting_down(tmp_path: Path) -> None:
    """A fetch whose cloud never answers (gone with the bench) waits up to its timeout;
    the edge stopping ends it at once, and refuses any later one."""
    client = FeedClient(Loopback(lambda req: []), Topics(), "edge-0")  # type: ignore[arg-type]
    outcome: list[BaseException] = []

    def fetch() -> None:
        try:
            client.fetch(_entry(), tmp_path / "m.part", timeout_s=60.0)
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=fetch)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()  # waiting for a manifest
    t0 = time.monotonic()
    client.close()
    waiter.join(10)
    assert not waiter.is_alive() and time.monotonic() - t0 < 5
    assert isinstance(outcome[0], TestbedError)
    assert outcome[0].reason is FailureReason.SHUTTING_DOWN
    with pytest.raises(TestbedError) as info:
        client.fetch(_entry(), tmp_path / "n.part", timeout_s=60.0)
    assert info.value.reason is FailureReason.SHUTTING_DOWN
