"""Benchmark 1: a model fetch cloud→edge over MQTT vs the same broker's raw throughput.

Ours: the real cloud node process (`testbed-cloud`, started by the real launcher,
pacing off) serves a demo model to the edge's real `FeedClient` running in this
process (as the config's one edge, whose process is not started): request → manifest
(checked against the catalog entry asked for) → 1 MiB chunks at QoS 1 with CRC-32,
written and hashed as they arrive → done → whole-file sha256 checked against the
catalog; timed from the request
to the verified file on disk (the whole `FeedClient.fetch` call). Figure: MB/s
(10^6 bytes/s) of the file.

Reference: bare paho clients on the same broker in the same run: a publisher process
publishes as many 1 MiB QoS 1 messages as the model has chunks when a trigger arrives,
and a subscriber in this process times trigger → last message (benchmarks/mqtt_raw.py).

Goal (issue 2): ours / reference ≥ 0.7, on each broker (Mosquitto and amqtt).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Case,
    Goal,
    GoalKind,
    Result,
    broker,
    broker_kinds,
    catalog_models,
    demo_zoo_or_tiny,
    median,
    node_bench,
    report,
    scratch,
    standalone,
    tiny_zoo,
)
from benchmarks.mqtt_raw import MESSAGE_BYTES, RawSubscriber

NAME = "model_fetch"
GOAL = Goal(GoalKind.RATIO_AT_LEAST, 0.7, "≥ 0.7 × raw 1 MiB QoS 1 throughput")


def _picks(models: list[dict], quick: bool) -> list[dict]:
    """The largest model; without `quick` also the median-sized one."""
    if quick:
        return [models[-1]]
    return [models[len(models) // 2 - 1], models[-1]]


def _measure_broker(kind: str, zoo: Path, quick: bool, notes: list[str]) -> list[Case]:
    from edge_node.model_feed import FeedClient
    from testbed.mqtt import BrokerAddress, MqttClient
    from testbed.topics import Topics

    repeats = 3 if quick else 9
    cases: list[Case] = []
    with (
        scratch(f"fetch-{kind}") as tmp,
        broker(kind, tmp / "broker") as running,
        node_bench(tmp, running.url, zoo, cloud=True, edges=1, start_edges=False) as launcher,
        MqttClient(BrokerAddress.from_url(running.url), f"bench-edge-{os.getpid()}") as client,
        RawSubscriber(running.url) as raw,
    ):
        client.connect()
        topics = Topics.of(launcher.cfg)
        feed = FeedClient(client, topics, launcher.cfg.edge_specs()[0].id)  # stands in for it
        notes.append(f"{kind}: {running.description}")
        dest_dir = tmp / "fetched"
        dest_dir.mkdir()
        for model in _picks(catalog_models(zoo), quick):
            cases.append(_measure_model(feed, raw, kind, model, dest_dir, repeats))
        feed.close()
    return cases


def _measure_model(
    feed: Any, raw: RawSubscriber, kind: str, model: dict, dest_dir: Path, repeats: int
) -> Case:
    """Median MB/s of `repeats` fetches of `model` and as many raw rounds, interleaved."""
    from testbed.schema import load_dataclass
    from testbed.zoo.catalog import ModelEntry

    entry = load_dataclass(ModelEntry, model)
    size_bytes = int(model["size_bytes"])
    chunks = math.ceil(size_bytes / MESSAGE_BYTES)
    dest = dest_dir / f"{model['id']}.onnx"

    def fetch() -> Any:
        return feed.fetch(entry, dest, timeout_s=120)

    fetch()  # warm-up: page cache, connections
    raw.round_s(chunks)
    ours_mbps: list[float] = []
    ref_mbps: list[float] = []
    parts: dict[str, list[float]] = {"fetch_ms": [], "verify_ms": []}
    for _ in range(repeats):  # interleaved, so both see the same machine
        t0 = time.perf_counter()
        fetched = fetch()
        ours_mbps.append(size_bytes / (time.perf_counter() - t0) / 1e6)
        parts["fetch_ms"].append(fetched.fetch_s * 1e3)
        parts["verify_ms"].append(fetched.verify_s * 1e3)
        ref_mbps.append(chunks * MESSAGE_BYTES / raw.round_s(chunks) / 1e6)
        dest.unlink()
    return Case(
        label=f"{kind}, {model['id']} {size_bytes / 1e6:.1f} MB",
        ours=median(ours_mbps),
        reference=median(ref_mbps),
        samples=repeats,
        details={k: round(median(v), 3) for k, v in parts.items()},
    )


def run(quick: bool = False) -> Result:
    notes: list[str] = []
    zoo = tiny_zoo() if quick else demo_zoo_or_tiny(notes)
    cases: list[Case] = []
    for kind in broker_kinds(quick):
        cases += _measure_broker(kind, zoo, quick, notes)
    notes.append(f"zoo {zoo}; chunks 1 MiB, pacing off; MB = 10^6 bytes")
    return report(Result(NAME, "MB/s", GOAL, cases, notes))


if __name__ == "__main__":
    raise SystemExit(standalone(run))
