"""Appends on PostgreSQL from async code: psycopg's async pool, two round trips, no thread.

The sync write path (``services.chunks_append``) runs on a pool thread through Django's
connection: a thread hop each way, Django's transaction machinery, and five round trips to
the server (lock, COPY, save, COMMIT, and the implicit BEGIN riding on the first). Here, on the
event loop, with the same rules (``appending.plan_append``):

1. ``SELECT … FOR UPDATE`` — the stream row, the producer's state, the definition's schema and
   the run's status, in one statement (``rows.lock_sql``);
2. one pipeline: ``INSERT … SELECT FROM unnest(…)`` of the batch, the counters' update with the
   producer's upsert (``rows.save_sql``), ``COMMIT`` — sent together, one round trip.

Readers are told after the commit, from this loop (``notify``). One pool per event loop (a
psycopg async pool belongs to the loop that opened it), sized by ``STREAMDASH_DB_POOL_MAX``.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from django.conf import settings
from django.utils import timezone
from psycopg import AsyncConnection, OperationalError
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from apps.streams import rows
from apps.streams.appending import (
    AppendRequest,
    AppendResult,
    check_request,
    plan_append,
    tell_readers,
)
from apps.streams.models import Chunk

_INSERT = (
    f'INSERT INTO "{Chunk._meta.db_table}" (stream_id, "index", data, producer, created_at) '
    "SELECT %s, i, d, %s, %s FROM unnest(%s::int8[], %s::bytea[]) AS t(i, d)"
)

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncConnectionPool[Any]] = (
    weakref.WeakKeyDictionary()
)


def available() -> bool:
    """True where this path serves appends: PostgreSQL, unless turned off."""
    engine = str(settings.DATABASES["default"]["ENGINE"])
    return "postgresql" in engine and bool(settings.STREAMDASH_ASYNC_PG)


def _conninfo() -> str:
    db = settings.DATABASES["default"]
    options = {k: v for k, v in (db.get("OPTIONS") or {}).items() if k not in ("pool",)}
    params = {
        "dbname": db.get("NAME"),
        "user": db.get("USER"),
        "password": db.get("PASSWORD"),
        "host": db.get("HOST"),
        "port": db.get("PORT"),
        **options,
    }
    return make_conninfo(**{k: str(v) for k, v in params.items() if v not in (None, "")})


async def _configure(conn: AsyncConnection[Any]) -> None:
    # As Django's connections: UTC, so stored and returned times agree with the ORM's.
    await conn.execute("SET TIME ZONE 'UTC'")
    await conn.commit()


async def _pool() -> AsyncConnectionPool[Any]:
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = AsyncConnectionPool(
            _conninfo(),
            min_size=1,
            max_size=int(settings.STREAMDASH_DB_POOL_MAX),
            timeout=float(settings.STREAMDASH_DB_WAIT_SECONDS),
            open=False,
            configure=_configure,
            name="streamdash-append",
        )
        _pools[loop] = pool
        await pool.open()
    return pool


def usage() -> tuple[int, int]:
    """Connections in use and requests waiting for one, over this process's pools."""
    in_use = waiting = 0
    for pool in list(_pools.values()):
        stats = pool.get_stats()
        in_use += stats.get("pool_size", 0) - stats.get("pool_available", 0)
        waiting += stats.get("requests_waiting", 0)
    return in_use, waiting


async def append(*, where: dict[str, Any], request: AppendRequest) -> AppendResult:
    pool = await _pool()
    try:
        return await _append(pool, where, request)
    except _Stale:
        # The pooled connections died with the server they were made to (a restart, a
        # failover): drop every dead one, then try once more on a live one.
        await pool.check()
    try:
        return await _append(pool, where, request)
    except _Stale as stale:
        cause = stale.__cause__
        assert isinstance(cause, OperationalError)
        raise cause from None  # still away: the caller answers 503


class _Stale(Exception):
    """The connection failed before anything of this append reached the database."""


async def _append(
    pool: AsyncConnectionPool[Any], where: dict[str, Any], request: AppendRequest
) -> AppendResult:
    check_request(request)
    now = timezone.now()
    sql, params = rows.lock_sql(postgres=True, **where)
    producer_id = request.producer.producer_id if request.producer else ""
    async with pool.connection(timeout=float(settings.STREAMDASH_DB_WAIT_SECONDS)) as conn:
        try:
            cursor = await conn.execute(sql, [producer_id, *params])
        except OperationalError as exc:
            if not conn.closed and not conn.broken:
                raise
            raise _Stale from exc
        stream, state = rows.locked_row(await cursor.fetchone())
        plan = plan_append(stream, state, request, now)
        if isinstance(plan, AppendResult):
            await conn.rollback()  # nothing written: release the row lock
            return plan
        saves = rows.save_sql(
            plan.stream, now=now, producer=plan.producer_row, postgres=True, adapt=_same
        )
        async with conn.pipeline():
            if plan.chunks:
                indices = list(range(plan.start, plan.start + len(plan.chunks)))
                await conn.execute(
                    _INSERT, [plan.stream.pk, plan.producer_id, now, indices, plan.chunks]
                )
            for statement, values in saves:
                await conn.execute(statement, values)
            await conn.commit()
    tell_readers(plan)
    return plan.result


def _same(value: Any) -> Any:
    return value


async def ping(*, wait: float) -> None:
    """One ``SELECT 1`` through this loop's pool (``/readyz``), waiting at most ``wait`` seconds
    for a connection. After a database restart the idle connections are dead: drop them and try
    once more, as an append does."""
    pool = await _pool()
    try:
        await _select_one(pool, wait)
    except OperationalError:  # psycopg_pool's PoolTimeout is one too
        await pool.check()
        await _select_one(pool, wait)


async def _select_one(pool: AsyncConnectionPool[Any], wait: float) -> None:
    async with pool.connection(timeout=wait) as conn:
        await conn.execute("SELECT 1")
