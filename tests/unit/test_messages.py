"""Edge state as it travels over MQTT (JSON)."""

from __future__ import annotations

import dataclasses
import json

from testbed.messages import CacheCounters, CachedModelInfo, EdgeStateSnapshot, ModelRef


def _state() -> EdgeStateSnapshot:
    cached = tuple(
        CachedModelInfo(ModelRef(m, "v2" if i else ""), 1_000_000 + i, i == 1, 7 - i, 0.25, i)
        for i, m in enumerate(("diffusion-s", "cgan-s", "ae-s"))
    )
    return EdgeStateSnapshot(
        edge_id="edge-1", seq=42, queue_length=3, running=1, cached=cached,
        cache_used_bytes=3_000_003, cache_capacity_bytes=21_000_000,
        counters=CacheCounters(hits=5, misses=2, evictions=1, bytes_fetched=123),
        cpu_ghz=7.0, position_m=(250.0, 933.5), runtime="CPUExecutionProvider",
        address="127.0.0.1:5555", uplink_capacity_mbps=200.0, timestamp_unix_s=1.5e9,
    )  # fmt: skip


def test_state_json_is_what_asdict_gives_and_round_trips() -> None:
    state = _state()
    text = state.to_json()
    plain = {"schema": "edge-state/v1", **dataclasses.asdict(state)}  # versioned payload
    assert text == json.dumps(plain, separators=(",", ":"))
    assert EdgeStateSnapshot.from_json(text) == state
    empty = dataclasses.replace(state, cached=())
    assert EdgeStateSnapshot.from_json(empty.to_json()) == empty
