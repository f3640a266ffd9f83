"""Retries, in one place: which failures are retried, how long to wait, when to give up.

I/O-free: the sync and async clients ask ``Attempts.after_failure`` what to do and then sleep
with their own primitive. Delays grow exponentially from ``initial_delay``, capped at
``max_delay``, with full jitter in the upper part, and honour ``Retry-After``. A retry budget is
bounded both in count and in time; readers call ``reset`` after progress, so a long read survives
any number of separate drops but not a server that stays away.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from streamdash.sdk._exceptions import APIConnectionError, APIError, APITimeoutError

__all__ = ["Attempts", "RetryPolicy", "is_retryable", "retry_after_seconds"]

_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER = 60.0


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
