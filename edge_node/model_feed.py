"""The edge's side of the cloud→edge model feed (framing in testbed/feed.py).

`FeedClient.fetch` asks the cloud for the model of a catalog entry, writes the chunks
into a staging file as they arrive (CRC check, pwrite, and the sha256 updated in order,
so verification costs nothing extra on the common path), asks again for missing
chunks, and checks the whole file against the entry's sha256.

Request ids travel on a topic every client of the broker reads, so a manifest proves
nothing by itself: the transfer follows only a manifest that matches the entry it asked
for (id, version, size, sha256); any other is ignored and logged, and so are chunks of
the wrong length and a `done` before the manifest. A write that fails for want of space
ends the fetch as `disk_full`, saying where.

Frames are handled on the client's own writer thread, fed by paho's network thread
through a short bounded queue: CRC-32, sha256 and pwrite release the GIL, so they run
while paho reads the next chunk (measured: fetch throughput 0.67 → 1.0 × the raw
1 MiB QoS 1 rate on Mosquitto, benchmarks/model_fetch.py). The bound keeps the
back-pressure of QoS 1: when the writer falls behind, paho stops reading and acking.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from testbed import feed
from testbed.messages import ModelRef
from testbed.mqtt import MqttClient
from testbed.topics import Topics
from testbed.types import FailureReason, TestbedError
from testbed.zoo.catalog import ModelEntry

log = logging.getLogger(__name__)

RESUME_ROUNDS = 3
_HASH_BLOCK = 4 * 1024 * 1024
FRAME_QUEUE = 8
"""Frames (of ≤ 1 MiB) waiting between paho's network thread and the writer thread."""


@dataclass(frozen=True)
class FetchResult:
    path: Path
    manifest: feed.Manifest
    entry: ModelEntry  # the catalog entry asked for (the manifest matched it)
    fetch_s: float  # request sent -> last chunk written
    verify_s: float  # whole-file sha256 check (≈0 when chunks came in order)
    bytes_received: int
    resume_rounds: int


def manifest_mismatch(m: feed.Manifest, entry: ModelEntry) -> str | None:
    """None if `m` announces the file of `entry`, else how it differs."""
    if (m.model_id, m.version) != (entry.id, entry.version):
        return f"it is for {m.model_id}@{m.version}"
    if m.size_bytes != entry.size_bytes:
        return f"size {m.size_bytes} ≠ catalog {entry.size_bytes} bytes"
    if m.sha256 != entry.sha256:
        return f"sha256 {m.sha256[:12]}… ≠ catalog {entry.sha256[:12]}…"
    return None


