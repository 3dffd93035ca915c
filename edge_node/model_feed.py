"""The edge's side of the cloud→edge model feed (framing in testbed/feed.py).

`FeedClient.fetch` asks the cloud for a model, writes the chunks into a staging file
as they arrive (CRC check, pwrite, and the sha256 updated in order, so verification
costs nothing extra on the common path), asks again for missing chunks, and checks
the whole file against the catalog's sha256.

Frames are handled on the client's own writer thread, fed by paho's network thread
through a short bounded queue: CRC-32, sha256 and pwrite release the GIL, so they run
while paho reads the next chunk (measured: fetch throughput 0.67 → 1.0 × the raw
1 MiB QoS 1 rate on Mosquitto, benchmarks/model_fetch.py). The bound keeps the
back-pressure of QoS 1: when the writer falls behind, paho stops reading and acking.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed import feed
from testbed.messages import ModelRef
from testbed.mqtt import MqttClient
from testbed.topics import Topics
from testbed.types import FailureReason, TestbedError

log = logging.getLogger(__name__)

RESUME_ROUNDS = 3
_HASH_BLOCK = 4 * 1024 * 1024
FRAME_QUEUE = 8
"""Frames (of ≤ 1 MiB) waiting between paho's network thread and the writer thread."""


@dataclass(frozen=True)
class FetchResult:
    path: Path
    manifest: feed.Manifest
    entry: dict[str, Any]  # the catalog entry the cloud sent with the manifest
    fetch_s: float  # request sent -> last chunk written
    verify_s: float  # whole-file sha256 check (≈0 when chunks came in order)
    bytes_received: int
    resume_rounds: int


