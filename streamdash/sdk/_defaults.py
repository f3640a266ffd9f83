"""The default clients, built lazily from the settings: one ``AsyncClient`` per event loop
(an httpx async client belongs to the loop that opened its connections) and one ``Client`` per
thread. ``configure(...)`` makes the next use build fresh ones."""

from __future__ import annotations

import asyncio
import threading
import weakref

from streamdash.sdk._client import AsyncClient, Client
from streamdash.sdk._config import generation

__all__ = ["default_async_client", "default_client"]

_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[int, AsyncClient]] = (
    weakref.WeakKeyDictionary()
)
_local = threading.local()


def default_async_client() -> AsyncClient:
    loop = asyncio.get_running_loop()
    cached = _async_clients.get(loop)
    if cached is None or cached[0] != generation():
        cached = (generation(), AsyncClient())
        _async_clients[loop] = cached
    return cached[1]


def default_client() -> Client:
    cached: tuple[int, Client] | None = getattr(_local, "client", None)
    if cached is None or cached[0] != generation():
        if cached is not None:
            cached[1].close()
        cached = (generation(), Client())
        _local.client = cached
    return cached[1]
