"""A heartbeat sender that does not know the transport (after Flower's supercore).

A daemon thread calls `send()` every `interval_s` seconds on a fixed schedule:

- `send()` returns True: the server knows this node; all is well.
- `send()` returns False: the server does not know this node (or its session), e.g.
  it restarted or removed the node after a long silence: `on_lost()` is called at
  once so the node registers again.
- `send()` raises: the next try comes sooner, after a full-jitter backoff (capped at
  `max_backoff_s`); after `max_failures` errors in a row the server is taken as lost
  and `on_lost()` is called.

`on_lost()` runs on the heartbeat thread, so a re-registration that retries blocks
further heartbeats (there is no session to keep alive meanwhile); it should watch its
own cancel event so `stop()` stays prompt. An error from `on_lost` is logged and the
heartbeats go on (the next one answers False and `on_lost` runs again).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from testbed.retry import backoff_delay_s

log = logging.getLogger(__name__)


class HeartbeatSender:
    """Calls `send()` every `interval_s` s on its own thread until `stop()`."""

    def __init__(
        self,
        send: Callable[[], bool],
        interval_s: float,
        on_lost: Callable[[], Any],
        *,
        max_failures: int = 3,
        max_backoff_s: float | None = None,
        name: str = "heartbeat",
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        """
        Args:
            send: one heartbeat; True when the server knows the node, False when not.
            interval_s: period between heartbeats, in s.
            on_lost: called when the server does not know the node, or after
                `max_failures` errors in a row.
            max_failures: errors in a row that count as a lost server (≥ 1).
            max_backoff_s: longest wait after an error, in s; default `interval_s`.
            name: name of the thread (and of log lines), e.g. "heartbeat:agent-3".
            clock, rng: injectable for tests.
        """
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if max_failures < 1:
            raise ValueError(f"max_failures must be ≥ 1, got {max_failures}")
        self.interval_s = interval_s
        self.max_failures = max_failures
        self.max_backoff_s = interval_s if max_backoff_s is None else max_backoff_s
        self.name = name
        self._send = send
        self._on_lost = on_lost
        self._clock = clock
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats_ok = 0
        """Heartbeats the server acknowledged."""
        self.errors = 0
        """Heartbeats that raised."""
        self.losses = 0
        """Times `on_lost` was called."""

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread; the first heartbeat goes out one interval from now."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = 5.0) -> None:
        """Stop sending and wait up to `timeout_s` for the thread to end."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("%s: thread still running %.1f s after stop", self.name, timeout_s)

    def __enter__(self) -> HeartbeatSender:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        failures = 0
        next_due = self._clock() + self.interval_s
        while not self._stop.wait(max(0.0, next_due - self._clock())):
            try:
                known = self._send()
            except Exception as exc:
                failures += 1
                self.errors += 1
                if failures >= self.max_failures:
                    log.warning(
                        "%s: %d heartbeats failed in a row (last: %s); server lost",
                        self.name,
                        failures,
                        _brief(exc),
                    )
                    failures = 0
                    self._lost()
                    next_due = self._clock() + self.interval_s
                else:
                    delay = backoff_delay_s(
                        failures,
                        base_delay_s=self.interval_s,
                        max_delay_s=self.max_backoff_s,
                        rng=self._rng,
                    )
                    log.info(
                        "%s: heartbeat failed (%s); retry in %.2f s", self.name, _brief(exc), delay
                    )
                    next_due = self._clock() + delay
                continue
            failures = 0
            if known:
                self.beats_ok += 1
                next_due += self.interval_s
                now = self._clock()
                if next_due < now:  # a slow send: skip missed beats instead of bursting
                    next_due = now + self.interval_s
            else:
                log.warning("%s: the server does not know this node", self.name)
                self._lost()
                next_due = self._clock() + self.interval_s

    def _lost(self) -> None:
        if self._stop.is_set():
            return
        self.losses += 1
        try:
            self._on_lost()
        except Exception:
            log.exception("%s: on_lost failed; heartbeats go on", self.name)


def _brief(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            return f"{type(exc).__name__} {code()}"
        except Exception:
            pass
    return f"{type(exc).__name__}: {exc}"
