"""A stop flag set by signals, without the deadlock of setting it in the handler.

Python runs a signal handler in the main thread between two bytecodes, wherever that
thread is, including inside `threading.Event.wait` while it holds the event's own
(non-reentrant) lock. A handler that calls `event.set()` then waits for a lock its own
thread holds, forever. One signal rarely lands there; a second one soon after the
first does: the main thread has just woken and is taking the lock back. A node gets
such bursts (the kernel repeats PR_SET_PDEATHSIG as it re-parents the process; a
user presses Ctrl-C twice), and a node so stuck outlived its killed coordinator.

So the handler here takes no lock: it writes the signal's number to a pipe, and a
watcher thread reads it, runs the callback and sets the event.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalFlag:
    """`event` is set once any of `signals` arrives; `on_signal(signum)` runs first, in
    the watcher thread, for every one (logging, forwarding to a child). Install it from
    the main thread; `close` (or leaving the `with` block) puts the previous handlers
    back."""

    def __init__(
        self,
        signals: Iterable[signal.Signals] = STOP_SIGNALS,
        on_signal: Callable[[signal.Signals], None] = lambda _signum: None,
    ) -> None:
        self.event = threading.Event()
        self._on_signal = on_signal
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._watcher = threading.Thread(target=self._watch, name="signals", daemon=True)
        self._watcher.start()
        self._previous = {sig: signal.signal(sig, self._handle) for sig in signals}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # In the main thread, possibly inside a lock it holds: take none.
        with contextlib.suppress(OSError):  # a full pipe (EAGAIN): one is on its way
            os.write(self._write, bytes([signum]))

    def _watch(self) -> None:
        try:
            while data := os.read(self._read, 1):
                self._on_signal(signal.Signals(data[0]))
                self.event.set()
        finally:
            os.close(self._read)

    def wait(self, timeout: float | None = None) -> bool:
        return self.event.wait(timeout)

    def close(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        with contextlib.suppress(OSError):  # closed already
            os.close(self._write)  # the watcher reads the end and closes its side

    def __enter__(self) -> SignalFlag:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()
