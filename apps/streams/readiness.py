"""Is this process ready for traffic? The checks behind ``/readyz`` (``apps/api/health.py``).

- ``database``: one ``SELECT 1``, the way appends reach the database from the event loop — on
  PostgreSQL psycopg's async pool (``pg_append.ping``), elsewhere the read pool
  (``threads.run_in``).
- ``migrations``: no migration left unapplied. Loading the migration graph costs tens of
  milliseconds, so the answer is kept once it is yes (migrations are not unapplied under a
  running server); until then every check asks again.
- ``channel_layer``: with ``REDIS_URL``, a ``PING`` to that Redis (a client of this module's
  own: the layer's connection is shared with the hub behind a lock, which a check held up by a
  dead server must not take). Without it the layer is in memory, always there.

Each check is bounded by ``TIMEOUT_SECONDS`` and runs at most once at a time per process:
callers that arrive while one is in flight wait for the same answer, so a load balancer probing
a server whose database hangs piles up no threads or connections. A failing check is logged
once when it starts failing and once when it passes again, with the error's type and text
(for the operator; ``/readyz`` answers only ``ok`` or ``failing``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from apps.streams import pg_append, threads
from streamdash.core import requestid

__all__ = ["TIMEOUT_SECONDS", "check_all"]

logger = logging.getLogger("streamdash.readiness")

TIMEOUT_SECONDS = 1.0

_migrated = False
_redis: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis] = weakref.WeakKeyDictionary()


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _unapplied_migrations() -> bool:
    executor = MigrationExecutor(connection)
    return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))


async def _database() -> None:
    if pg_append.available():
        await pg_append.ping(wait=TIMEOUT_SECONDS)
    else:
        await threads.run_in("read", _select_one)


async def _migrations() -> None:
    global _migrated
    if await threads.run_in("read", _unapplied_migrations):
        raise _Pending("unapplied migrations")
    _migrated = True


async def _channel_layer() -> None:
    loop = asyncio.get_running_loop()
    client = _redis.get(loop)
    if client is None:
        client = _redis[loop] = Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
    await client.ping()


class _Pending(Exception):
    """The database answers but is not migrated yet."""


class _Check:
    """One named check, single-flight per event loop, remembered pass/fail for the log."""

    def __init__(
        self,
        name: str,
        run: Callable[[], Coroutine[Any, Any, None]],
        settled: Callable[[], bool] = lambda: False,
    ) -> None:
        self.name = name
        self.run = run
        # True when the answer is known to be yes without running: no task, no wait.
        self.settled = settled
        self.passing = True
        self._flights: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]]
        self._flights = weakref.WeakKeyDictionary()

    async def __call__(self) -> bool:
        if self.settled():
            return True
        loop = asyncio.get_running_loop()
        flight = self._flights.get(loop)
        if flight is None or flight.done():
            # Not the caller's request: a check may outlive it (requestid.py).
            flight = loop.create_task(self.run(), context=requestid.outside_request())
            flight.add_done_callback(_retrieve)
            self._flights[loop] = flight
        try:
            await asyncio.wait_for(asyncio.shield(flight), TIMEOUT_SECONDS)
        except Exception as exc:
            self._failed(exc)
            return False
        self._passed()
        return True

    def _failed(self, exc: Exception) -> None:
        if self.passing:
            self.passing = False
            why = f"no answer within {TIMEOUT_SECONDS:g} s" if isinstance(exc, TimeoutError) else ""
            logger.warning("readiness: %s failing (%s)", self.name, why or _describe(exc))

    def _passed(self) -> None:
        if not self.passing:
            self.passing = True
            logger.warning("readiness: %s ok again", self.name)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")


def _retrieve(task: asyncio.Task[Any]) -> None:
    # A check that outlived its callers fails unobserved: nothing to log twice.
    if not task.cancelled():
        task.exception()


_CHECKS = (
    _Check("database", _database),
    _Check("migrations", _migrations, settled=lambda: _migrated),
    _Check("channel_layer", _channel_layer, settled=lambda: not settings.REDIS_URL),
)


async def check_all() -> dict[str, bool]:
    """Every check, concurrently: ``{"database": True, "migrations": True, …}``."""
    results = await asyncio.gather(*(check() for check in _CHECKS))
    return {check.name: result for check, result in zip(_CHECKS, results, strict=True)}
