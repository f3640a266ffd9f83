"""The one way async code reaches the database: ``run_in(pool, fn, …)``.

``pool`` is ``"read"`` (the hub, live readers, consumers, pages), ``"write"`` (appends and
the other stream operations) or ``"caller"`` (Django's own bridge, ``sync_to_async``, for a
Django view whose caller's transaction must be seen: the test client). On PostgreSQL, appends
from the stream URLs do not come here at all: they run on the event loop through psycopg's
async pool (``apps.streams.pg_append``).

Why not ``sync_to_async`` everywhere: with ``thread_sensitive=True`` every ASGI request gets a
thread of its own that lives as long as the response (one per live reader), and outside a
request all calls share Django's single sync thread. These pools are bounded and shared:
``read`` serves the hub and live readers, ``write`` the stream URLs' appends and catch-up
reads. Each call starts and ends with ``close_old_connections`` so a pooled PostgreSQL
connection goes back to the pool between calls, as it would at the end of a request, and knows
the event loop that awaits it (``calling_loop``), which is where its notifications are sent
from.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections

T = TypeVar("T")

_pools: dict[str, tuple[ThreadPoolExecutor, int]] = {}  # each with its number of threads
# Calls handed to each pool and not finished yet, counted on the event loop (no lock).
_calls: dict[str, int] = {}
_local = threading.local()


def _pool(name: str) -> ThreadPoolExecutor:
    made = _pools.get(name)
    if made is None:
        size = settings.STREAMDASH_DB_THREADS[name]
        made = _pools[name] = (ThreadPoolExecutor(size, f"streamdash-{name}"), size)
    return made[0]


def _call(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    close_old_connections()
    _local.loop = loop
    try:
        return fn(*args, **kwargs)
    finally:
        _local.loop = None
        close_old_connections()


async def run_in(name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` on the named pool and await its result."""
    if name == "caller":
        return await sync_to_async(fn)(*args, **kwargs)
    pool = _pool(name)
    _calls[name] = _calls.get(name, 0) + 1
    try:
        return await run_on(pool, fn, *args, **kwargs)
    finally:
        _calls[name] -= 1


def close_connections() -> None:
    """Close every pool thread's database connections (each thread keeps its own between
    calls), waiting for them; for a test run's end, before its database is dropped."""
    for pool, threads in _pools.values():
        gate = threading.Barrier(threads)

        def close(gate: threading.Barrier = gate) -> None:
            gate.wait(timeout=30)  # one call per thread: each holds its thread until all have one
            connections.close_all()

        for done in [pool.submit(close) for _ in range(threads)]:
            done.result(timeout=60)


def usage(name: str) -> tuple[int, int]:
    """Threads busy and calls waiting for one in the named pool."""
    calls, size = _calls.get(name, 0), settings.STREAMDASH_DB_THREADS[name]
    return min(calls, size), max(0, calls - size)


async def run_on(executor: Executor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` as ``run_in`` does, on an executor of the caller's own (the purge
    schedule's single thread)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(_call, loop, fn, args, kwargs))


def calling_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop that handed the current pool call over, if this thread runs one."""
    return getattr(_local, "loop", None)
