"""The rate limit and the live-read cap shared by every server process, through Redis.

Without ``REDIS_URL`` (one process: the embedded default) the limits are counted in process
(``apps.api.ratelimit``). With it, ``serve --workers N`` or N servers behind a proxy would each
grant a credential the full limit, so the counts live in Redis, updated atomically by one Lua
script per decision (a round trip on loopback, ~0.1 ms):

- the write rate limit is a token bucket in a hash (``tokens``, ``stamp``), refilled by Redis's
  own clock (``TIME``, so the processes' clocks need not agree);
- live reads are slots in a sorted set per credential, scored by when they expire. A process
  refreshes its slots every ``SLOT_SECONDS / 3``; a killed process's slots are not refreshed and
  stop counting after ``SLOT_SECONDS``.

Keys are named for the deployment (a digest of its database's address and its secret key), so
deployments, or test servers, sharing one Redis count apart.

Redis away never hangs a request: every call has a short timeout and no retry, and after a
failure Redis is left alone for ``RETRY_SECONDS``; meanwhile (``None`` from here) the caller
counts in process, as without Redis. One warning when Redis goes, one when it is back.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.conf import settings
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from streamdash.core.outage import Outage

__all__ = ["SLOT_SECONDS", "SharedLimits", "shared"]

logger = logging.getLogger("streamdash.limits")

SLOT_SECONDS = 30.0
RETRY_SECONDS = 2.0
_TIMEOUT = 0.25

T = TypeVar("T")

# ARGV: rate (tokens a second), burst. Returns the seconds to wait, as a string (Lua numbers
# come back to Redis clients truncated to integers).
_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(saved[1]) or burst
local stamp = tonumber(saved[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""

# ARGV: cap (0 = none), slot, lifetime in ms. Returns -1 when the slot was taken, else the
# number of live slots that refused it.
_ACQUIRE = """
local cap, ttl = tonumber(ARGV[1]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if cap > 0 and held >= cap then return held end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return -1
"""

# ARGV: lifetime in ms, then the slots (of KEYS[1]) this process still holds.
_REFRESH = """
local ttl = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ttl)
return 0
"""


class SharedLimits:
    """The Redis side of the limits; each method returns None when Redis cannot answer."""

    def __init__(self) -> None:
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._outage = Outage(
            logger,
            gone="Redis unavailable for the shared limits (%s: %s); counting per process "
            "until it is back",
            back="Redis is back for the shared limits after %.1f s",
        )
        self._retry_at = 0.0
        # Slots this process holds, by Redis key, refreshed by one task per event loop.
        self._slots: dict[str, set[str]] = {}
        self._refreshers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]]
        self._refreshers = weakref.WeakKeyDictionary()
        self._pending: set[asyncio.Task[Any]] = set()

    @functools.cached_property
    def _prefix(self) -> str:
        db = settings.DATABASES["default"]
        where = f"{db.get('HOST')}:{db.get('PORT')}/{db.get('NAME')}|{settings.SECRET_KEY}"
        return f"streamdash:{hashlib.sha256(where.encode()).hexdigest()[:16]}:"

    @property
    def configured(self) -> bool:
        return bool(settings.REDIS_URL)

    def _client(self) -> Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = Redis.from_url(
                settings.REDIS_URL,
                socket_connect_timeout=_TIMEOUT,
                socket_timeout=_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
            )
            self._clients[loop] = client
        return client

    async def _call(self, what: str, call: Callable[[Redis], Awaitable[T]]) -> T | None:
        if not self.configured or time.monotonic() < self._retry_at:
            return None
        try:
            # The socket timeouts bound each step; this bounds the whole (connect + call).
            result = await asyncio.wait_for(call(self._client()), 4 * _TIMEOUT)
        except Exception as exc:  # whatever Redis raises, the limits go on in process
            self._retry_at = time.monotonic() + RETRY_SECONDS
            self._outage.failed(what, exc)
            return None
        self._outage.ok()
        return result

    async def take(self, key: str, *, rate: float, burst: float) -> float | None:
        """One token from ``key``'s bucket: 0 when allowed, else the seconds to wait."""
        wait = await self._call(
            "rate limit",
            lambda r: r.eval(_TAKE, 1, self._prefix + "rate:" + key, repr(rate), repr(burst)),
        )
        return None if wait is None else float(wait)

    async def acquire(self, key: str, cap: int) -> tuple[int, Callable[[], None]] | None:
        """A live-read slot for ``key``: ``(-1, release)`` when taken, ``(held, noop)`` when
        ``cap`` slots are held already."""
        name = self._prefix + "live:" + key
        slot = uuid.uuid4().hex
        held = await self._call(
            "live-read cap",
            lambda r: r.eval(_ACQUIRE, 1, name, str(cap), slot, str(int(SLOT_SECONDS * 1000))),
        )
        if held is None:
            return None
        if int(held) >= 0:
            return int(held), lambda: None
        self._slots.setdefault(name, set()).add(slot)
        self._ensure_refresher()
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            slots = self._slots.get(name)
            if slots is not None:
                slots.discard(slot)
                if not slots:
                    del self._slots[name]
            with_loop = _running_loop()
            if with_loop is not None:
                # Best effort: a slot Redis does not hear about expires by itself.
                task = with_loop.create_task(self._call("release", lambda r: r.zrem(name, slot)))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

        return -1, release

    def held(self) -> int:
        """Slots this process holds (for tests and the refresher)."""
        return sum(len(slots) for slots in self._slots.values())

    def _ensure_refresher(self) -> None:
        loop = asyncio.get_running_loop()
        task = self._refreshers.get(loop)
        if task is None or task.done():
            self._refreshers[loop] = loop.create_task(self._refresh_loop(), name="live-slots")

    async def _refresh_loop(self) -> None:
        ttl = str(int(SLOT_SECONDS * 1000))
        while self._slots:
            await asyncio.sleep(SLOT_SECONDS / 3)
            for name, slots in list(self._slots.items()):
                if slots:
                    await self._call(
                        "refresh",
                        lambda r, n=name, s=list(slots): r.eval(_REFRESH, 1, n, ttl, *s),  # type: ignore[misc]
                    )

    def reset(self) -> None:
        """Forget the outage state (tests start each case with Redis assumed up)."""
        self._outage.down_since = None
        self._retry_at = 0.0


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


shared = SharedLimits()
