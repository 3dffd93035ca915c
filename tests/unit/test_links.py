"""Radio link rates and the pacer."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from testbed.config import LinksConfig
from testbed.links import Pacer, channel_gain, distance_m, shannon_rate_mbps

# B = 1 MHz, N0 = −100 dBm/Hz = 1e-13 W/Hz → N0·B = 1e-7 W; g0 = −30 dB = 1e-3, α = 2
LINKS = LinksConfig(
    bandwidth_mhz=1.0,
    noise_dbm_per_hz=-100.0,
    path_loss_exponent=2.0,
    gain_at_1m_db=-30.0,
    min_distance_m=1.0,
)


def test_distance() -> None:
    assert distance_m((0.0, 0.0), (3.0, 4.0)) == 5.0
    d = distance_m(np.array([[0.0, 0.0], [1.0, 1.0]]), (4.0, 5.0))  # 5, √(9+16)=5
    np.testing.assert_allclose(d, [np.sqrt(16 + 25), 5.0])


def test_channel_gain_and_clipping() -> None:
    # g(10 m) = 1e-3 · 10^-2 = 1e-5
    assert channel_gain(10.0, LINKS) == pytest.approx(1e-5)
    # below min_distance_m the gain stays at g(1 m) = 1e-3
    assert channel_gain(0.0, LINKS) == pytest.approx(1e-3)
    assert channel_gain(0.5, LINKS) == pytest.approx(1e-3)


def test_shannon_rate_by_hand() -> None:
    # p = 0.03 W at 10 m: p·g = 0.03 · 1e-5 = 3e-7 W; SNR = 3e-7 / 1e-7 = 3
    # r = B·log2(1 + 3) = 1e6 · 2 bit/s = 2 Mbit/s
    assert shannon_rate_mbps(0.03, 10.0, LINKS) == pytest.approx(2.0)
    # SNR = 15 → 4 Mbit/s at p = 0.15 W
    assert shannon_rate_mbps(0.15, 10.0, LINKS) == pytest.approx(4.0)
    # vectorised over distances and powers
    r = shannon_rate_mbps(np.array([0.03, 0.15]), np.array([10.0, 10.0]), LINKS)
    np.testing.assert_allclose(r, [2.0, 4.0])


def test_default_links_give_plausible_rates() -> None:
    # defaults (20 MHz, −174 dBm/Hz, α = 3, −30 dB) at 0.5 W: tens to hundreds of Mbit/s
    r = shannon_rate_mbps(0.5, np.array([50.0, 300.0, 800.0]), LinksConfig())
    assert np.all(np.diff(r) < 0)  # farther is slower
    assert 50 < r[1] < 500


class FakeTime:
    """A clock whose sleep advances it by the requested time plus an overshoot."""

    def __init__(self, overshoot_s: float = 0.0) -> None:
        self.now = 100.0
        self.overshoot_s = overshoot_s
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s + self.overshoot_s


def test_pacer_schedule_with_injected_clock() -> None:
    t = FakeTime()
    # 8 Mbit/s = 1e6 B/s: each 1000 B chunk takes 1 ms
    pacer = Pacer(8.0, clock=t.clock, sleep=t.sleep)
    for _ in range(10):
        pacer.wait(1000)
    assert t.now - 100.0 == pytest.approx(0.010)
    assert t.sleeps == pytest.approx([0.001] * 10)
    assert pacer.sent_bytes == 10_000


def test_pacer_does_not_drift_with_overshooting_sleeps() -> None:
    t = FakeTime(overshoot_s=0.0002)  # every sleep is 0.2 ms late (20 % of a chunk)
    pacer = Pacer(8.0, clock=t.clock, sleep=t.sleep)
    for _ in range(1000):
        pacer.wait(1000)
    # ideal: 1000 · 1 ms = 1 s; late by at most one overshoot, not 1000 of them
    assert t.now - 100.0 == pytest.approx(1.0, abs=0.0003)


def test_pacer_lets_a_late_sender_catch_up_and_caps_credit() -> None:
    t = FakeTime()
    pacer = Pacer(8.0, clock=t.clock, sleep=t.sleep)
    pacer.wait(1000)  # schedule starts: this chunk is sent by +1 ms
    t.now += 0.0055  # the sender stalls for 5.5 ms
    for _ in range(5):  # 5.5 ms of credit: five 1 ms chunks go through without sleeping
        pacer.wait(1000)
    assert _real(t.sleeps) == pytest.approx([0.001])
    pacer.wait(1000)  # the sixth waits for the 0.5 ms the credit lacks
    assert _real(t.sleeps) == pytest.approx([0.001, 0.0005])

    capped = FakeTime()
    pacer = Pacer(8.0, max_credit_s=0.001, clock=capped.clock, sleep=capped.sleep)
    pacer.wait(1000)
    capped.now += 0.0055
    pacer.wait(1000)  # at most 1 ms of credit: this one is free …
    pacer.wait(1000)  # … and this one waits its full 1 ms
    assert _real(capped.sleeps) == pytest.approx([0.001, 0.001])


def _real(sleeps: list[float]) -> list[float]:
    """Sleeps longer than float rounding."""
    return [s for s in sleeps if s > 1e-9]


def test_unpaced_pacer_never_sleeps() -> None:
    t = FakeTime()
    for rate in (None, 0.0):
        pacer = Pacer(rate, clock=t.clock, sleep=t.sleep)
        assert pacer.wait(10**9) == 0.0
    assert t.sleeps == []
    with pytest.raises(ValueError):
        Pacer(-1.0)


def test_pacer_real_time() -> None:
    # 40 Mbit/s = 5e6 B/s; 1 MB in 4 KiB chunks should take 0.2 s
    pacer = Pacer(40.0)
    start = time.monotonic()
    sent = 0
    while sent < 1_000_000:
        n = min(4096, 1_000_000 - sent)
        pacer.wait(n)
        sent += n
    elapsed = time.monotonic() - start
    assert 0.19 <= elapsed <= 0.35


def test_pacer_shared_by_threads_shares_the_rate() -> None:
    pacer = Pacer(40.0)  # 5e6 B/s shared: 2 × 250 kB = 0.1 s
    start = time.monotonic()

    def send() -> None:
        for _ in range(50):
            pacer.wait(5000)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert 0.095 <= time.monotonic() - start <= 0.25
