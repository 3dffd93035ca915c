"""The edge's model cache: capacity in bytes, least-recently-used eviction.

A model enters after fetch (into a staging folder), sha256 verification, runtime load
and warm-up. Space is made only when a verified model is ready to enter, by evicting
the least recently used models that are not in use; a model in use is never evicted.
Two tasks that need the same missing model share one download (single flight). The
cache's files and an index survive a restart; at start every file is verified again
and loaded, and a file that fails is dropped.

What is fetched is decided by the edge's own copy of the catalog (`resolve`,
edge_node/catalog_view.py), before anything is asked for: a model larger than the whole
cache fails then, and the fetch accepts only the file of that entry. Every file name is
built from a catalog entry's id and version (plain names, testbed/zoo/catalog.py) and
checked to lie inside the cache folder (`file_in`), also for the names the index lists.

Kept off a task's path (benchmarks/cold_admission.py): the index is written by its own
thread (`IndexWriter`), outside the cache's lock, so cache hits never wait on a file
write; `close()` flushes it. An index a crash left a moment behind is safe: restore
drops files the index does not name and entries whose file is missing.

Invariant (tests check it from the published state): the bytes of the models in the
cache never exceed the capacity.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_node.model_feed import FetchResult
from testbed.energy import EnergyMeter, modeled
from testbed.messages import CacheCounters, CachedModelInfo, ModelRef
from testbed.runtime import LoadedModel, ModelRuntime
from testbed.schema import dump_dataclass, load_dataclass
from testbed.types import EnergyPart, EnergyPartName, FailureReason, TestbedError
from testbed.zoo.catalog import ModelEntry, file_in, file_sha256, write_atomic

log = logging.getLogger(__name__)

INDEX_NAME = "index.json"
STAGING = ".staging"

Resolver = Callable[[ModelRef], ModelEntry]
"""The catalog entry of a model; raises TestbedError (MODEL_UNKNOWN, FETCH_FAILED)."""
Fetcher = Callable[[ModelEntry, Path], FetchResult]
"""Fetch the file of an entry into a path; raises TestbedError with the reason."""


@dataclass
class _Entry:
    entry: ModelEntry
    path: Path
    model: LoadedModel | None = None  # None while loading
    in_use: int = 0
    last_used_seq: int = 0

    @property
    def ready(self) -> bool:
        return self.model is not None


@dataclass
class Lease:
    """A model held for one task; its timing and energy of getting it ready."""

    model: LoadedModel
    hit: bool
    fetch_ms: float = 0.0
    verify_ms: float = 0.0
    load_ms: float = 0.0
    warmup_ms: float = 0.0
    bytes_fetched: int = 0
    energy: list[EnergyPart] = field(default_factory=list)


IndexRow = tuple[ModelEntry, str, int]
"""A cached model in the index: its catalog entry, its file name, its last-use order."""


class IndexWriter:
    """Writes the cache index on a daemon thread: the latest snapshot wins (a burst of
    changes is one write), through a temporary file and a rename (no torn index)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition()
        self._pending: list[IndexRow] | None = None
        self._writing = False
        self._thread: threading.Thread | None = None

    def submit(self, rows: list[IndexRow]) -> None:
        """Queue `rows` (replacing a snapshot not yet written); returns at once."""
        with self._cond:
            self._pending = rows
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="cache-index", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every submitted snapshot is on disk; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._pending is None and not self._writing, timeout_s
            )

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None)
                rows, self._pending = self._pending, None
                self._writing = True
            try:
                self._write(rows or [])
            except Exception:  # the next change writes it again; a restart re-verifies
                log.exception("writing the cache index %s failed", self.path)
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()

    def _write(self, rows: list[IndexRow]) -> None:
        doc = {
            "models": [
                {"entry": dump_dataclass(entry), "file": name, "last_used_seq": seq}
                for entry, name, seq in rows
            ]
        }
        write_atomic(self.path, json.dumps(doc, indent=1).encode())


