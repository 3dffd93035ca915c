"""The retry helper: backoff with full jitter, limits, give-up rules."""

from __future__ import annotations

import random
import threading

import grpc
import pytest

from testbed.retry import (
    RetryPolicy,
    backoff_delay_s,
    grpc_code,
    is_transient_grpc_error,
    retry_call,
    retry_on_grpc_codes,
)


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class Flaky:
    """Fails with the given errors, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def always(_exc: BaseException) -> bool:
    return True


def test_succeeds_after_transient_failures() -> None:
    fn = Flaky(ConnectionError(), ConnectionError())
    t = FakeTime()
    retries: list[tuple[int, str, float]] = []
    result = retry_call(
        fn,
        should_retry=always,
        max_attempts=5,
        sleep=t.sleep,
        clock=t.clock,
        on_retry=lambda n, exc, d: retries.append((n, type(exc).__name__, d)),
        rng=random.Random(1),
    )
    assert result == "ok" and fn.calls == 3
    assert [(n, name) for n, name, _ in retries] == [(1, "ConnectionError"), (2, "ConnectionError")]
    assert [d for *_, d in retries] == t.sleeps


def test_not_retryable_error_is_raised_at_once_unchanged() -> None:
    err = ValueError("bad request")
    fn = Flaky(err)
    t = FakeTime()
    with pytest.raises(ValueError) as info:
        retry_call(fn, should_retry=lambda e: isinstance(e, OSError), max_attempts=5, sleep=t.sleep)
    assert info.value is err and fn.calls == 1 and t.sleeps == []


def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    errors = [ConnectionError(f"try {i}") for i in range(5)]
    fn = Flaky(*errors)
    t = FakeTime()
    with pytest.raises(ConnectionError) as info:
        retry_call(fn, should_retry=always, max_attempts=3, sleep=t.sleep, clock=t.clock)
    assert info.value is errors[2] and fn.calls == 3 and len(t.sleeps) == 2
    assert any("gave up after 3 attempt(s)" in note for note in info.value.__notes__)


def test_gives_up_at_the_deadline() -> None:
    fn = Flaky(*[TimeoutError() for _ in range(1000)])
    t = FakeTime()
    with pytest.raises(TimeoutError):
        retry_call(
            fn,
            should_retry=always,
            deadline_s=10.0,
            base_delay_s=1.0,
            max_delay_s=4.0,
            sleep=t.sleep,
            clock=t.clock,
            rng=random.Random(0),
        )
    # the last wait is shortened so the final attempt lands at the deadline, not after
    assert t.now == pytest.approx(10.0)
    assert fn.calls >= 3


def test_full_jitter_delays_stay_under_the_exponential_cap() -> None:
    rng = random.Random(42)
    for attempt in range(1, 12):
        cap = min(5.0, 0.1 * 2 ** (attempt - 1))
        delays = [
            backoff_delay_s(attempt, base_delay_s=0.1, max_delay_s=5.0, rng=rng) for _ in range(200)
        ]
        assert all(0.0 <= d <= cap for d in delays)
        assert max(delays) > 0.8 * cap  # spread over the whole range: full jitter
    # huge attempt counts do not overflow
    assert 0 <= backoff_delay_s(10_000, base_delay_s=0.1, max_delay_s=5.0) <= 5.0


def test_cancel_ends_a_wait_at_once() -> None:
    cancel = threading.Event()
    fn = Flaky(*[ConnectionError() for _ in range(1000)])
    threading.Timer(0.1, cancel.set).start()
    with pytest.raises(ConnectionError) as info:
        retry_call(fn, should_retry=always, base_delay_s=30.0, max_delay_s=30.0, cancel=cancel)
    assert any("cancelled" in note for note in info.value.__notes__)


def test_grpc_predicates() -> None:
    assert is_transient_grpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE))
    assert is_transient_grpc_error(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED))
    for code in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
    ):
        assert not is_transient_grpc_error(FakeRpcError(code)), code
    assert not is_transient_grpc_error(ConnectionError())
    assert grpc_code(ValueError()) is None
    aborted = retry_on_grpc_codes([grpc.StatusCode.ABORTED])
    assert aborted(FakeRpcError(grpc.StatusCode.ABORTED))
    assert not aborted(FakeRpcError(grpc.StatusCode.UNAVAILABLE))


def test_grpc_retry_rules_in_use() -> None:
    t = FakeTime()
    fn = Flaky(
        FakeRpcError(grpc.StatusCode.UNAVAILABLE),
        FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT),
    )
    policy = RetryPolicy(max_attempts=10)
    with pytest.raises(grpc.RpcError) as info:
        policy.call(fn, should_retry=is_transient_grpc_error, sleep=t.sleep, clock=t.clock)
    assert grpc_code(info.value) is grpc.StatusCode.INVALID_ARGUMENT
    assert fn.calls == 2


def test_invalid_max_attempts() -> None:
    with pytest.raises(ValueError):
        retry_call(lambda: None, should_retry=always, max_attempts=0)
