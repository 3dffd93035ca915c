"""The cloud→edge model feed over MQTT: message framing shared by both ends.

An edge asks on `{p}/cloud/fetch` (JSON `FetchRequest`); the cloud answers on the
edge's own topic `{p}/edge/{edge}/feed`, all at QoS 1 and in order (one topic, one
publisher): a manifest, the chunks, then done — or an error. Each frame starts with
one type byte:

    M  JSON Manifest: size, sha256 of the whole file (from the catalog), chunk size/count,
       and the model's catalog entry
    C  16-byte request id, u32 chunk index, u32 CRC-32 of the data, then the data
    D  JSON Done: chunks sent
    E  JSON FeedError: a reason (model_unknown, ...) and a detail

Per-chunk CRC-32 catches transport damage; the whole-file sha256 from the catalog
catches a corrupted file on the cloud (docs/wire-protocol.md). An edge resumes by
asking again with the list of missing chunk indices.

Any client of the broker can publish on these topics, so decoding checks every field
(`FetchRequest.decode`, `Manifest.check`): ids and versions are plain names
(testbed/zoo/catalog.py), request ids 32 hex digits, sizes and counts bounded and
consistent; a frame that fails is a `FrameError`, a request a `ValueError`.
"""

from __future__ import annotations

import json
import math
import re
import struct
import uuid
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

from testbed.messages import ModelRef
from testbed.payloads import SCHEMA_KEY, PayloadSchema
from testbed.types import FailureReason
from testbed.zoo.catalog import model_name_problem

_CHUNK = struct.Struct(">16sII")
MANIFEST, CHUNK, DONE, ERROR = b"M", b"C", b"D", b"E"
MAX_CHUNK_BYTES = 4 * 1024 * 1024
"""Largest chunk a manifest may announce (the cloud sends at most 1 MiB, `cloud.chunk_kib`)."""
MAX_RESUME_CHUNKS = 65536
"""Most chunk indices one request may ask for again (64 GiB of 1 MiB chunks)."""
MAX_DETAIL_CHARS = 1000
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def _field(raw: dict[str, Any], key: str, kind: type, default: Any = None) -> Any:
    """`raw[key]` if it is a `kind` (bool is not an int here), else `ValueError`."""
    value = raw.get(key, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _request_id(value: Any) -> str:
    if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value):
        raise ValueError("request_id: expected 32 lower-case hex digits")
    return value


def _model_name(value: Any) -> str:
    problem = model_name_problem(value)
    if problem:
        raise ValueError(f"model id or version {str(value)[:80]!r}: {problem}")
    return str(value)


def _chunk_list(chunks: Any) -> tuple[int, ...]:
    if not isinstance(chunks, list) or len(chunks) > MAX_RESUME_CHUNKS:
        raise ValueError(f"chunks: expected a list of at most {MAX_RESUME_CHUNKS} indices")
    if not all(type(c) is int and 0 <= c < 2**32 for c in chunks):
        raise ValueError("chunks: expected chunk indices (integers ≥ 0)")
    return tuple(chunks)


@dataclass(frozen=True)
class FetchRequest:
    """An edge's request. It names no rate: the cloud paces each edge to the rate of its
    own config (cloud_node/admission.py), whatever a request says."""

    request_id: str
    edge_id: str
    model: ModelRef
    chunks: tuple[int, ...] | None = None  # None: the whole file; else only these

    def encode(self) -> bytes:
        return json.dumps(
            {
                SCHEMA_KEY: PayloadSchema.FETCH_REQUEST.value,
                "request_id": self.request_id,
                "edge_id": self.edge_id,
                "model_id": self.model.model_id,
                "version": self.model.version,
                "chunks": list(self.chunks) if self.chunks is not None else None,
            }
        ).encode()

    @classmethod
    def decode(cls, payload: bytes) -> FetchRequest:
        """Parse and check a request; `ValueError` saying what is wrong (unknown keys,
        such as the `rate_mbps` older edges sent, are ignored)."""
        try:
            raw = json.loads(payload)
        except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, nested too deep
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
        version = raw.get("version") or ""  # "" or null: the newest
        if not isinstance(version, str):
            raise ValueError(f"version: expected str, got {type(version).__name__}")
        chunks = raw.get("chunks")
        return cls(
            request_id=_request_id(raw.get("request_id")),
            edge_id=_field(raw, "edge_id", str),
            model=ModelRef(_model_name(raw.get("model_id")), version and _model_name(version)),
            chunks=None if chunks is None else _chunk_list(chunks),
        )


