"""Radio links: distances, channel gain, Shannon rates, and a pacer for emulated links.

The rate r_ij of ED i to ES j (docs/papers.md §A, eq. 5) is the Shannon capacity of a
link with bandwidth B, transmit power p_i, path-loss channel gain g(d) and white
noise of spectral density N0:

    r = B · log2(1 + p·g(d) / (N0·B)),    g(d) = g0 · max(d, d_min)^(−α)

with B = `links.bandwidth_mhz`, N0 = `links.noise_dbm_per_hz`, g0 =
`links.gain_at_1m_db`, α = `links.path_loss_exponent`, d_min = `links.min_distance_m`.
All functions broadcast over numpy arrays and accept plain floats.

`Pacer` makes a real byte stream (gRPC upload, MQTT model feed) take as long as it
would on a link of a given rate: senders call `wait(nbytes)` before each chunk.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from testbed.config import LinksConfig


def distance_m(a: npt.ArrayLike, b: npt.ArrayLike) -> Any:
    """Euclidean distance in m between positions (x, y) in m; the last axis is (x, y),
    the others broadcast. Returns a numpy scalar for two single positions."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return _out(np.sqrt(np.sum(diff * diff, axis=-1)))


def db_to_linear(db: npt.ArrayLike) -> Any:
    """A power ratio in dB → linear."""
    return _out(10.0 ** (np.asarray(db, dtype=np.float64) / 10.0))


def dbm_to_w(dbm: npt.ArrayLike) -> Any:
    """A power in dBm → W (also dBm/Hz → W/Hz)."""
    return _out(10.0 ** ((np.asarray(dbm, dtype=np.float64) - 30.0) / 10.0))


def channel_gain(distance: npt.ArrayLike, links_cfg: LinksConfig) -> Any:
    """Linear channel power gain g0·d^(−α); d in m, clipped below at `min_distance_m`."""
    d = np.maximum(np.asarray(distance, dtype=np.float64), links_cfg.min_distance_m)
    return _out(db_to_linear(links_cfg.gain_at_1m_db) * d ** (-links_cfg.path_loss_exponent))


def shannon_rate_mbps(
    transmit_power_w: npt.ArrayLike, distance: npt.ArrayLike, links_cfg: LinksConfig
) -> Any:
    """Link rate in Mbit/s: B·log2(1 + p·g(d) / (N0·B)); p in W, d in m."""
    bandwidth_hz = links_cfg.bandwidth_mhz * 1e6
    noise_w = dbm_to_w(links_cfg.noise_dbm_per_hz) * bandwidth_hz
    snr = np.asarray(transmit_power_w, dtype=np.float64) * channel_gain(distance, links_cfg)
    return _out(bandwidth_hz * np.log2(1.0 + snr / noise_w) / 1e6)


def _out(value: Any) -> Any:
    arr = np.asarray(value)
    return arr[()] if arr.ndim == 0 else arr


# ---------------------------------------------------------------------------- pacing


class Pacer:
    """Paces a byte stream to `rate_mbps` (10^6 bit/s) on an absolute schedule.

    `wait(nbytes)` is called *before* sending `nbytes` and sleeps until sending them
    keeps the cumulative bytes within rate × time since the first `wait`, so the
    transfer of B bytes takes B·8/rate s however it is chunked, and small sleep
    overshoots do not add up (no drift). A sender that falls behind is not slowed
    further: it catches up at full speed, bounded by `max_credit_s` of saved-up time
    when that is set (None: unbounded, the whole transfer keeps its average rate).

    One pacer may be shared by several threads: they then share the rate, like
    streams over one link. `rate_mbps` None or 0 means unpaced. `clock` and `sleep`
    are injectable for tests.
    """

    def __init__(
        self,
        rate_mbps: float | None,
        *,
        max_credit_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        if rate_mbps is not None and (rate_mbps < 0 or math.isnan(rate_mbps)):
            raise ValueError(f"rate_mbps must be ≥ 0 or None, got {rate_mbps}")
        if max_credit_s is not None and max_credit_s < 0:
            raise ValueError(f"max_credit_s must be ≥ 0 or None, got {max_credit_s}")
        self._bytes_per_s = rate_mbps * 1e6 / 8.0 if rate_mbps else None
        self._max_credit_s = max_credit_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._ready_at: float | None = None  # when everything reserved so far is "sent"
        self._sent_bytes = 0

    @property
    def rate_mbps(self) -> float | None:
        """The paced rate in Mbit/s, None when unpaced."""
        return self._bytes_per_s * 8.0 / 1e6 if self._bytes_per_s else None

    @property
    def sent_bytes(self) -> int:
        """Bytes passed through `wait` since creation or the last `reset`."""
        return self._sent_bytes

    def reset(self) -> None:
        """Start a new schedule: the next `wait` counts as the first."""
        with self._lock:
            self._ready_at = None
            self._sent_bytes = 0

    def wait(self, nbytes: int) -> float:
        """Block until `nbytes` more may be sent; returns the seconds slept."""
        if nbytes < 0:
            raise ValueError(f"nbytes must be ≥ 0, got {nbytes}")
        with self._lock:
            self._sent_bytes += nbytes
            if self._bytes_per_s is None:
                return 0.0
            now = self._clock()
            start = self._ready_at if self._ready_at is not None else now
            if self._max_credit_s is not None:
                start = max(start, now - self._max_credit_s)
            self._ready_at = start + nbytes / self._bytes_per_s
            delay = self._ready_at - now
        if delay <= 0:
            return 0.0
        self._sleep(delay)
        return delay