class _Transfer:
    """State of one fetch, fed by the writer thread."""

    def __init__(self, dest: Path, expected: ModelEntry) -> None:
        self.dest = dest
        self.expected = expected
        self.manifest: feed.Manifest | None = None
        self.ignored: list[str] = []  # why each manifest that did not match was ignored
        self.fd: int | None = None
        self.received: set[int] = set()
        self.bytes_received = 0
        self.hasher = hashlib.sha256()
        self.next_in_order = 0
        self.in_order = True
        self.error: TestbedError | None = None
        self.cond = threading.Condition()
        self.done_rounds = 0
        self.last_frame = time.monotonic()

    def on_manifest(self, m: feed.Manifest) -> None:
        with self.cond:
            if self.manifest is not None or self.error is not None:
                return
            problem = manifest_mismatch(m, self.expected)
            if problem is not None:
                self.ignored.append(problem)
                log.warning(
                    "%s: ignored a manifest that does not match the catalog entry: %s",
                    self.expected.key, problem,
                )  # fmt: skip
                return
            try:
                self.fd = os.open(self.dest, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
                os.ftruncate(self.fd, m.size_bytes)
            except OSError as exc:
                self.error = self._write_error(exc)
            self.manifest = m
            self.cond.notify_all()

    def on_chunk(self, c: feed.Chunk) -> None:
        with self.cond:
            self.last_frame = time.monotonic()
            m = self.manifest
            if m is None or self.fd is None or self.error is not None or c.index in self.received:
                return
            if not 0 <= c.index < m.chunk_count:
                return
            if len(c.data) != m.chunk_size(c.index):
                log.warning(
                    "%s: dropped chunk %d of %d bytes (expected %d); it will be asked for again",
                    self.expected.key, c.index, len(c.data), m.chunk_size(c.index),
                )  # fmt: skip
                return
            try:
                os.pwrite(self.fd, c.data, c.index * m.chunk_bytes)
            except OSError as exc:
                self.error = self._write_error(exc)
                self.cond.notify_all()
                return
            self.received.add(c.index)
            self.bytes_received += len(c.data)
            if self.in_order and c.index == self.next_in_order:
                self.hasher.update(c.data)
                self.next_in_order += 1
            else:
                self.in_order = False
            if len(self.received) == m.chunk_count:
                self.cond.notify_all()

    def _write_error(self, exc: OSError) -> TestbedError:
        """The fetch's end for a failed write: `disk_full` names the folder."""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return TestbedError(
                FailureReason.DISK_FULL,
                f"{self.expected.key}: no space left on the device of {self.dest.parent} "
                f"after {self.bytes_received} of {self.expected.size_bytes} bytes",
            )
        return TestbedError(
            FailureReason.FETCH_FAILED,
            f"{self.expected.key}: cannot write {self.dest}: {exc.strerror or exc}",
        )

    def on_done(self) -> None:
        with self.cond:
            if self.manifest is None:
                return  # not the end of our transfer: none has begun
            self.done_rounds += 1
            self.cond.notify_all()

    def on_error(self, err: TestbedError) -> None:
        with self.cond:
            self.error = err
            self.cond.notify_all()

    @property
    def complete(self) -> bool:
        return self.manifest is not None and len(self.received) == self.manifest.chunk_count

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class FeedClient:
    """Fetches models for one edge over MQTT."""

    def __init__(self, client: MqttClient, topics: Topics, edge_id: str) -> None:
        self._client = client
        self._topics = topics
        self._edge_id = edge_id
        self._pending: dict[str, _Transfer] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._frames: queue.Queue[bytes | None] = queue.Queue(FRAME_QUEUE)
        self._writer = threading.Thread(
            target=self._write_frames, name=f"feed-{edge_id}", daemon=True
        )
        self._writer.start()
        client.subscribe(topics.feed(edge_id), self._on_frame)

    def close(self) -> None:
        """End every fetch in flight as `shutting_down` and refuse new ones, stop
        listening, and let the writer thread end (after the frames it holds). A fetch
        waits up to `fetch_timeout_s` for a cloud that may have gone with the bench: the
        edge must not wait that long to stop."""
        stopping = TestbedError(FailureReason.SHUTTING_DOWN, "the edge is stopping")
        with self._lock:
            self._closed = True
            pending = list(self._pending.values())
        for transfer in pending:
            transfer.on_error(stopping)
        self._client.unsubscribe(self._topics.feed(self._edge_id))
        self._frames.put(None)
        self._writer.join(timeout=5)

    def fetch(
        self, entry: ModelEntry, dest: Path, *, timeout_s: float, silence_s: float = 5.0
    ) -> FetchResult:
        """Fetch the file of catalog entry `entry` into `dest`. Raises TestbedError with
        the reason on failure. `silence_s`: with no frame for this long, the request (or
        the missing chunks) is asked for again."""
        request_id = feed.new_request_id()
        transfer = _Transfer(dest, entry)
        with self._lock:
            if self._closed:
                transfer.close()
                raise TestbedError(FailureReason.SHUTTING_DOWN, "the edge is stopping")
            self._pending[request_id] = transfer
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        try:
            self._request(request_id, entry, None)
            manifest = self._wait_manifest(transfer, request_id, deadline, silence_s)
            rounds = self._wait_complete(transfer, request_id, deadline, silence_s)
            fetch_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            digest = self._digest(transfer)
            verify_s = time.perf_counter() - t1
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
            transfer.close()
        if digest != entry.sha256:
            dest.unlink(missing_ok=True)
            raise TestbedError(
                FailureReason.CHECKSUM_MISMATCH,
                f"{entry.key}: sha256 {digest[:12]}… ≠ catalog {entry.sha256[:12]}…; not loaded",
            )
        return FetchResult(
            dest, manifest, entry, fetch_s, verify_s, transfer.bytes_received, rounds
        )

    # ------------------------------------------------------------------ internals

    def _request(self, request_id: str, entry: ModelEntry, chunks: tuple[int, ...] | None) -> None:
        model = ModelRef(entry.id, entry.version)
        req = feed.FetchRequest(request_id, self._edge_id, model, chunks)
        self._client.publish(self._topics.fetch_requests, req.encode(), qos=1)

    def _wait_manifest(
        self, transfer: _Transfer, request_id: str, deadline: float, resend_s: float
    ) -> feed.Manifest:
        """Wait for the manifest, asking again every `resend_s` (a request published
        while the cloud was not yet, or no longer, subscribed is lost: MQTT keeps no
        unsubscribed message). The cloud ignores a repeat of a transfer it is serving."""
        entry = transfer.expected
        asked = time.monotonic()
        with transfer.cond:
            while transfer.manifest is None and transfer.error is None:
                now = time.monotonic()
                left = deadline - now
                if left <= 0:
                    raise TestbedError(FailureReason.FETCH_FAILED, _no_manifest(transfer))
                if now - asked >= resend_s:
                    log.info(
                        "%s: no manifest after %.0f s; asking the cloud again", entry.key, resend_s
                    )
                    self._request(request_id, entry, None)
                    asked = now
                transfer.cond.wait(min(left, 0.5))
            if transfer.error is not None:
                raise transfer.error
            assert transfer.manifest is not None
            return transfer.manifest

    def _wait_complete(
        self, transfer: _Transfer, request_id: str, deadline: float, silence_s: float
    ) -> int:
        entry = transfer.expected
        rounds = 0
        seen_done = 0
        with transfer.cond:
            while not transfer.complete:
                if transfer.error is not None:
                    raise transfer.error
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestbedError(
                        FailureReason.FETCH_FAILED,
                        f"{entry.key}: transfer timed out with {len(transfer.received)}/"
                        f"{transfer.manifest.chunk_count if transfer.manifest else '?'} chunks",
                    )
                stalled = time.monotonic() - transfer.last_frame > silence_s
                if transfer.done_rounds > seen_done or stalled:
                    seen_done = transfer.done_rounds
                    if rounds >= RESUME_ROUNDS:
                        raise TestbedError(
                            FailureReason.FETCH_FAILED,
                            f"{entry.key}: chunks still missing after {rounds} resume rounds",
                        )
                    assert transfer.manifest is not None
                    missing = tuple(
                        i
                        for i in range(transfer.manifest.chunk_count)
                        if i not in transfer.received
                    )
                    rounds += 1
                    transfer.last_frame = time.monotonic()
                    log.info("%s: asking again for %d missing chunk(s)", entry.key, len(missing))
                    self._request(request_id, entry, missing)
                transfer.cond.wait(min(left, 0.25))
        return rounds

    @staticmethod
    def _digest(transfer: _Transfer) -> str:
        if transfer.in_order:
            return transfer.hasher.hexdigest()
        hasher = hashlib.sha256()
        with open(transfer.dest, "rb") as f:
            while block := f.read(_HASH_BLOCK):
                hasher.update(block)
        return hasher.hexdigest()

    def _on_frame(self, _topic: str, payload: bytes) -> None:
        """On paho's network thread: hand the frame on (blocks while the queue is full)."""
        self._frames.put(payload)

    def _write_frames(self) -> None:
        while (payload := self._frames.get()) is not None:
            try:
                self._handle_frame(payload)
            except Exception:  # a bug here must not stop the feed for later transfers
                log.exception("handling a feed frame failed")

    def _handle_frame(self, payload: bytes) -> None:
        try:
            frame = feed.decode(payload)
        except feed.FrameError as exc:
            log.warning("dropped a feed frame: %s (it will be asked for again)", exc)
            return
        with self._lock:
            transfer = self._pending.get(frame.request_id)
        if transfer is None:
            return  # a late frame of a finished or abandoned transfer
        if isinstance(frame, feed.Chunk):
            transfer.on_chunk(frame)
        elif isinstance(frame, feed.Manifest):
            transfer.on_manifest(frame)
        elif isinstance(frame, feed.Done):
            transfer.on_done()
        else:
            transfer.on_error(TestbedError(frame.reason, frame.detail))


def _no_manifest(transfer: _Transfer) -> str:
    """Why a fetch got no manifest: no answer at all, or only ones that did not match."""
    key = transfer.expected.key
    if not transfer.ignored:
        return f"{key}: no answer from the cloud node (is it running?)"
    return (
        f"{key}: no manifest matched the catalog entry; ignored {len(transfer.ignored)} that "
        f"did not match the catalog ({transfer.ignored[-1]})"
    )
