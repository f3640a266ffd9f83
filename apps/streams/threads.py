"""Named thread pools for the database work of async code, and the server's event loop.

Why not ``sync_to_async``: with ``thread_sensitive=True`` every ASGI request gets a thread of
its own that lives as long as the response (one per live reader), and outside a request all
calls share Django's single sync thread. These pools are bounded and shared: ``read`` serves
the hub and live readers, ``write`` the stream URLs' appends and catch-up reads. Each call
starts and ends with ``close_old_connections`` so a pooled PostgreSQL connection goes back to
the pool between calls, as it would at the end of a request.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections

T = TypeVar("T")

_pools: dict[str, ThreadPoolExecutor] = {}
_server_loop: asyncio.AbstractEventLoop | None = None


def _pool(name: str) -> ThreadPoolExecutor:
    pool = _pools.get(name)
    if pool is None:
        size = settings.STREAMDASH_DB_THREADS[name]
        pool = _pools[name] = ThreadPoolExecutor(size, thread_name_prefix=f"streamdash-{name}")
    return pool


def _call(fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def run_in(name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` on the named pool and await its result."""
    loop = asyncio.get_running_loop()
    bind_loop(loop)
    return await loop.run_in_executor(_pool(name), functools.partial(_call, fn, args, kwargs))


def bind_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Remember the server's event loop, where notifications must be sent from."""
    global _server_loop
    _server_loop = loop


def server_loop() -> asyncio.AbstractEventLoop | None:
    loop = _server_loop
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    return loop
