"""Model-feed framing: frames round-trip; damage is detected, never passed on; a field
that could name a path, a topic or an unbounded amount of work is refused."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from testbed import feed
from testbed.messages import ModelRef
from testbed.types import FailureReason


def test_frames_round_trip() -> None:
    rid = feed.new_request_id()
    req = feed.FetchRequest(rid, "edge-1", ModelRef("ae-s", "2"), (3, 5))
    assert feed.FetchRequest.decode(req.encode()) == req
    whole = feed.FetchRequest(rid, "edge-1", ModelRef("ae-s"))
    assert feed.FetchRequest.decode(whole.encode()) == whole
    m = feed.Manifest(rid, "ae-s", "2", 10, "ab" * 32, 4, 3, {"id": "ae-s"})
    assert feed.decode(m.encode()) == m
    assert feed.decode(feed.Done(rid, 3).encode()) == feed.Done(rid, 3)
    err = feed.FeedError(rid, FailureReason.MODEL_UNKNOWN, "no such model")
    assert feed.decode(err.encode()) == err
    chunk = feed.decode(feed.encode_chunk(rid, 7, b"payload"))
    assert isinstance(chunk, feed.Chunk)
    assert (chunk.request_id, chunk.index, bytes(chunk.data)) == (rid, 7, b"payload")


def test_damaged_chunk_is_rejected() -> None:
    frame = bytearray(feed.encode_chunk(feed.new_request_id(), 0, b"x" * 100))
    frame[-1] ^= 0xFF
    with pytest.raises(feed.FrameError, match="CRC-32"):
        feed.decode(bytes(frame))


@pytest.mark.parametrize("payload", [b"", b"Z{}", b"M{not json", b"C\x00\x01"])
def test_garbage_is_a_frame_error(payload: bytes) -> None:
    with pytest.raises(feed.FrameError):
        feed.decode(payload)


def _request(**change: object) -> bytes:
    raw = {"request_id": feed.new_request_id(), "edge_id": "edge-0", "model_id": "ae-s",
           "version": "", "chunks": None, **change}  # fmt: skip
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    "payload",
    [
        b"[1, 2]", b"null", b'"edge-0"', b"7", b"{", b"\xff",
        _request(request_id="not-hex"), _request(request_id=7), _request(edge_id=None),
        _request(model_id="../../x"), _request(model_id="/etc/passwd"), _request(version="a/b"),
        _request(chunks="all"), _request(chunks=[1, "2"]), _request(chunks=[-1]),
        _request(chunks=[True]), _request(chunks=list(range(70_000))),
        b"[" * 100_000 + b"]" * 100_000, _request(version=7),
    ],
)  # fmt: skip
def test_a_bad_fetch_request_is_a_value_error(payload: bytes) -> None:
    with pytest.raises(ValueError):
        feed.FetchRequest.decode(payload)


def test_a_request_may_still_carry_the_old_rate_field() -> None:
    req = feed.FetchRequest.decode(_request(rate_mbps=1e-9))
    assert req.model == ModelRef("ae-s") and not hasattr(req, "rate_mbps")


MANIFEST = feed.Manifest(feed.new_request_id(), "ae-s", "2", 10, "ab" * 32, 4, 3)


@pytest.mark.parametrize(
    "change",
    [
        {"model_id": "../../x"}, {"model_id": "/abs"}, {"model_id": ""}, {"version": ".."},
        {"model_id": "a" * 65}, {"sha256": "xyz"}, {"size_bytes": -1}, {"chunk_bytes": 0},
        {"chunk_count": 10**9}, {"chunk_count": 2}, {"size_bytes": "10"}, {"request_id": "zz"},
        {"entry": []},
    ],
)  # fmt: skip
def test_a_manifest_with_a_bad_field_is_a_frame_error(change: dict) -> None:
    body = json.dumps({**asdict(MANIFEST), **change}).encode()
    with pytest.raises(feed.FrameError):
        feed.decode(feed.MANIFEST + body)
    assert feed.decode(replace(MANIFEST).encode()) == MANIFEST


@pytest.mark.parametrize(
    "payload",
    [feed.DONE + b'{"request_id": "ab", "chunks_sent": 1}',
     feed.MANIFEST + b"[" * 100_000,
     feed.ERROR + b'{"request_id": "%s", "reason": "bogus", "detail": ""}' % (b"a" * 32),
     feed.DONE + b"[1]"],
)  # fmt: skip
def test_other_bad_frames_are_frame_errors(payload: bytes) -> None:
    with pytest.raises(feed.FrameError):
        feed.decode(payload)