@dataclass(frozen=True)
class Manifest:
    request_id: str
    model_id: str
    version: str
    size_bytes: int
    sha256: str
    chunk_bytes: int
    chunk_count: int
    entry: dict[str, Any] = field(default_factory=dict)  # the catalog entry (family, I/O, ...)

    def encode(self) -> bytes:
        return MANIFEST + json.dumps(asdict(self)).encode()

    def check(self) -> Manifest:
        """Self, if every field is well-formed; `ValueError` naming the first that is not
        (a manifest's fields become a file name, a file size and a loop bound)."""
        _request_id(self.request_id)
        _model_name(self.model_id)
        _model_name(self.version)
        if not isinstance(self.sha256, str) or not _SHA256.fullmatch(self.sha256):
            raise ValueError("sha256: expected 64 lower-case hex digits")
        for name in ("size_bytes", "chunk_bytes", "chunk_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected an integer ≥ 0, got {value!r}")
        if not 0 < self.chunk_bytes <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_bytes: expected 1..{MAX_CHUNK_BYTES}, got {self.chunk_bytes}")
        if self.chunk_count != max(1, math.ceil(self.size_bytes / self.chunk_bytes)):
            raise ValueError(f"chunk_count {self.chunk_count} does not fit size and chunk size")
        if not isinstance(self.entry, dict):
            raise ValueError(f"entry: expected an object, got {type(self.entry).__name__}")
        return self

    def chunk_size(self, index: int) -> int:
        """Bytes of chunk `index` (every chunk is full but the last)."""
        return min(self.chunk_bytes, self.size_bytes - index * self.chunk_bytes)


@dataclass(frozen=True)
class Done:
    request_id: str
    chunks_sent: int

    def encode(self) -> bytes:
        return DONE + json.dumps(asdict(self)).encode()


@dataclass(frozen=True)
class FeedError:
    request_id: str
    reason: FailureReason
    detail: str

    def encode(self) -> bytes:
        body = {"request_id": self.request_id, "reason": self.reason.value, "detail": self.detail}
        return ERROR + json.dumps(body).encode()


@dataclass(frozen=True)
class Chunk:
    request_id: str
    index: int
    data: memoryview


def encode_chunk(request_id: str, index: int, data: bytes | memoryview) -> bytes:
    header = _CHUNK.pack(bytes.fromhex(request_id), index, zlib.crc32(data))
    return b"".join((CHUNK, header, data))


class FrameError(ValueError):
    """A frame that cannot be decoded (wrong type byte, bad JSON, bad CRC)."""


def decode(payload: bytes) -> Manifest | Chunk | Done | FeedError:
    kind = payload[:1]
    try:
        if kind == CHUNK:
            rid, index, crc = _CHUNK.unpack_from(payload, 1)
            data = memoryview(payload)[1 + _CHUNK.size :]
            if zlib.crc32(data) != crc:
                raise FrameError(f"chunk {index}: CRC-32 mismatch")
            return Chunk(rid.hex(), index, data)
        body = json.loads(payload[1:])
        if not isinstance(body, dict):
            raise ValueError(f"expected a JSON object, got {type(body).__name__}")
        if kind == MANIFEST:
            return Manifest(**body).check()
        if kind == DONE:
            return Done(_request_id(body["request_id"]), _field(body, "chunks_sent", int))
        if kind == ERROR:
            detail = _field(body, "detail", str)[:MAX_DETAIL_CHARS]
            return FeedError(_request_id(body["request_id"]), FailureReason(body["reason"]), detail)
    except (struct.error, ValueError, KeyError, TypeError, RecursionError) as exc:
        if isinstance(exc, FrameError):
            raise
        raise FrameError(f"undecodable {kind!r} frame: {exc}") from None
    raise FrameError(f"unknown frame type {kind!r}")
