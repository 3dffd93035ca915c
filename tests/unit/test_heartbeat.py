"""The transport-agnostic heartbeat sender (real threads, short intervals).

The tests wait for what the thread has done (tests/waiting.py), never sleep for it, and
check only timing bounds that a busy machine cannot break: a beat is never early, and
a delay chosen as 0 is far shorter than an interval of half a second.
"""

from __future__ import annotations

import itertools
import random
import threading
import time

from testbed.heartbeat import HeartbeatSender
from tests.waiting import wait_until

EARLY_SLACK_S = 0.002
"""How much earlier than due a timed wait may seem to end (clock reading granularity)."""


class ZeroJitter(random.Random):
    """An `rng` whose full-jitter draws are all 0 s; records each draw's upper bound."""

    def __init__(self) -> None:
        super().__init__(0)
        self.caps_s: list[float] = []

    def uniform(self, low: float, high: float) -> float:
        self.caps_s.append(high)
        return low


def test_beats_keep_a_fixed_schedule_from_one_interval_after_start() -> None:
    interval_s = 0.02
    stamps: list[float] = []

    def send() -> bool:
        stamps.append(time.monotonic())
        return True

    start = time.monotonic()
    with HeartbeatSender(send, interval_s, on_lost=lambda: None) as hb:
        assert wait_until(lambda: len(stamps) >= 10)
    # beat k is due k + 1 intervals after start (or later, if beats were missed): the
    # first comes one interval after start, and a late beat never makes a burst
    for k, stamp in enumerate(stamps):
        assert stamp - start >= (k + 1) * interval_s - EARLY_SLACK_S, (k, stamp - start)
    assert hb.beats_ok == len(stamps) and not hb.running


def test_unknown_node_calls_on_lost() -> None:
    answers = iter([True, False, True, True])
    lost = threading.Event()

    def send() -> bool:
        return next(answers, True)

    with HeartbeatSender(send, 0.01, on_lost=lost.set) as hb:
        assert lost.wait(10.0)
        assert wait_until(lambda: hb.beats_ok >= 3)
    assert hb.losses == 1


def test_repeated_errors_call_on_lost_and_back_off() -> None:
    interval_s = 0.5
    calls: list[float] = []
    lost = threading.Event()
    healthy = threading.Event()
    jitter = ZeroJitter()

    def send() -> bool:
        calls.append(time.monotonic())
        if healthy.is_set():
            return True
        raise ConnectionError("server down")

    def on_lost() -> None:
        healthy.set()  # e.g. registered again
        lost.set()

    with HeartbeatSender(send, interval_s, on_lost=on_lost, max_failures=3, rng=jitter) as hb:
        assert lost.wait(10.0)
    assert hb.errors == 3 and hb.losses == 1
    # errors are retried after a full-jitter delay of at most one interval (the default
    # max_backoff_s) — drawn as 0 here, so well before the next interval would be due
    assert jitter.caps_s == [interval_s, interval_s]
    gaps = [b - a for a, b in itertools.pairwise(calls[:3])]
    assert all(g < interval_s / 2 for g in gaps), gaps


def test_single_error_does_not_count_as_lost() -> None:
    answers: list[object] = [True, ConnectionError(), True, ConnectionError(), True, True]
    lost = threading.Event()

    def send() -> bool:
        a = answers.pop(0) if answers else True
        if isinstance(a, Exception):
            raise a
        return bool(a)

    with HeartbeatSender(send, 0.01, on_lost=lost.set, max_failures=2) as hb:
        assert wait_until(lambda: not answers)
    assert not lost.is_set() and hb.errors == 2


def test_on_lost_errors_do_not_stop_the_heartbeats() -> None:
    count = 0

    def on_lost() -> None:
        nonlocal count
        count += 1
        raise RuntimeError("registry still down")

    with HeartbeatSender(lambda: False, 0.01, on_lost=on_lost):
        assert wait_until(lambda: count >= 3)


def test_stop_does_not_wait_for_the_next_beat() -> None:
    interval_s = 60.0
    hb = HeartbeatSender(lambda: True, interval_s, on_lost=lambda: None)
    hb.start()
    start = time.monotonic()
    hb.stop(timeout_s=interval_s)
    # the thread wakes on the stop event, not when the beat is due in a minute
    assert time.monotonic() - start < interval_s / 6
    assert not hb.running
