"""The bare MQTT reference: plain paho clients moving 1 MiB QoS 1 messages.

`python -m benchmarks.mqtt_raw --broker URL --prefix P` runs the publisher as its own
process (as the cloud node is): it waits for a JSON trigger `{"round": n, "count": k}`
on `P/go` and then publishes `k` messages of 1 MiB at QoS 1 on `P/data`, with paho's
default settings. `RawSubscriber` is the receiving side, in the benchmark's process
(as the edge's FeedClient is): `round_s(count)` sends the trigger and returns the
seconds until the last message arrived — the same span as a model fetch's request →
last chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as paho

MESSAGE_BYTES = 1024 * 1024


def _client(name: str) -> paho.Client:
    return paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=f"{name}-{os.getpid()}-{time.time_ns()}",
        protocol=paho.MQTTv311,
    )


def _connect(client: paho.Client, url: str) -> None:
    parsed = urlparse(url)
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect(parsed.hostname or "127.0.0.1", parsed.port or 1883, 30)
    client.loop_start()
    if not connected.wait(10):
        raise RuntimeError(f"cannot connect to {url}")


def publisher_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bare paho publisher for the MQTT reference")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args(argv)
    payload = os.urandom(MESSAGE_BYTES)
    triggers: list[int] = []
    wake = threading.Condition()

    def on_trigger(_c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with wake:
            triggers.append(int(json.loads(msg.payload)["count"]))
            wake.notify()

    client = _client("raw-pub")
    client.message_callback_add(f"{args.prefix}/go", on_trigger)
    _connect(client, args.broker)
    client.subscribe(f"{args.prefix}/go", qos=1)
    # the broker handles one connection's packets in order: subscribed before "ready"
    client.publish(f"{args.prefix}/ready", b"1", qos=1).wait_for_publish(10)
    while True:
        with wake:
            while not triggers:
                wake.wait()
            count = triggers.pop(0)
        if count <= 0:
            break
        for _ in range(count):  # publish from this thread, as the cloud's worker does
            client.publish(f"{args.prefix}/data", payload, qos=1)
    client.disconnect()
    client.loop_stop()
    return 0


class RawSubscriber:
    """The receiving paho client plus the publisher process; a context manager."""

    def __init__(self, broker_url: str) -> None:
        self.prefix = f"bench-raw/{os.getpid()}-{time.time_ns()}"
        self._cond = threading.Condition()
        self._received = 0
        self._ready = threading.Event()
        self._client = _client("raw-sub")
        self._client.message_callback_add(f"{self.prefix}/data", self._on_data)
        self._client.message_callback_add(f"{self.prefix}/ready", lambda *_a: self._ready.set())
        _connect(self._client, broker_url)
        self._client.subscribe([(f"{self.prefix}/data", 1), (f"{self.prefix}/ready", 1)])
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.mqtt_raw",
                "--broker",
                broker_url,
                "--prefix",
                self.prefix,
            ],
            stdin=subprocess.DEVNULL,
        )
        if not self._ready.wait(30):
            self.close()
            raise RuntimeError("the raw MQTT publisher did not start")

    def _on_data(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self._received += 1
            self._cond.notify()

    def round_s(self, count: int, timeout_s: float = 120.0) -> float:
        """Trigger one round of `count` 1 MiB messages; seconds until the last arrived."""
        with self._cond:
            self._received = 0
        t0 = time.perf_counter()
        self._client.publish(f"{self.prefix}/go", json.dumps({"count": count}), qos=1)
        with self._cond:
            if not self._cond.wait_for(lambda: self._received >= count, timeout_s):
                raise RuntimeError(f"raw MQTT round: {self._received}/{count} messages arrived")
            return time.perf_counter() - t0

    def close(self) -> None:
        try:
            self._client.publish(f"{self.prefix}/go", json.dumps({"count": 0}), qos=1)
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    def __enter__(self) -> RawSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    raise SystemExit(publisher_main())
