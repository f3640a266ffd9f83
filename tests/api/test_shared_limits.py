"""The rate limit and the live-read cap counted in Redis (``apps.api.shared_limits``): two
``SharedLimits`` are two processes of one deployment; a Redis that goes away is a fall back to
per-process counting, said once, never a hang; Redis back, the counts are shared again."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from apps.api import ratelimit, shared_limits
from apps.api.shared_limits import SharedLimits
from streamdash.core.errors import RateLimited
from tests.services import RedisServer

# A Redis call that has not answered after this long is a hang, not a slow machine.
HANG = 5.0


@pytest.fixture
def redis(settings) -> Iterator[RedisServer]:
    server = RedisServer().start()
    settings.REDIS_URL = server.url
    try:
        yield server
    finally:
        server.kill()


def _key() -> str:
    return "c:" + uuid.uuid4().hex


async def _take(limits: SharedLimits, key: str, cap: int) -> Callable[[], None]:
    """A slot that must be granted: its release."""
    result = await limits.acquire(key, cap)
    assert result is not None
    assert result[0] == -1
    return result[1]


async def _refused(limits: SharedLimits, key: str, cap: int) -> int:
    """A slot that must be refused: how many were held."""
    result = await limits.acquire(key, cap)
    assert result is not None
    assert result[0] >= 0
    return result[0]


async def test_shared_limits_rate_is_one_bucket_for_all_processes(redis: RedisServer) -> None:
    one, two = SharedLimits(), SharedLimits()
    key = _key()
    waits = [await p.take(key, rate=0.5, burst=4) for p in (one, two, one, two, one, two)]
    assert waits[:4] == [0, 0, 0, 0]
    assert all((w or 0) > 0 for w in waits[4:]), waits


async def test_shared_limits_live_reads_capped_across_processes(redis: RedisServer) -> None:
    one, two = SharedLimits(), SharedLimits()
    key = _key()
    await _take(one, key, 2)
    release = await _take(two, key, 2)
    assert await _refused(one, key, 2) == 2
    release()  # released on the other process: room again
    await asyncio.sleep(0.1)
    await _take(one, key, 2)


async def test_shared_limits_slots_of_a_dead_process_expire(
    redis: RedisServer, monkeypatch
) -> None:
    monkeypatch.setattr(shared_limits, "SLOT_SECONDS", 1.0)
    dead, alive = SharedLimits(), SharedLimits()
    key = _key()
    await _take(dead, key, 1)
    dead._slots.clear()  # the process is gone: nothing refreshes or releases its slot
    assert await _refused(alive, key, 1) == 1
    await asyncio.sleep(1.2)
    await _take(alive, key, 1)


async def test_shared_limits_refresh_keeps_held_slots(redis: RedisServer, monkeypatch) -> None:
    monkeypatch.setattr(shared_limits, "SLOT_SECONDS", 0.6)
    holder, other = SharedLimits(), SharedLimits()
    key = _key()
    release = await _take(holder, key, 1)
    await asyncio.sleep(1.5)  # past the slot's lifetime, refreshed meanwhile
    assert await _refused(other, key, 1) == 1
    release()
    await asyncio.sleep(0.1)
    await _take(other, key, 1)


async def test_shared_limits_redis_away_falls_back_then_rejoins(
    redis: RedisServer, settings, monkeypatch, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="streamdash.limits")
    monkeypatch.setattr(shared_limits, "RETRY_SECONDS", 0.5)
    limits = SharedLimits()
    monkeypatch.setattr(shared_limits, "shared", limits)
    monkeypatch.setattr(ratelimit, "shared", limits)
    settings.STREAMDASH_RATE_LIMIT_PER_SECOND = 0.01
    settings.STREAMDASH_RATE_LIMIT_BURST = 2
    settings.STREAMDASH_MAX_LIVE_READS = 1
    key = _key()
    assert await ratelimit.awrite_limited("POST", key) is None

    redis.kill()
    began = time.monotonic()
    # In process now: this process's own bucket, full.
    assert await ratelimit.awrite_limited("POST", key) is None
    assert await ratelimit.awrite_limited("POST", key) is None
    assert isinstance(await ratelimit.awrite_limited("POST", key), RateLimited)
    release = await ratelimit.live_reads.aacquire(key, "sse")
    with pytest.raises(RateLimited):
        await ratelimit.live_reads.aacquire(key, "sse")
    release()
    assert time.monotonic() - began < HANG
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "Redis unavailable" in warnings[0]

    redis.start()  # the same port, empty
    await asyncio.sleep(0.6)
    # Shared again: the (new, full) bucket in Redis, and a slot in Redis.
    assert await ratelimit.awrite_limited("POST", key) is None
    assert await ratelimit.awrite_limited("POST", key) is None
    assert isinstance(await ratelimit.awrite_limited("POST", key), RateLimited)
    assert limits.held() == 0
    held = await ratelimit.live_reads.aacquire(key, "sse")
    assert limits.held() == 1
    held()
    assert [r.getMessage() for r in caplog.records][1].startswith("Redis is back")
    ratelimit.buckets.clear()
