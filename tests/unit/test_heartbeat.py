"""The transport-agnostic heartbeat sender (real threads, short intervals)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from testbed.heartbeat import HeartbeatSender


def wait_for(cond: Callable[[], bool], timeout_s: float = 3.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def test_sends_every_interval() -> None:
    stamps: list[float] = []

    def send() -> bool:
        stamps.append(time.monotonic())
        return True

    start = time.monotonic()
    with HeartbeatSender(send, 0.02, on_lost=lambda: None) as hb:
        time.sleep(0.25)
    # ≈ 0.25 / 0.02 = 12 beats; allow for a slow CI machine
    assert 8 <= len(stamps) <= 14, len(stamps)
    assert stamps[0] - start >= 0.015  # the first beat comes one interval after start
    assert hb.beats_ok == len(stamps) and not hb.running


def test_unknown_node_calls_on_lost() -> None:
    answers = iter([True, False, True, True])
    lost = threading.Event()

    def send() -> bool:
        return next(answers, True)

    with HeartbeatSender(send, 0.01, on_lost=lost.set) as hb:
        assert lost.wait(2.0)
        assert wait_for(lambda: hb.beats_ok >= 3)
    assert hb.losses == 1


def test_repeated_errors_call_on_lost_and_back_off() -> None:
    calls: list[float] = []
    lost: list[float] = []
    healthy = threading.Event()

    def send() -> bool:
        calls.append(time.monotonic())
        if healthy.is_set():
            return True
        raise ConnectionError("server down")

    def on_lost() -> None:
        lost.append(time.monotonic())
        healthy.set()  # e.g. registered again

    with HeartbeatSender(send, 0.05, on_lost=on_lost, max_failures=3) as hb:
        assert wait_for(lambda: len(lost) == 1 and hb.beats_ok >= 1)
    assert hb.errors == 3 and hb.losses == 1
    # errors are retried sooner than the interval (full jitter up to one interval)
    gaps = [b - a for a, b in itertools.pairwise(calls[:3])]
    assert all(g <= 0.05 + 0.03 for g in gaps), gaps


def test_single_error_does_not_count_as_lost() -> None:
    answers: list[object] = [True, ConnectionError(), True, ConnectionError(), True, True]
    lost = threading.Event()

    def send() -> bool:
        a = answers.pop(0) if answers else True
        if isinstance(a, Exception):
            raise a
        return bool(a)

    with HeartbeatSender(send, 0.01, on_lost=lost.set, max_failures=2) as hb:
        assert wait_for(lambda: not answers)
    assert not lost.is_set() and hb.errors == 2


def test_on_lost_errors_do_not_stop_the_heartbeats() -> None:
    count = 0

    def on_lost() -> None:
        nonlocal count
        count += 1
        raise RuntimeError("registry still down")

    with HeartbeatSender(lambda: False, 0.01, on_lost=on_lost):
        assert wait_for(lambda: count >= 3)


def test_stop_is_prompt() -> None:
    hb = HeartbeatSender(lambda: True, 30.0, on_lost=lambda: None)
    hb.start()
    start = time.monotonic()
    hb.stop()
    assert time.monotonic() - start < 0.5
    assert not hb.running
