"""The one retry helper: exponential backoff with full jitter, and give-up rules.

`retry_call(fn, should_retry=..., ...)` calls `fn` until it returns, the error is not
worth retrying (`should_retry(exc)` is False), the attempts run out, the deadline
passes or `cancel` is set; on giving up it re-raises the *last* error unchanged, so
callers keep handling the real exception type (with a note of how many attempts
were made). Delays follow "full jitter": attempt n waits uniform(0, min(max_delay_s,
base_delay_s·multiplier^(n−1))) s, which spreads a crowd of nodes reconnecting to a
restarted coordinator.

`is_transient_grpc_error` is the predicate for gRPC calls: retry on UNAVAILABLE (the
server is down or restarting) and DEADLINE_EXCEEDED (no answer in time), never on
INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, UNIMPLEMENTED, … — those fail the
same way every time.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

T = TypeVar("T")


TRANSIENT_GRPC_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def grpc_code(exc: BaseException) -> grpc.StatusCode | None:
    """The status code of a gRPC error, None for anything else."""
    if isinstance(exc, grpc.RpcError):
        code = getattr(exc, "code", None)
        if callable(code):
            result = code()
            return result if isinstance(result, grpc.StatusCode) else None
    return None


def retry_on_grpc_codes(codes: Iterable[grpc.StatusCode]) -> Callable[[BaseException], bool]:
    """A `should_retry` predicate: True for gRPC errors whose code is in `codes`."""
    wanted = frozenset(codes)
    return lambda exc: grpc_code(exc) in wanted


def is_transient_grpc_error(exc: BaseException) -> bool:
    """True for gRPC UNAVAILABLE and DEADLINE_EXCEEDED (worth retrying), else False."""
    return grpc_code(exc) in TRANSIENT_GRPC_CODES


def backoff_delay_s(
    attempt: int,
    *,
    base_delay_s: float,
    max_delay_s: float,
    multiplier: float = 2.0,
    rng: random.Random | None = None,
) -> float:
    """Full-jitter delay before retry number `attempt` (1 = after the first failure):
    uniform(0, min(max_delay_s, base_delay_s·multiplier^(attempt−1))), in s."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    # cap the exponent: multiplier**attempt overflows long before anyone waits that long
    cap = min(max_delay_s, base_delay_s * multiplier ** min(attempt - 1, 64))
    return (rng or random).uniform(0.0, cap)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff and limits of `retry_call`, bundled so a component can take one."""

    max_attempts: int | None = None
    """Attempts in all; None: no limit."""
    deadline_s: float | None = None
    """Give up this many s after the first attempt; None: no limit."""
    base_delay_s: float = 0.1
    """Cap of the first delay, in s."""
    max_delay_s: float = 5.0
    """Cap of every delay, in s."""
    multiplier: float = 2.0
    """Growth of the cap per attempt."""

    def call(
        self,
        fn: Callable[[], T],
        *,
        should_retry: Callable[[BaseException], bool],
        on_retry: Callable[[int, BaseException, float], Any] | None = None,
        cancel: threading.Event | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> T:
        """`retry_call(fn, ...)` with this policy."""
        return retry_call(
            fn,
            should_retry=should_retry,
            max_attempts=self.max_attempts,
            deadline_s=self.deadline_s,
            base_delay_s=self.base_delay_s,
            max_delay_s=self.max_delay_s,
            multiplier=self.multiplier,
            on_retry=on_retry,
            cancel=cancel,
            sleep=sleep,
            clock=clock,
            rng=rng,
        )


def retry_call(
    fn: Callable[[], T],
    *,
    should_retry: Callable[[BaseException], bool],
    max_attempts: int | None = None,
    deadline_s: float | None = None,
    base_delay_s: float = 0.1,
    max_delay_s: float = 5.0,
    multiplier: float = 2.0,
    on_retry: Callable[[int, BaseException, float], Any] | None = None,
    cancel: threading.Event | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> T:
    """Call `fn()` until it succeeds; retry the errors `should_retry` accepts.

    Args:
        fn: the call; its return value is returned.
        should_retry: True for an error worth another attempt (only `Exception`s are
            considered; KeyboardInterrupt and the like always propagate).
        max_attempts: attempts in all (≥ 1); None: no limit.
        deadline_s: give up when this much time (s, from the first attempt) has passed;
            the last delay is shortened so one more attempt lands at the deadline.
            None: no limit. With neither limit it retries until `cancel` is set.
        base_delay_s, max_delay_s, multiplier: the backoff (see `backoff_delay_s`).
        on_retry: called as on_retry(attempt, error, delay_s) before each wait, e.g. to
            log; `attempt` is the number of the attempt that failed (1-based).
        cancel: when set (during a wait or between attempts), give up at once.
        sleep, clock, rng: injectable for tests. With `cancel` given and the default
            `sleep`, waits end as soon as `cancel` is set.

    Raises:
        The last error of `fn`, with a note of the attempts made, when giving up.
        ValueError when `max_attempts` < 1.
    """
    if max_attempts is not None and max_attempts < 1:
        raise ValueError(f"max_attempts must be ≥ 1, got {max_attempts}")
    if cancel is not None and sleep is time.sleep:
        sleep = cancel.wait
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            reason = _give_up_reason(
                exc, attempt, should_retry, max_attempts, deadline_s, start, clock, cancel
            )
            if reason is not None:
                if attempt > 1 or should_retry(exc):
                    exc.add_note(f"retry_call: gave up after {attempt} attempt(s): {reason}")
                raise
            delay = backoff_delay_s(
                attempt,
                base_delay_s=base_delay_s,
                max_delay_s=max_delay_s,
                multiplier=multiplier,
                rng=rng,
            )
            if deadline_s is not None:
                delay = min(delay, max(0.0, start + deadline_s - clock()))
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
            if cancel is not None and cancel.is_set():
                exc.add_note(f"retry_call: gave up after {attempt} attempt(s): cancelled")
                raise


def _give_up_reason(
    exc: Exception,
    attempt: int,
    should_retry: Callable[[BaseException], bool],
    max_attempts: int | None,
    deadline_s: float | None,
    start: float,
    clock: Callable[[], float],
    cancel: threading.Event | None,
) -> str | None:
    if not should_retry(exc):
        return "not a retryable error"
    if max_attempts is not None and attempt >= max_attempts:
        return f"max_attempts={max_attempts} reached"
    if deadline_s is not None and clock() - start >= deadline_s:
        return f"deadline of {deadline_s:g} s passed"
    if cancel is not None and cancel.is_set():
        return "cancelled"
    return None
