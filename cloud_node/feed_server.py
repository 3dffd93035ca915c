"""The cloud's model feed: answers edges' fetch requests over MQTT.

Each request is served on a worker thread: the manifest (whole-file sha256 from the
catalog, so a file corrupted on disk is caught by the edge), then the chunks at QoS 1
with a bounded window of unacknowledged messages (memory stays flat however large the
model), paced to the edge's cloud link rate r_cj when link emulation is on, then done.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from testbed import feed
from testbed.links import Pacer
from testbed.mqtt import MqttClient
from testbed.schema import dump_dataclass
from testbed.topics import Topics
from testbed.types import FailureReason
from testbed.zoo.catalog import Catalog, ModelEntry, UnknownModel

log = logging.getLogger(__name__)


@dataclass
class FeedStats:
    transfers: int = 0
    active: int = 0
    bytes_sent: int = 0
    errors: int = 0


class ModelRepository:
    """The catalog and files of a zoo folder; re-reads the catalog when it changes."""

    def __init__(self, root: os.PathLike[str] | str) -> None:
        self.root = os.fspath(root)
        self._lock = threading.Lock()
        self._mtime = -1.0
        self._catalog = self._reload()

    def _reload(self) -> Catalog:
        catalog = Catalog.load(self.root)
        self._mtime = os.stat(catalog_path(self.root)).st_mtime
        return catalog

    @property
    def catalog(self) -> Catalog:
        with self._lock:
            try:
                if os.stat(catalog_path(self.root)).st_mtime != self._mtime:
                    self._catalog = self._reload()
                    log.info(
                        "catalog changed on disk: reloaded (%d models)", len(self._catalog.entries)
                    )
            except OSError:
                pass  # keep serving the catalog we have
            return self._catalog

    def lookup(self, model_id: str, version: str) -> ModelEntry:
        return self.catalog.get(model_id, version)

    def file_of(self, entry: ModelEntry) -> str:
        return os.fspath(entry.path(self.root))


def catalog_path(root: str) -> str:
    return os.path.join(root, "catalog.json")


class FeedServer:
    """Serves fetch requests from every edge; several transfers run at once."""

    def __init__(
        self,
        client: MqttClient,
        topics: Topics,
        repo: ModelRepository,
        *,
        chunk_bytes: int,
        max_parallel: int,
        pace: bool,
        window: int = 16,
    ) -> None:
        self._client = client
        self._topics = topics
        self._repo = repo
        self._chunk_bytes = chunk_bytes
        self._pace = pace
        self._window = window
        self._pool = ThreadPoolExecutor(max_parallel, thread_name_prefix="feed")
        self._lock = threading.Lock()
        self._serving: set[str] = set()  # request ids with a transfer under way
        self.stats = FeedStats()

    def start(self) -> None:
        self._client.subscribe(self._topics.fetch_requests, self._on_request)

    def stop(self) -> None:
        self._client.unsubscribe(self._topics.fetch_requests)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _on_request(self, _topic: str, payload: bytes) -> None:
        try:
            request = feed.FetchRequest.decode(payload)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignored a malformed fetch request: %s", exc)
            return
        with self._lock:
            if request.chunks is None and request.request_id in self._serving:
                return  # the edge asked again before our manifest reached it
            self._serving.add(request.request_id)
        self._pool.submit(self._serve, request)

    def _serve(self, req: feed.FetchRequest) -> None:
        topic = self._topics.feed(req.edge_id)
        with self._lock:
            self.stats.active += 1
        try:
            self._send(req, topic)
        except Exception as exc:  # never leave an edge waiting without an answer
            log.exception("transfer %s of %s to %s failed", req.request_id, req.model, req.edge_id)
            with self._lock:
                self.stats.errors += 1
            error = feed.FeedError(req.request_id, FailureReason.FETCH_FAILED, str(exc))
            self._client.publish(topic, error.encode(), qos=1)
        finally:
            with self._lock:
                self.stats.active -= 1
                self._serving.discard(req.request_id)

    def _send(self, req: feed.FetchRequest, topic: str) -> None:
        try:
            entry = self._repo.lookup(req.model.model_id, req.model.version)
        except UnknownModel:
            log.warning("%s asked for %s: not in the catalog", req.edge_id, req.model)
            error = feed.FeedError(
                req.request_id, FailureReason.MODEL_UNKNOWN, f"{req.model} is not in the catalog"
            )
            self._client.publish(topic, error.encode(), qos=1)
            return
        path = self._repo.file_of(entry)
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            count = max(1, math.ceil(size / self._chunk_bytes))
            manifest = feed.Manifest(
                request_id=req.request_id,
                model_id=entry.id,
                version=entry.version,
                size_bytes=size,
                sha256=entry.sha256,
                chunk_bytes=self._chunk_bytes,
                chunk_count=count,
                entry=dump_dataclass(entry),
            )
            self._client.publish(topic, manifest.encode(), qos=1)
            indices = range(count) if req.chunks is None else req.chunks
            pacer = Pacer(req.rate_mbps if self._pace else None)
            unacked: deque = deque()
            t0 = time.perf_counter()
            sent = 0
            for index in indices:
                if not 0 <= index < count:
                    continue
                data = os.pread(fd, self._chunk_bytes, index * self._chunk_bytes)
                pacer.wait(len(data))
                unacked.append(
                    self._client.publish(topic, feed.encode_chunk(req.request_id, index, data))
                )
                while len(unacked) > self._window:
                    unacked.popleft().wait_for_publish(timeout=30)
                sent += 1
                with self._lock:
                    self.stats.bytes_sent += len(data)
            self._client.publish(topic, feed.Done(req.request_id, sent).encode(), qos=1)
        finally:
            os.close(fd)
        with self._lock:
            self.stats.transfers += 1
        elapsed = time.perf_counter() - t0
        log.info(
            "sent %s (%d of %d chunks, %.1f MB) to %s in %.2f s",
            entry.key,
            sent,
            count,
            size / 1e6,
            req.edge_id,
            elapsed,
        )
