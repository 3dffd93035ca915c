"""One MQTT client for every node: paho-mqtt with reconnects, resubscription and
per-topic handlers.

Handlers run on paho's network thread: they must be quick (hand heavy work to a
queue). Publishing is thread-safe. QoS 1 is used for everything that must arrive.
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
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        client.max_inflight_messages_set(max_inflight)
        client.reconnect_delay_set(min_delay=1, max_delay=8)
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
        return self._client.publish(topic, payload, qos=qos, retain=retain)

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
        self._connected.set()

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected.clear()
        if not self._closed:
            log.warning("%s: disconnected from broker (%s); reconnecting", self.client_id, reason)

    def _on_unrouted(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        log.debug("%s: unhandled message on %s", self.client_id, msg.topic)
