"""A dependency-free progress bar for long work: redraws in place on a terminal, and
prints a plain line every few seconds otherwise (logs, CI). Progress is chatter: with
`testbed -q` (the root logger at ERROR) it is not shown."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO


def progress_enabled() -> bool:
    """Whether progress lines are shown: not when logging is at ERROR or above (`-q`)."""
    return logging.getLogger().isEnabledFor(logging.WARNING)


class ProgressBar:
    def __init__(
        self, total: int, label: str, *, stream: TextIO | None = None, every_s: float = 5.0
    ) -> None:
        self.total = max(1, total)
        self.label = label
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.done = 0
        self.t0 = time.monotonic()
        self._last_line = 0.0
        self._tty = self.stream.isatty()
        self._shown = progress_enabled()

    def update(self, n: int = 1, note: str = "") -> None:
        self.done = min(self.total, self.done + n)
        if not self._shown:
            return
        now = time.monotonic()
        elapsed = now - self.t0
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        frac = self.done / self.total
        text = f"{self.label} {self.done}/{self.total} [{elapsed:5.1f}s, eta {eta:4.0f}s] {note}"
        if self._tty:
            bar = "#" * int(frac * 24)
            self.stream.write(f"\r[{bar:<24}] {text}\033[K")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif now - self._last_line >= self.every_s or self.done == self.total:
            self._last_line = now
            self.stream.write(f"{text}\n")
            self.stream.flush()
