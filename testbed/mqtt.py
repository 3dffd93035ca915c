"""One MQTT client for every node: paho-mqtt with reconnects, resubscription,
per-topic handlers, and the retained values the node owns said again after every
reconnect.

Handlers run on paho's network thread: they must be quick (hand heavy work to a
queue). Publishing is thread-safe and never blocks, connected or not. QoS 1 is used
for messages that must arrive; a retained value (`publish_retained`) is kept by the
client and published again on every (re)connect instead (docs/telemetry.md, "After a
reconnect").
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as paho

from testbed.config import BrokerConfig

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]

RECONNECT_MIN_DELAY_S = 1
"""Wait before the first reconnect attempt, in s; paho doubles it after each failure."""
RECONNECT_MAX_DELAY_S = 8
"""Longest wait between reconnect attempts, in s: a node is back on the broker at most
this long after the broker is (plus the connect itself)."""
MAX_QUEUED_MESSAGES = 2048
"""QoS 1 messages paho may hold (in flight, or waiting while the broker is away); a
publish beyond this is dropped at once (rc MQTT_ERR_QUEUE_SIZE, logged) instead of
growing memory without bound. Above what normal work holds: the cloud keeps at most
window + 2 messages per transfer and 64 transfers (cloud_node/feed_server.py)."""


class MqttUnavailable(Exception):
    """The broker could not be reached in time."""


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker listens, with what the client needs to connect."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str, cfg: BrokerConfig | None = None) -> BrokerAddress:
        parsed = urlparse(url)
        tls = parsed.scheme == "mqtts"
        cfg = cfg or BrokerConfig()
        return cls(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or (8883 if tls else 1883),
            tls=tls,
            username=parsed.username or cfg.username,
            password=parsed.password or cfg.password,
            ca_file=cfg.tls.ca_file,
            cert_file=cfg.tls.cert_file,
            key_file=cfg.tls.key_file,
            keepalive_s=cfg.keepalive_s,
        )


class MqttClient:
    """A connected paho client that reconnects and resubscribes by itself."""

    def __init__(
        self,
        address: BrokerAddress,
        client_id: str,
        *,
        will: tuple[str, bytes] | None = None,
        max_inflight: int = 32,
    ) -> None:
        self.address = address
        self.client_id = client_id
        self._subs: dict[str, tuple[int, Handler]] = {}
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._closed = False
        # The retained value of every topic this client owns, and the lock that makes
        # "record it, send it" one step: what went out last is what is recorded, so the
        # republish after a reconnect can never put back an older value.
        self._owned: dict[str, bytes] = {}
        self._owned_lock = threading.Lock()
        self._down_since: float | None = None  # monotonic time the connection was lost
        self._failed_attempts = 0
        self._dropped = 0
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        client.max_inflight_messages_set(max_inflight)
        client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
        client.reconnect_delay_set(min_delay=RECONNECT_MIN_DELAY_S, max_delay=RECONNECT_MAX_DELAY_S)
        if address.username:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set(
                ca_certs=address.ca_file,
                certfile=address.cert_file,
                keyfile=address.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_unrouted
        self._client = client

    # ------------------------------------------------------------------ lifecycle

    def connect(self, timeout_s: float = 10.0) -> MqttClient:
        """Connect (retrying until `timeout_s`) and start the network thread."""
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while True:
            try:
                self._client.connect(self.address.host, self.address.port, self.address.keepalive_s)
                break
            except OSError as exc:  # refused, unreachable: the broker may still be starting
                last = exc
                if time.monotonic() >= deadline:
                    raise MqttUnavailable(
                        f"cannot reach MQTT broker at {self.address.url}: {exc}"
                    ) from None
                time.sleep(0.2)
        self._client.loop_start()
        if not self._connected.wait(max(0.1, deadline - time.monotonic())):
            self._client.loop_stop()
            raise MqttUnavailable(f"MQTT broker at {self.address.url} did not accept: {last}")
        return self

    def close(self) -> None:
        self._closed = True
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def __enter__(self) -> MqttClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # ------------------------------------------------------------------ pub/sub

    def subscribe(self, topic: str, handler: Handler, qos: int = 1) -> None:
        """Call `handler(topic, payload)` for every message on `topic` (wildcards ok)."""
        with self._lock:
            self._subs[topic] = (qos, handler)
        self._client.message_callback_add(topic, self._wrap(handler))
        if self.connected:
            self._client.subscribe(topic, qos)

    def unsubscribe(self, topic: str) -> None:
        with self._lock:
            self._subs.pop(topic, None)
        self._client.message_callback_remove(topic)
        if self.connected:
            self._client.unsubscribe(topic)

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> paho.MQTTMessageInfo:
        """Send a message. Never blocks: while the broker is away a QoS 1 message waits
        in paho's bounded queue (MAX_QUEUED_MESSAGES), a QoS 0 one is dropped. A node
        sets the values it owns with `publish_retained`; `retain` here is a one-off."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
            with self._lock:
                self._dropped += 1
                dropped = self._dropped
            if _is_power_of_two(dropped):
                log.warning(
                    "%s: %d message(s) dropped so far (last on %s): %d already wait for the "
                    "broker", self.client_id, dropped, topic, MAX_QUEUED_MESSAGES,
                )  # fmt: skip
        return info

    def publish_retained(self, topic: str, payload: bytes | str) -> paho.MQTTMessageInfo:
        """Set the retained value of `topic`, which this client owns: sent now when
        connected, and again after every (re)connect, since a restarted broker forgets
        retained messages and a last will overwrites a status. Only the newest value per
        topic is kept. Sent at QoS 0: paho never resends a QoS 0 message after a
        reconnect, so an older value held in its queue cannot overwrite the newer one
        said again on connect; the republish is what makes it arrive."""
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        with self._owned_lock:
            self._owned[topic] = data
            return self._client.publish(topic, data, qos=0, retain=True)

    def publish_json(
        self, topic: str, obj: Any, qos: int = 1, retain: bool = False
    ) -> paho.MQTTMessageInfo:
        return self.publish(topic, json.dumps(obj, separators=(",", ":")), qos, retain)

    # ------------------------------------------------------------------ paho callbacks

    def _wrap(self, handler: Handler) -> Callable[..., None]:
        def on_message(_client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
            try:
                handler(
                    msg.topic,
                    bytes(msg.payload) if isinstance(msg.payload, bytearray) else msg.payload,
                )
            except Exception:  # a handler bug must not kill the network thread
                log.exception("MQTT handler for %s failed", msg.topic)

        return on_message

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("%s: broker refused the connection: %s", self.client_id, reason)
            return
        with self._lock:
            subs = list(self._subs.items())
        for topic, (qos, _handler) in subs:
            client.subscribe(topic, qos)
        owned = self._republish_owned()
        if self._down_since is not None:
            log.info(
                "%s: reconnected to %s after %.1f s (%d failed attempt(s)); resubscribed %d "
                "topic(s), republished %d retained", self.client_id, self.address.url,
                time.monotonic() - self._down_since, self._failed_attempts, len(subs), owned,
            )  # fmt: skip
            self._down_since = None
        self._connected.set()

    def _republish_owned(self) -> int:
        """Publish every owned retained value again (on paho's network thread)."""
        with self._owned_lock:
            for topic, payload in self._owned.items():
                self._client.publish(topic, payload, qos=0, retain=True)
            return len(self._owned)

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected.clear()
        if self._closed:
            return
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._failed_attempts = 0
        log.warning(
            "%s: lost the broker at %s (%s); reconnecting every %d-%d s",
            self.client_id, self.address.url, reason,
            RECONNECT_MIN_DELAY_S, RECONNECT_MAX_DELAY_S,
        )  # fmt: skip

    def _on_connect_fail(self, _c: paho.Client, _u: Any) -> None:
        """A reconnect attempt failed: logged after 1, 2, 4, 8, ... attempts."""
        self._failed_attempts += 1
        if _is_power_of_two(self._failed_attempts):
            down_s = time.monotonic() - (self._down_since or time.monotonic())
            log.warning(
                "%s: broker %s still unreachable after %.0f s (%d attempt(s)); retrying "
                "every %d s at most", self.client_id, self.address.url, down_s,
                self._failed_attempts, RECONNECT_MAX_DELAY_S,
            )  # fmt: skip

    def _on_unrouted(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        log.debug("%s: unhandled message on %s", self.client_id, msg.topic)


def _is_power_of_two(n: int) -> bool:
    """Log on the 1st, 2nd, 4th, 8th, ... occurrence: a long outage stays a few lines."""
    return n > 0 and n & (n - 1) == 0