class _Transfer:
    """State of one fetch, fed by the network thread."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.manifest: feed.Manifest | None = None
        self.entry: dict[str, Any] = {}
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

    def on_manifest(self, m: feed.Manifest, entry: dict[str, Any]) -> None:
        with self.cond:
            if self.manifest is None:
                self.manifest = m
                self.entry = entry
                self.fd = os.open(self.dest, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
                os.ftruncate(self.fd, m.size_bytes)
            self.cond.notify_all()

    def on_chunk(self, c: feed.Chunk) -> None:
        with self.cond:
            self.last_frame = time.monotonic()
            m = self.manifest
            if m is None or self.fd is None or c.index in self.received:
                return
            if not 0 <= c.index < m.chunk_count:
                return
            os.pwrite(self.fd, c.data, c.index * m.chunk_bytes)
            self.received.add(c.index)
            self.bytes_received += len(c.data)
            if self.in_order and c.index == self.next_in_order:
                self.hasher.update(c.data)
                self.next_in_order += 1
            else:
                self.in_order = False
            if len(self.received) == m.chunk_count:
                self.cond.notify_all()

    def on_done(self) -> None:
        with self.cond:
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
        self._frames: queue.Queue[bytes | None] = queue.Queue(FRAME_QUEUE)
        self._writer = threading.Thread(
            target=self._write_frames, name=f"feed-{edge_id}", daemon=True
        )
        self._writer.start()
        client.subscribe(topics.feed(edge_id), self._on_frame)

    def close(self) -> None:
        """Stop listening and let the writer thread end (after the frames it holds)."""
        self._client.unsubscribe(self._topics.feed(self._edge_id))
        self._frames.put(None)
        self._writer.join(timeout=5)

    def fetch(
        self,
        model: ModelRef,
        dest: Path,
        *,
        timeout_s: float,
        rate_mbps: float | None = None,
        on_manifest: Callable[[feed.Manifest], None] | None = None,
        silence_s: float = 5.0,
    ) -> FetchResult:
        """Fetch `model` into `dest`. Raises TestbedError with the reason on failure.

        `on_manifest` may raise (e.g. MODEL_TOO_LARGE) to abandon the transfer early.
        `silence_s`: with no frame for this long, missing chunks are asked for again.
        """
        request_id = feed.new_request_id()
        transfer = _Transfer(dest)
        with self._lock:
            self._pending[request_id] = transfer
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        try:
            self._request(request_id, model, None, rate_mbps)
            manifest = self._wait_manifest(
                transfer, request_id, model, rate_mbps, deadline, silence_s
            )
            if on_manifest is not None:
                on_manifest(manifest)
            rounds = self._wait_complete(
                transfer, request_id, model, rate_mbps, deadline, silence_s
            )
            fetch_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            digest = self._digest(transfer)
            verify_s = time.perf_counter() - t1
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
            transfer.close()
        if digest != manifest.sha256:
            dest.unlink(missing_ok=True)
            raise TestbedError(
                FailureReason.CHECKSUM_MISMATCH,
                f"{model}: sha256 {digest[:12]}… ≠ catalog {manifest.sha256[:12]}…; not loaded",
            )
        return FetchResult(
            dest, manifest, transfer.entry, fetch_s, verify_s, transfer.bytes_received, rounds
        )

    # ------------------------------------------------------------------ internals

    def _request(
        self, request_id: str, model: ModelRef, chunks: tuple[int, ...] | None, rate: float | None
    ) -> None:
        req = feed.FetchRequest(request_id, self._edge_id, model, chunks, rate)
        self._client.publish(self._topics.fetch_requests, req.encode(), qos=1)

    def _wait_manifest(
        self,
        transfer: _Transfer,
        request_id: str,
        model: ModelRef,
        rate: float | None,
        deadline: float,
        resend_s: float,
    ) -> feed.Manifest:
        """Wait for the manifest, asking again every `resend_s` (a request published
        while the cloud was not yet, or no longer, subscribed is lost: MQTT keeps no
        unsubscribed message). The cloud ignores a repeat of a transfer it is serving."""
        asked = time.monotonic()
        with transfer.cond:
            while transfer.manifest is None and transfer.error is None:
                now = time.monotonic()
                left = deadline - now
                if left <= 0:
                    raise TestbedError(
                        FailureReason.FETCH_FAILED,
                        f"{model}: no answer from the cloud node (is it running?)",
                    )
                if now - asked >= resend_s:
                    log.info(
                        "%s: no manifest after %.0f s; asking the cloud again", model, resend_s
                    )
                    self._request(request_id, model, None, rate)
                    asked = now
                transfer.cond.wait(min(left, 0.5))
            if transfer.error is not None:
                raise transfer.error
            assert transfer.manifest is not None
            return transfer.manifest

    def _wait_complete(
        self,
        transfer: _Transfer,
        request_id: str,
        model: ModelRef,
        rate: float | None,
        deadline: float,
        silence_s: float,
    ) -> int:
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
                        f"{model}: transfer timed out with {len(transfer.received)}/"
                        f"{transfer.manifest.chunk_count if transfer.manifest else '?'} chunks",
                    )
                stalled = time.monotonic() - transfer.last_frame > silence_s
                if transfer.done_rounds > seen_done or stalled:
                    seen_done = transfer.done_rounds
                    if rounds >= RESUME_ROUNDS:
                        raise TestbedError(
                            FailureReason.FETCH_FAILED,
                            f"{model}: chunks still missing after {rounds} resume rounds",
                        )
                    assert transfer.manifest is not None
                    missing = tuple(
                        i
                        for i in range(transfer.manifest.chunk_count)
                        if i not in transfer.received
                    )
                    rounds += 1
                    transfer.last_frame = time.monotonic()
                    log.info("%s: asking again for %d missing chunk(s)", model, len(missing))
                    self._request(request_id, model, missing, rate)
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
            transfer.on_manifest(frame, frame.entry)
        elif isinstance(frame, feed.Done):
            transfer.on_done()
        else:
            transfer.on_error(TestbedError(frame.reason, frame.detail))
