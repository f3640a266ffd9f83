"""Per-credential rate limits for writes to /api/ and /ds/: 429 with ``Retry-After``.

An in-process token bucket per credential (API key, token or, for the public /ds/ namespace,
the client address). The bucket is keyed by a digest of the credential string, before any
database lookup: a flood of writes costs a dict lookup, not a query, and nobody can drain
someone else's bucket by forging a token that merely *claims* their subject.

Without Redis the limits are per server process (the embedded default runs one). With
``REDIS_URL`` the async twins (``awrite_limited``, ``LiveReads.aacquire``) count in Redis for
the whole deployment (``apps.api.shared_limits``), so ``serve --workers N`` cannot multiply
them; when Redis does not answer they count in process, as without it.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from django.conf import settings

from apps.api.shared_limits import shared
from streamdash.core import metrics
from streamdash.core.errors import RateLimited

__all__ = [
    "LiveReads",
    "TokenBuckets",
    "awrite_limited",
    "buckets",
    "live_reads",
    "rate_key",
    "write_limited",
]

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MAX_KEYS = 100_000


class TokenBuckets:
    """Token buckets keyed by string: ``rate`` tokens a second, at most ``burst`` saved up.
    The least recently used keys are forgotten past ``max_keys`` (a forgotten key starts
    full again, which only ever errs towards letting a request through)."""

    def __init__(self, max_keys: int = _MAX_KEYS) -> None:
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def take(self, key: str, *, rate: float, burst: float, now: float | None = None) -> float:
        """Take one token. Returns 0 when allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, stamp = self._state.pop(key, (burst, now))
            tokens = min(burst, tokens + (now - stamp) * rate)
            if tokens >= 1:
                self._state[key] = (tokens - 1, now)
                wait = 0.0
            else:
                self._state[key] = (tokens, now)
                wait = (1 - tokens) / rate
            while len(self._state) > self._max_keys:
                self._state.popitem(last=False)
        return wait

    def clear(self) -> None:
        with self._lock:
            self._state.clear()


buckets = TokenBuckets()


class LiveReads:
    """Open live reads (SSE, long-poll, /subscribe, WebSocket) per credential, capped at
    ``STREAMDASH_MAX_LIVE_READS`` so that one key or token cannot hold the server's memory
    and connections; past the cap a new live read is a 429 with ``Retry-After``."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    async def aacquire(self, key: str, kind: str) -> Callable[[], None]:
        """``acquire``, counted across processes in Redis when it is configured and answers."""
        cap = int(settings.STREAMDASH_MAX_LIVE_READS)
        taken = await shared.acquire(key, cap)
        if taken is None:
            return self.acquire(key, kind)
        held, release = taken
        if held >= 0:
            raise _too_many_live_reads(held, cap)
        metrics.live_reader(kind, 1)
        released = False

        def counted_release() -> None:
            nonlocal released
            if not released:
                released = True
                metrics.live_reader(kind, -1)
                release()

        return counted_release

    def acquire(self, key: str, kind: str) -> Callable[[], None]:
        """Count one more live read of ``kind`` (``metrics.KINDS``) for ``key``; returns its
        release (safe to call twice)."""
        cap = int(settings.STREAMDASH_MAX_LIVE_READS)
        with self._lock:
            held = self._open.get(key, 0)
            if cap > 0 and held >= cap:
                raise _too_many_live_reads(held, cap)
            self._open[key] = held + 1
        metrics.live_reader(kind, 1)
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                metrics.live_reader(kind, -1)
                left = self._open.get(key, 1) - 1
                if left > 0:
                    self._open[key] = left
                else:
                    self._open.pop(key, None)

        return release

    def count(self, key: str) -> int:
        with self._lock:
            return self._open.get(key, 0)


def _too_many_live_reads(held: int, cap: int) -> RateLimited:
    metrics.rate_limited("live_reads")
    return RateLimited(
        f"These credentials have {held} live reads open, the most allowed; close "
        "one or retry later.",
        headers={"Retry-After": "5"},
        retry_after=5,
        live_reads=held,
        limit=cap,
    )


live_reads = LiveReads()


def rate_key(*, authorization: str, token: str | None, client: str) -> str:
    """Who is writing: a digest of the bearer credential, else the client address."""
    # "=" is padding a JWT or base64 decoder ignores: ``token=`` must not be a fresh bucket.
    credential = (authorization.partition(" ")[2].strip() or token or "").replace("=", "")
    if credential:
        return "c:" + hashlib.sha256(credential.encode("utf-8", "replace")).hexdigest()
    return "ip:" + client


def write_limited(method: str, key: str) -> RateLimited | None:
    """The refusal for one more write by ``key`` now, or None when it may go ahead."""
    rate = float(settings.STREAMDASH_RATE_LIMIT_PER_SECOND)
    if rate <= 0 or method not in _WRITE_METHODS:
        return None
    burst = max(1.0, float(settings.STREAMDASH_RATE_LIMIT_BURST))
    return _refusal(buckets.take(key, rate=rate, burst=burst), rate, burst)


async def awrite_limited(method: str, key: str) -> RateLimited | None:
    """``write_limited``, counted across processes in Redis when it is configured and answers."""
    rate = float(settings.STREAMDASH_RATE_LIMIT_PER_SECOND)
    if rate <= 0 or method not in _WRITE_METHODS:
        return None
    burst = max(1.0, float(settings.STREAMDASH_RATE_LIMIT_BURST))
    wait = await shared.take(key, rate=rate, burst=burst)
    if wait is None:
        wait = buckets.take(key, rate=rate, burst=burst)
    return _refusal(wait, rate, burst)


def _refusal(wait: float, rate: float, burst: float) -> RateLimited | None:
    if wait <= 0:
        return None
    metrics.rate_limited("writes")
    retry_after = max(1, math.ceil(wait))
    return RateLimited(
        f"Too many writes with these credentials; retry in {retry_after} s.",
        headers={"Retry-After": str(retry_after)},
        retry_after=retry_after,
        limit_per_second=rate,
        burst=int(burst),
    )
