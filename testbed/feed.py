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
"""

from __future__ import annotations

import json
import struct
import uuid
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

from testbed.messages import ModelRef
from testbed.types import FailureReason

_CHUNK = struct.Struct(">16sII")
MANIFEST, CHUNK, DONE, ERROR = b"M", b"C", b"D", b"E"


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class FetchRequest:
    request_id: str
    edge_id: str
    model: ModelRef
    chunks: tuple[int, ...] | None = None  # None: the whole file; else only these
    rate_mbps: float | None = None  # pace to this rate (link emulation); None: unpaced

    def encode(self) -> bytes:
        return json.dumps(
            {
                "request_id": self.request_id,
                "edge_id": self.edge_id,
                "model_id": self.model.model_id,
                "version": self.model.version,
                "chunks": list(self.chunks) if self.chunks is not None else None,
                "rate_mbps": self.rate_mbps,
            }
        ).encode()

    @classmethod
    def decode(cls, payload: bytes) -> FetchRequest:
        raw = json.loads(payload)
        chunks = raw.get("chunks")
        return cls(
            request_id=str(raw["request_id"]),
            edge_id=str(raw["edge_id"]),
            model=ModelRef(str(raw["model_id"]), str(raw.get("version") or "")),
            chunks=tuple(int(c) for c in chunks) if chunks is not None else None,
            rate_mbps=float(raw["rate_mbps"]) if raw.get("rate_mbps") else None,
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
        if kind == MANIFEST:
            return Manifest(**body)
        if kind == DONE:
            return Done(**body)
        if kind == ERROR:
            return FeedError(body["request_id"], FailureReason(body["reason"]), body["detail"])
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, FrameError):
            raise
        raise FrameError(f"undecodable {kind!r} frame: {exc}") from None
    raise FrameError(f"unknown frame type {kind!r}")
