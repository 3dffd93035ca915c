"""The cloud's model feed: answers edges' fetch requests over MQTT.

A request is admitted first (cloud_node/admission.py: a known edge, within its rate of
requests, one transfer per (edge, model) at a time), on paho's thread; a model the
catalog does not list is answered there with a `model_unknown` error. An admitted
request is served on a worker thread: the manifest (whole-file sha256 from the catalog,
so a file corrupted on disk is caught by the edge; a file whose size differs from the
catalog is not sent at all), then the chunks at QoS 1 with a bounded window of
unacknowledged messages (memory stays flat however large the model), paced to the
edge's own configured cloud link rate r_cj when link emulation is on, then done.

The catalog is published retained at start (cloud_node/__main__.py) and again whenever
`catalog.json` changes on disk: edges fetch only what it lists (edge_node/catalog_view.py).
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

from cloud_node.admission import FeedLimits, Refusal, RequestGate
from testbed import feed
from testbed.links import Pacer
from testbed.mqtt import MqttClient
from testbed.payloads import PayloadSchema, stamped_json
from testbed.schema import dump_dataclass
from testbed.topics import Topics
from testbed.types import FailureReason
from testbed.zoo.catalog import Catalog, ModelEntry, UnknownModel

log = logging.getLogger(__name__)

CATALOG_POLL_S = 2.0
"""How often the cloud looks for a changed `catalog.json` to publish."""
REFUSAL_LOG_EVERY_S = 10.0
"""A flood of refused requests logs one line per (edge, why) per this many seconds."""

_REFUSED_BECAUSE = {
    Refusal.UNKNOWN_EDGE: "not an edge of this bench's config",
    Refusal.TOO_MANY: "too many requests from that edge (cloud.max_fetch_requests_per_edge)",
    Refusal.BUSY: "that model is already on its way to that edge",
    Refusal.REPEAT: "asked again for a transfer under way",
}


@dataclass
class FeedStats:
    transfers: int = 0
    active: int = 0
    bytes_sent: int = 0
    errors: int = 0
    refused: int = 0


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
    """Serves admitted fetch requests; several transfers run at once."""

    def __init__(
        self,
        client: MqttClient,
        topics: Topics,
        repo: ModelRepository,
        *,
        chunk_bytes: int,
        max_parallel: int,
        limits: FeedLimits,
        window: int = 16,
    ) -> None:
        self._client = client
        self._topics = topics
        self._repo = repo
        self._chunk_bytes = chunk_bytes
        self._gate = RequestGate(limits)
        self._window = window
        self._pool = ThreadPoolExecutor(max_parallel, thread_name_prefix="feed")
        self._lock = threading.Lock()
        self._logged_at: dict[tuple[str, str], float] = {}
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch_catalog, name="catalog", daemon=True)
        self.stats = FeedStats()

    def start(self) -> None:
        self._client.subscribe(self._topics.fetch_requests, self._on_request)
        self._watcher.start()

    def stop(self) -> None:
        self._stopping.set()
        self._client.unsubscribe(self._topics.fetch_requests)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _watch_catalog(self) -> None:
        """Publish the catalog again when `catalog.json` changes (a model registered
        or rebuilt while the bench runs): edges resolve models against it."""
        published = self._repo.catalog
        while not self._stopping.wait(CATALOG_POLL_S):
            current = self._repo.catalog  # re-read when the file changed
            if current is not published:
                self._client.publish_retained(
                    self._topics.catalog, stamped_json(PayloadSchema.CATALOG, current.to_json())
                )
                published = current

    # ------------------------------------------------------------------ admission

    def _on_request(self, _topic: str, payload: bytes) -> None:
        """On paho's network thread: decide, answer a refusal, queue the rest."""
        try:
            request = feed.FetchRequest.decode(payload)
        except ValueError as exc:
            self._count_refused()
            if self._first_in_a_while(("?", "malformed")):
                log.warning("ignored a malformed fetch request: %s", exc)
            return
        refusal = self._gate.admit(request)
        if refusal is not None:
            self._refuse(request, refusal)
            return
        try:
            entry = self._repo.lookup(request.model.model_id, request.model.version)
        except UnknownModel:
            self._gate.release(request)
            self._count_refused()
            log.warning("%s asked for %s: not in the catalog", request.edge_id, request.model)
            detail = f"{request.model} is not in the catalog"
            error = feed.FeedError(request.request_id, FailureReason.MODEL_UNKNOWN, detail)
            self._client.publish(self._topics.feed(request.edge_id), error.encode(), qos=1)
            return
        self._pool.submit(self._serve, request, entry)

    def _refuse(self, request: feed.FetchRequest, refusal: Refusal) -> None:
        self._count_refused()
        if refusal is Refusal.REPEAT:  # an edge asking again before our manifest reached it
            return
        edge = request.edge_id if refusal is not Refusal.UNKNOWN_EDGE else "?"
        if self._first_in_a_while((edge, refusal.value)):
            log.warning(
                "refused a fetch request from %r for %s: %s (more like it: not logged for %g s)",
                request.edge_id[:64], request.model, _REFUSED_BECAUSE[refusal],
                REFUSAL_LOG_EVERY_S,
            )  # fmt: skip

    def _count_refused(self) -> None:
        with self._lock:
            self.stats.refused += 1

    def _first_in_a_while(self, key: tuple[str, str]) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._logged_at.get(key, -math.inf) < REFUSAL_LOG_EVERY_S:
                return False
            self._logged_at[key] = now
            return True

    # ------------------------------------------------------------------ transfers

    def _serve(self, req: feed.FetchRequest, entry: ModelEntry) -> None:
        topic = self._topics.feed(req.edge_id)
        with self._lock:
            self.stats.active += 1
        try:
            last: feed.Done | feed.FeedError = self._send(req, entry, topic)
        except Exception as exc:  # never leave an edge waiting without an answer
            log.exception("transfer %s of %s to %s failed", req.request_id, req.model, req.edge_id)
            with self._lock:
                self.stats.errors += 1
            last = feed.FeedError(req.request_id, FailureReason.FETCH_FAILED, str(exc))
        finally:
            with self._lock:
                self.stats.active -= 1
            # free before the edge hears the end: it may ask for missing chunks at once
            self._gate.release(req)
        self._client.publish(topic, last.encode(), qos=1)

    def _send(
        self, req: feed.FetchRequest, entry: ModelEntry, topic: str
    ) -> feed.Done | feed.FeedError:
        """Send the manifest and the chunks; returns the frame that ends the transfer."""
        fd = os.open(self._repo.file_of(entry), os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size != entry.size_bytes:
                with self._lock:
                    self.stats.errors += 1
                detail = (
                    f"the cloud's copy of {entry.key} is {size} bytes, the catalog says "
                    f"{entry.size_bytes}: not sent"
                )
                log.error("%s", detail)
                return feed.FeedError(req.request_id, FailureReason.CHECKSUM_MISMATCH, detail)
            count = max(1, math.ceil(size / self._chunk_bytes))
            manifest = feed.Manifest(
                req.request_id, entry.id, entry.version, size, entry.sha256,
                self._chunk_bytes, count, dump_dataclass(entry),
            )  # fmt: skip
            self._client.publish(topic, manifest.encode(), qos=1)
            t0 = time.perf_counter()
            sent = self._send_chunks(req, fd, count, topic)
        finally:
            os.close(fd)
        with self._lock:
            self.stats.transfers += 1
        log.info(
            "sent %s (%d of %d chunks, %.1f MB) to %s in %.2f s",
            entry.key, sent, count, size / 1e6, req.edge_id, time.perf_counter() - t0,
        )  # fmt: skip
        return feed.Done(req.request_id, sent)

    def _send_chunks(self, req: feed.FetchRequest, fd: int, count: int, topic: str) -> int:
        """The chunks asked for, paced to the edge's configured rate; returns how many."""
        indices = range(count) if req.chunks is None else req.chunks
        pacer = Pacer(self._gate.pace_mbps(req.edge_id))
        unacked: deque = deque()
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
        return sent
