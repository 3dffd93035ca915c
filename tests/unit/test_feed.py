"""Model-feed framing: frames round-trip; damage is detected, never passed on."""

from __future__ import annotations

import pytest

from testbed import feed
from testbed.messages import ModelRef
from testbed.types import FailureReason


def test_frames_round_trip() -> None:
    rid = feed.new_request_id()
    req = feed.FetchRequest(rid, "edge-1", ModelRef("ae-s", "2"), (3, 5), 400.0)
    assert feed.FetchRequest.decode(req.encode()) == req
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
