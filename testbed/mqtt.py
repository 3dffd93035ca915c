"""One MQTT client for every node: paho-mqtt with reconnects, resubscription,
per-topic handlers, and the retained values the node owns said again after every
reconnect.

Handlers run on paho's network thread: they must be quick (hand heavy work to a
queue). Publishing is thread-safe and never blocks, connected or not. QoS 1 is used
for messages that must arrive; a retained value (`publish_retained`) is kept by the
client and published again on every (re)connect instead (docs/telemetry.md, "After a
reconnect").

With credentials (testbed/mqtt_auth.py) the client logs in with its username and
password; with `broker.protocol: 5` it speaks MQTT v5, so a publish or subscription
the broker's ACL denies comes back with a reason code (`NotAuthorized`) that is
logged and counted (`denied_publishes`); with 3.1.1 a broker drops it silently.
A broker that refuses the login ends `connect` at once (`MqttRefused`), since trying
again with the same password cannot help (docs/security.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import paho.mqtt.client as paho

from testbed.config import BrokerConfig
from testbed.schema import Secret

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


MQTT_V5 = 5
"""`broker.protocol` of MQTT v5 (4 is 3.1.1)."""


class MqttUnavailable(Exception):
    """The broker could not be reached in time."""


class MqttRefused(MqttUnavailable):
    """The broker refused the login (wrong username or password, not authorised)."""


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker listens, with what the client needs to connect."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: Secret | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30
    protocol: int = 4

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
            username=unquote(parsed.username) if parsed.username else cfg.username,
            password=Secret(unquote(parsed.password)) if parsed.password else cfg.password,
            ca_file=cfg.tls.ca_file,
            cert_file=cfg.tls.cert_file,
            key_file=cfg.tls.key_file,
            keepalive_s=cfg.keepalive_s,
            protocol=cfg.protocol,
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
        self._refused: str | None = None  # why the broker refused the login, if it did
        self._denied: Counter[str] = Counter()  # topic -> publishes the broker denied
        self._sub_topics: dict[int, str] = {}  # subscribe mid -> topic, for a refusal
        if address.protocol == MQTT_V5:
            client = paho.Client(
                paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
            )
        else:
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
            password = address.password.reveal() if address.password else None
            client.username_pw_set(address.username, password)
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
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        self._client = client

    # ------------------------------------------------------------------ lifecycle

    def connect(self, timeout_s: float = 10.0) -> MqttClient:
        """Connect (retrying until `timeout_s`) and start the network thread."""
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        # MQTT v5 names the 3.1.1 clean session "clean start"; 3.1.1 takes only the default.
        v5 = self.address.protocol == MQTT_V5
        clean_start = True if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY
        while True:
            try:
                self._client.connect(
                    self.address.host,
                    self.address.port,
                    self.address.keepalive_s,
                    clean_start=clean_start,
                )
                break
            except OSError as exc:  # refused, unreachable: the broker may still be starting
                last = exc
                if time.monotonic() >= deadline:
                    raise MqttUnavailable(
                        f"cannot reach MQTT broker at {self.address.url}: {exc}"
                    ) from None
                time.sleep(0.2)
        self._client.loop_start()
        while not self._connected.wait(0.05):
            if self._refused is not None or time.monotonic() >= deadline:
                self._closed = True
                self._client.disconnect()
                self._client.loop_stop()
                if self._refused is not None:
                    raise MqttRefused(
                        f"MQTT broker at {self.address.url} refused {self._login()}: "
                        f"{self._refused}"
                    )
                raise MqttUnavailable(f"MQTT broker at {self.address.url} did not accept: {last}")
        return self

    def _login(self) -> str:
        """Who this client logs in as, for a message (never the password)."""
        if not self.address.username:
            return "an anonymous client"
        with_password = " with a password" if self.address.password else ""
        return f"user {self.address.username!r}{with_password}"

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

    @property
    def denied_publishes(self) -> dict[str, int]:
        """Publishes the broker denied so far, by topic (MQTT v5 only: 3.1.1 has no
        reason codes, a broker drops a denied message silently)."""
        with self._lock:
            return dict(self._denied)

    # ------------------------------------------------------------------ pub/sub

    def subscribe(self, topic: str, handler: Handler, qos: int = 1) -> None:
        """Call `handler(topic, payload)` for every message on `topic` (wildcards ok)."""
        with self._lock:
            self._subs[topic] = (qos, handler)
        self._client.message_callback_add(topic, self._wrap(handler))
        if self.connected:
            self._subscribe(topic, qos)

    def _subscribe(self, topic: str, qos: int) -> None:
        _rc, mid = self._client.subscribe(topic, qos)
        if mid is not None:
            with self._lock:
                self._sub_topics[mid] = topic

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
            self._refused = str(reason)
            self._failed_attempts += 1
            if _is_power_of_two(self._failed_attempts):
                log.warning("%s: broker refused %s: %s", self.client_id, self._login(), reason)
            return
        self._refused = None
        if self.address.tls:
            _no_nagle(client)
        with self._lock:
            subs = list(self._subs.items())
        for topic, (qos, _handler) in subs:
            self._subscribe(topic, qos)
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
        if self._closed or self._refused is not None:  # a refusal was logged already
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

    def _on_publish(self, client: paho.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        """A PUBACK (QoS 1): with MQTT v5 its reason code says whether the broker took
        the message; a denial is counted and logged on the 1st, 2nd, 4th, ... time."""
        if not getattr(reason, "is_failure", False):
            return
        # paho calls this while it still holds the message (under its own lock).
        message = getattr(client, "_out_messages", {}).get(mid)
        topic = message.topic if message is not None else "?"
        with self._lock:
            self._denied[topic] += 1
            denied = sum(self._denied.values())
        if _is_power_of_two(denied):
            log.warning(
                "%s: the broker denied a publish on %s: %s (%d denied so far)",
                self.client_id, topic, reason, denied,
            )  # fmt: skip

    def _on_subscribe(self, _c: paho.Client, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        with self._lock:
            topic = self._sub_topics.pop(mid, "?")
        for reason in reasons:
            if getattr(reason, "is_failure", False):
                log.warning("%s: the broker refused the subscription to %s: %s",
                            self.client_id, topic, reason)  # fmt: skip

    def _on_unrouted(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        log.debug("%s: unhandled message on %s", self.client_id, msg.topic)


def _no_nagle(client: paho.Client) -> None:
    """TCP_NODELAY on a TLS connection: TLS writes 16 KiB records, each a segment smaller
    than loopback's MSS that Nagle's algorithm holds until the previous one is
    acknowledged (delayed by up to 40 ms): a model fetch took 40 ms longer with TLS
    than without (benchmarks/mqtt_tls.py). paho has no option for it."""
    sock = client.socket()
    if isinstance(sock, socket.socket):  # an ssl.SSLSocket is one
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _is_power_of_two(n: int) -> bool:
    """Log on the 1st, 2nd, 4th, 8th, ... occurrence: a long outage stays a few lines."""
    return n > 0 and n & (n - 1) == 0
