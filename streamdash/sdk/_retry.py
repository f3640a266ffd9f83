"""Retries, in one place: which failures are retried, how long to wait, when to give up.

I/O-free: the sync and async clients ask ``Attempts.after_failure`` (one request) or
``Reconnects.after_failure`` (a live read) what to do and then sleep with their own primitive.
Delays grow exponentially, capped, with jitter, and honour ``Retry-After``.

A request's budget is bounded in count and in time (``RetryPolicy``). A live read follows
``ReconnectPolicy``, the same policy as streamdash.js's readers:

- a line dropped after data resumes at once;
- network errors, 5xx, 408, 425 and 429 are retried with backoff from 0.25 s to 10 s, for as long
  as the server was reached within ``give_up_after`` seconds (300); then the last error raises;
- a run's stream that does not exist yet (404 ``stream_not_found`` naming a ``run_status`` that
  is not final) is waited for: the server holds each read until the stream appears, and the
  reader asks again for up to ``wait_for_stream`` seconds (600);
- anything else the server says is final and raises: other 4xx, 410, an ``error`` event.

Every retry is reported to ``on_retry(RetryInfo(attempt, delay, error))`` before its wait.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from streamdash.sdk._exceptions import APIConnectionError, APIError, APITimeoutError

__all__ = [
    "Attempts",
    "OnRetry",
    "ReconnectPolicy",
    "Reconnects",
    "RetryInfo",
    "RetryPolicy",
    "is_retryable",
    "is_waiting_for_stream",
    "retry_after_seconds",
]

_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER = 60.0
_FINAL_RUN_STATUSES = frozenset({"completed", "failed", "canceled", "expired"})
# The server holds a waiting read (apps/api/stream_wait.py): this only paces the asks.
_WAIT_RETRY_MAX = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    initial_delay: float = 0.05
    max_delay: float = 5.0
    deadline: float = 60.0  # seconds since the first failure, for one operation
    jitter: float = 0.25  # the delay is reduced by up to this fraction, at random

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = the first retry)."""
        if retry_after is not None and 0 <= retry_after <= _MAX_RETRY_AFTER:
            return retry_after
        base = min(self.max_delay, self.initial_delay * 2 ** (attempt - 1))
        return float(base * (1 - self.jitter * random.random()))


def retry_after_seconds(headers: dict[str, str]) -> float | None:
    """``Retry-After`` as seconds (numbers or an HTTP date), or None."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, APIError):
        return error.status in _RETRY_STATUSES or error.status >= 500
    return isinstance(error, httpx.TransportError | APIConnectionError)


def as_sdk_error(error: BaseException) -> BaseException:
    """Transport errors become SDK errors at the edge; everything else passes through."""
    if isinstance(error, httpx.TimeoutException):
        return APITimeoutError(f"The request timed out: {error!r}")
    if isinstance(error, httpx.TransportError):
        return APIConnectionError(f"The connection to the server failed: {error!r}")
    return error


class Attempts:
    """The retry budget of one operation."""

    def __init__(self, policy: RetryPolicy, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self.failures = 0
        self.first_failure: float | None = None

    def reset(self) -> None:
        """Progress was made: the budget starts again."""
        self.failures = 0
        self.first_failure = None

    def after_failure(self, error: BaseException) -> float:
        """Seconds to wait before trying again; re-raises ``error`` (as an SDK error) when it
        is not retryable or the budget is spent."""
        now = self.clock()
        if self.first_failure is None:
            self.first_failure = now
        self.failures += 1
        spent = now - self.first_failure
        if (
            not is_retryable(error)
            or self.failures >= self.policy.max_attempts
            or spent >= self.policy.deadline
        ):
            raise as_sdk_error(error) from error
        retry_after = retry_after_seconds(error.headers) if isinstance(error, APIError) else None
        delay = self.policy.delay(self.failures, retry_after)
        return max(0.0, min(delay, self.policy.deadline - spent))


def is_waiting_for_stream(error: BaseException) -> bool:
    """A run's stream that does not exist yet, of a run that may still create it."""
    if not isinstance(error, APIError) or error.status != 404:
        return False
    status = error.facts.get("run_status")
    return (
        error.code == "stream_not_found"
        and isinstance(status, str)
        and status not in _FINAL_RUN_STATUSES
    )


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a live read reconnects (module docstring); the defaults are streamdash.js's."""

    initial_delay: float = 0.25
    max_delay: float = 10.0
    give_up_after: float = 300.0  # seconds without reaching the server
    wait_for_stream: float = 600.0  # seconds to wait for a run's stream not created yet

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retry number ``attempt`` (1 = the first): exponential, capped, with
        up to half taken off at random, and never less than ``Retry-After``."""
        base = min(self.max_delay, self.initial_delay * 2 ** (attempt - 1))
        delay = base * (0.5 + random.random() / 2)
        if retry_after is not None and 0 <= retry_after <= _MAX_RETRY_AFTER:
            delay = max(delay, retry_after)
        return float(delay)


@dataclass(frozen=True)
class RetryInfo:
    """What ``on_retry`` is told before each wait of a live read."""

    attempt: int  # 1 for the first retry since the last data
    delay: float  # seconds
    error: BaseException


OnRetry = Callable[[RetryInfo], object]


class Reconnects:
    """The reconnect state of one live read: call ``connected`` when data arrives and
    ``after_failure`` when a connection fails."""

    def __init__(
        self,
        policy: ReconnectPolicy,
        *,
        on_retry: OnRetry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.on_retry = on_retry
        self.clock = clock
        self.attempt = 0
        self.reached_at = clock()  # the server last answered (data, or "wait for it")
        self.waiting_since: float | None = None

    def connected(self) -> None:
        self.attempt = 0
        self.reached_at = self.clock()
        self.waiting_since = None

    def after_failure(self, error: BaseException, *, had_data: bool = False) -> float:
        """Seconds to wait before connecting again; raises ``error`` (as an SDK error) when it
        is final or the policy's limits are spent. ``had_data``: this connection delivered
        some before it failed, so the next one starts at once."""
        now = self.clock()
        if is_waiting_for_stream(error):
            self.reached_at = now
            if self.waiting_since is None:
                self.waiting_since = now
            if now - self.waiting_since > self.policy.wait_for_stream:
                raise error
            return self._retry(error, min(_WAIT_RETRY_MAX, self.policy.delay(self.attempt + 1)))
        if not is_retryable(error) or now - self.reached_at > self.policy.give_up_after:
            raise as_sdk_error(error) from error
        retry_after = retry_after_seconds(error.headers) if isinstance(error, APIError) else None
        delay = 0.0 if had_data else self.policy.delay(self.attempt + 1, retry_after)
        return self._retry(error, delay)

    def _retry(self, error: BaseException, delay: float) -> float:
        self.attempt += 1
        if self.on_retry is not None:
            self.on_retry(RetryInfo(self.attempt, delay, error))
        return delay