class ModelCache:
    def __init__(
        self,
        *,
        capacity_bytes: int,
        cache_dir: Path,
        runtime: ModelRuntime,
        resolve: Resolver,
        fetch: Fetcher,
        meter: EnergyMeter,
        cloud_transmit_power_w: float,
        full_wait_s: float = 30.0,
        on_change: Callable[[], None] = lambda: None,
        on_evict: Callable[[ModelEntry], None] = lambda _entry: None,
    ) -> None:
        self.capacity_bytes = capacity_bytes
        self._on_evict = on_evict  # told each model evicted (an event, testbed/events.py)
        self.dir = cache_dir
        self._runtime = runtime
        self._resolve = resolve
        self._fetch = fetch
        self._meter = meter
        self._cloud_power_w = cloud_transmit_power_w
        self._full_wait_s = full_wait_s
        self._on_change = on_change
        self._entries: dict[str, _Entry] = {}  # by model id
        self._inflight: dict[str, Future[None]] = {}
        self._cond = threading.Condition()
        self._seq = 0
        self.counters = CacheCounters()
        self._index = IndexWriter(self.dir / INDEX_NAME)
        (self.dir / STAGING).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ queries

    @property
    def used_bytes(self) -> int:
        with self._cond:
            return self._used()

    def _used(self) -> int:
        return sum(e.entry.size_bytes for e in self._entries.values())

    def cached(self) -> list[CachedModelInfo]:
        """Ready models, least recently used first."""
        with self._cond:
            ready = sorted(
                (e for e in self._entries.values() if e.ready), key=lambda e: e.last_used_seq
            )
            return [
                CachedModelInfo(
                    ModelRef(e.entry.id, e.entry.version),
                    e.entry.size_bytes,
                    e.in_use > 0,
                    e.last_used_seq,
                )
                for e in ready
            ]

    def counters_copy(self) -> CacheCounters:
        with self._cond:
            return CacheCounters(**dump_dataclass(self.counters))

    # ------------------------------------------------------------------ acquire

    @contextmanager
    def acquire(self, ref: ModelRef, download: bool) -> Iterator[Lease]:
        """Hold `ref` ready for a task; fetch it first if missing and `download`.

        Raises TestbedError: MODEL_MISSING (missing, no download), MODEL_TOO_LARGE,
        CHECKSUM_MISMATCH, FETCH_FAILED, MODEL_UNKNOWN, LOAD_FAILED, CACHE_FULL, DISK_FULL.
        """
        lease = self._acquire(ref, download)
        try:
            yield lease
        finally:
            self._release(ref.model_id)

    def _matches(self, e: _Entry | None, ref: ModelRef) -> bool:
        return e is not None and (not ref.version or e.entry.version == ref.version)

    def _acquire(self, ref: ModelRef, download: bool) -> Lease:
        with self._cond:
            e = self._entries.get(ref.model_id)
            if self._matches(e, ref) and e is not None and e.ready:
                assert e.model is not None
                self._pin(e)
                self.counters.hits += 1
                self._changed()
                return Lease(e.model, hit=True)
            self.counters.misses += 1
            if not download:
                self.counters.rejected_missing += 1
                self._changed()
                raise TestbedError(
                    FailureReason.MODEL_MISSING, f"{ref} is not cached and download=0"
                )
            flight = self._inflight.get(ref.model_id)
            leader = flight is None
            if leader:
                flight = self._inflight[ref.model_id] = Future()
        assert flight is not None
        if leader:
            try:
                lease = self._admit(ref)
            except BaseException as exc:
                flight.set_exception(exc)
                raise
            else:
                flight.set_result(None)
            finally:
                with self._cond:
                    self._inflight.pop(ref.model_id, None)
            return lease
        # Another task is fetching this model: wait for it instead of a second download.
        t0 = time.perf_counter()
        flight.result()  # re-raises the leader's failure (same reason for this task)
        waited_ms = (time.perf_counter() - t0) * 1e3
        with self._cond:
            e = self._entries.get(ref.model_id)
            if e is None or not e.ready or e.model is None:
                raise TestbedError(FailureReason.CACHE_FULL, f"{ref} was evicted before use")
            self._pin(e)
            self._changed()
            return Lease(e.model, hit=False, fetch_ms=waited_ms)

    def _pin(self, e: _Entry) -> None:
        self._seq += 1
        e.in_use += 1
        e.last_used_seq = self._seq

    def _release(self, model_id: str) -> None:
        with self._cond:
            e = self._entries.get(model_id)
            if e is not None and e.in_use > 0:
                e.in_use -= 1
            self._cond.notify_all()
            self._changed()

    # ------------------------------------------------------------------ admission

    def _admit(self, ref: ModelRef) -> Lease:
        entry = self._resolve(ref)
        if entry.size_bytes > self.capacity_bytes:  # refused before a byte is asked for
            raise TestbedError(
                FailureReason.MODEL_TOO_LARGE,
                f"{ref} is {entry.size_mb:.1f} MB, larger than the whole cache "
                f"({self.capacity_bytes / 1e6:.1f} MB)",
            )
        staging = file_in(self.dir / STAGING, f"{entry.id}.{uuid.uuid4().hex[:8]}.part")
        try:
            result = self._fetch(entry, staging)
        except TestbedError as exc:
            staging.unlink(missing_ok=True)
            if exc.reason is FailureReason.CHECKSUM_MISMATCH:
                with self._cond:
                    self.counters.checksum_failures += 1
                    self._changed()
            raise
        lease = Lease(
            model=None,  # type: ignore[arg-type]  # set below
            hit=False,
            fetch_ms=result.fetch_s * 1e3,
            verify_ms=result.verify_s * 1e3,
            bytes_fetched=result.bytes_received,
        )
        lease.energy.append(modeled(EnergyPartName.CLOUD_TX, self._cloud_power_w, result.fetch_s))
        with self._cond:
            self.counters.fetches += 1
            self.counters.bytes_fetched += result.bytes_received
            slot = self._make_room(entry, staging)
        try:
            with self._meter.measure(EnergyPartName.EDGE_LOAD) as span:
                t0 = time.perf_counter()
                model = self._runtime.load(slot.path, entry)
                lease.load_ms = (time.perf_counter() - t0) * 1e3
            lease.energy.append(span.part)
            with self._meter.measure(EnergyPartName.EDGE_WARMUP) as span:
                t0 = time.perf_counter()
                model.warmup()
                lease.warmup_ms = (time.perf_counter() - t0) * 1e3
            lease.energy.append(span.part)
        except Exception as exc:
            with self._cond:
                self._entries.pop(entry.id, None)
                self._cond.notify_all()
            slot.path.unlink(missing_ok=True)
            if isinstance(exc, TestbedError):
                raise
            raise TestbedError(FailureReason.LOAD_FAILED, f"{ref}: {exc}") from exc
        with self._cond:
            slot.model = model
            lease.model = model
            self._save_index()
            self._changed()
        log.info(
            "admitted %s (%.1f MB): fetch %.0f ms, verify %.0f ms, load %.0f ms, warm-up %.0f ms",
            entry.key, entry.size_mb, lease.fetch_ms, lease.verify_ms, lease.load_ms,
            lease.warmup_ms,
        )  # fmt: skip
        return lease

    def _make_room(self, entry: ModelEntry, staging: Path) -> _Entry:
        """Evict LRU idle models until `entry` fits, then place it (pinned, loading).

        Called with the lock held. Waits up to `full_wait_s` for models in use to be
        released; raises CACHE_FULL if there is still no room.
        """
        deadline = time.monotonic() + self._full_wait_s
        old = self._entries.get(entry.id)
        if old is not None and old.in_use == 0:  # another version of the same model
            self._evict(old)
        while True:
            need = self._used() + entry.size_bytes - self.capacity_bytes
            idle = sorted(
                (e for e in self._entries.values() if e.in_use == 0 and e.ready),
                key=lambda e: e.last_used_seq,
            )
            while need > 0 and idle:
                victim = idle.pop(0)
                need -= victim.entry.size_bytes
                self._evict(victim)
            if need <= 0 and entry.id not in self._entries:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                staging.unlink(missing_ok=True)
                raise TestbedError(
                    FailureReason.CACHE_FULL,
                    f"no room for {entry.key} ({entry.size_mb:.1f} MB): the models in the "
                    f"cache are in use",
                )
            self._cond.wait(min(left, 0.5))
        final = file_in(self.dir, f"{entry.id}-{entry.version}.onnx")
        staging.replace(final)
        slot = _Entry(entry, final)
        self._pin(slot)
        self._entries[entry.id] = slot
        return slot

    def _evict(self, e: _Entry) -> None:
        self._entries.pop(e.entry.id, None)
        if e.model is not None:
            e.model.close()
        e.path.unlink(missing_ok=True)
        self.counters.evictions += 1
        log.info("evicted %s (%.1f MB)", e.entry.key, e.entry.size_mb)
        self._on_evict(e.entry)

    # ------------------------------------------------------------------ operator calls

    def evict(self, ref: ModelRef) -> None:
        """Drop a model now (operator call). Raises if it is in use or not cached."""
        with self._cond:
            e = self._entries.get(ref.model_id)
            if not self._matches(e, ref) or e is None or not e.ready:
                raise TestbedError(FailureReason.MODEL_MISSING, f"{ref} is not cached")
            if e.in_use:
                raise TestbedError(FailureReason.CACHE_FULL, f"{ref} is in use; not evicted")
            self._evict(e)
            self._save_index()
            self._changed()

    # ------------------------------------------------------------------ persistence

    def _index_rows(self) -> list[IndexRow]:
        return [(e.entry, e.path.name, e.last_used_seq) for e in self._entries.values() if e.ready]

    def _save_index(self) -> None:
        """Queue the index for writing (called with the lock held: snapshots stay in order)."""
        self._index.submit(self._index_rows())

    def restore(self) -> list[str]:
        """Re-verify and load the models a previous run left; returns what was dropped."""
        for leftover in (self.dir / STAGING).iterdir():  # downloads a crash interrupted
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        index = self.dir / INDEX_NAME
        dropped: list[str] = []
        try:
            rows = json.loads(index.read_text())["models"]
        except FileNotFoundError:
            rows = []
        except (ValueError, KeyError, OSError) as exc:
            dropped.append(f"index unreadable ({exc}); starting empty")
            rows = []
        if not isinstance(rows, list):
            dropped.append("index lists no models; starting empty")
            rows = []
        rows = [r for r in rows if isinstance(r, dict)]
        rows.sort(
            key=lambda r: r.get("last_used_seq") if type(r.get("last_used_seq")) is int else 0
        )
        # Every file is hashed before it is loaded (a damaged file must never reach the
        # parser: it could crash the edge at every start), but the next file's hash runs
        # on a helper thread while this one loads (file reads and sha256 release the
        # GIL): a restart costs the first hash plus the loads, not every hash on top.
        with ThreadPoolExecutor(1, thread_name_prefix="reverify") as hasher:
            digests = [hasher.submit(self._file_digest, row) for row in rows]
            for row, digest in zip(rows, digests, strict=True):
                try:
                    entry = load_dataclass(ModelEntry, row["entry"])
                    path = self._row_path(row)
                    if digest.result() != entry.sha256:
                        raise ValueError("sha256 differs from the catalog's")
                    if self._used() + entry.size_bytes > self.capacity_bytes:
                        raise ValueError("no longer fits the configured capacity")
                    model = self._runtime.load(path, entry)
                    model.warmup()
                except Exception as exc:  # any bad file is dropped, never loaded half
                    dropped.append(f"{str(row.get('file', '?'))[:80]!r}: {exc}")
                    with contextlib.suppress(ValueError):
                        self._row_path(row).unlink(missing_ok=True)
                    continue
                self._seq += 1
                self._entries[entry.id] = _Entry(entry, path, model, 0, self._seq)
        known = {e.path.name for e in self._entries.values()} | {INDEX_NAME, STAGING}
        for stray in self.dir.iterdir():
            if stray.name not in known and stray.is_file():
                stray.unlink(missing_ok=True)
        with self._cond:
            self._save_index()
        return dropped

    def _row_path(self, row: dict[str, Any]) -> Path:
        """The file an index row names, inside the cache folder; ValueError otherwise."""
        name = row.get("file")
        if not isinstance(name, str):
            raise ValueError("the index row names no file")
        return file_in(self.dir, name)

    def _file_digest(self, row: dict[str, Any]) -> str:
        """SHA-256 of an index row's file (raises if the row or the file is bad)."""
        return file_sha256(self._row_path(row))

    def close(self) -> None:
        """Write the index out and release every session."""
        with self._cond:
            self._save_index()
        self._index.flush()
        with self._cond:
            for e in self._entries.values():
                if e.model is not None:
                    e.model.close()

    def _changed(self) -> None:
        try:
            self._on_change()
        except Exception:
            log.exception("state callback failed")
