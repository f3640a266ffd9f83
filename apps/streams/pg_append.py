"""Appends on PostgreSQL from async code: psycopg's async pool, one round trip, no thread.

The sync write path (``services.chunks_append``) runs on a pool thread through Django's
connection: a thread hop each way, Django's transaction machinery, and five round trips to
the server (lock, COPY, save, COMMIT, and the implicit BEGIN riding on the first). Here, on the
event loop, with the same rules (``appending.plan_append``), on connections in autocommit:

- a plain append (chunks, no ``Stream-Seq``, no close: what writers send all day), and a
  producer's next seq in its epoch (what an SDK writer sends all day), is one statement
  (``pg_oneshot``), so one round trip and its own transaction, matching only a stream (and a
  producer state) the rules would accept as it is: open, live, of the same content type, with
  room and no schema to validate, and ``last_seq`` one below this seq. What it does not match
  takes the checked path, which answers as the rules say (the one statement wrote nothing);
- the checked path, every other append: ``BEGIN`` and ``SELECT … FOR UPDATE`` (the stream
  row, the producer's state, the schema and the run's status: ``rows.lock_sql``) in one
  pipeline round trip, then the batch's ``INSERT … SELECT FROM unnest(…)``, the counters'
  update with the producer's upsert (``rows.save_sql``) and ``COMMIT`` in the second.

Before it, the lock had a round trip of its own after an implicit ``BEGIN`` of its own: three
round trips and five statements for every append. Readers are told after the commit, from this
loop (``notify``). One pool per event loop (a psycopg async pool belongs to the loop that
opened it), sized by ``STREAMDASH_DB_POOL_MAX``.

Measured in one sitting (2026-12-02 04:54 UTC, ``uptime`` load 1.9–2.1 on 2 cores, PostgreSQL
15 with durable commits, ``DEBUG=0``, no Redis), alternating runs of the main branch (before)
and this one (after):

- ``streambench inprocess --requests 300``, one-chunk append, three runs each: 3.00, 2.75 and
  2.88 ms of CPU before; 1.28, 0.72 and 0.83 ms after (the plain statement, and the ASGI
  entry's fold, ``streamdash.entry``).
- ``streambench append --batches 50`` (4 writers, 100 JSON chunks of 64 B per request, each
  with a producer, so the checked path; one process): 7,966 and 7,058 chunks/s before (6.4 and
  6.6 ms CPU per request), 9,060 and 11,501 after (5.55 and 4.85 ms); raw COPY ran at 23,000
  to 34,000 chunks/s in the same runs, so 0.24–0.35 of COPY before and 0.27–0.40 after. In
  process, one 100-chunk append took 6.5 ms of CPU with a producer and 4.6 ms without; 4.5 and
  3.0 ms once the chunks went as a binary array.
- What is left of a 100-chunk append with a producer (cProfile, py-spy): psycopg's pipeline
  (two syncs, most of the remaining database CPU) and splitting the JSON body
  (``payloads.split_json``, about 1 ms per 100 chunks).

Then a producer's next seq went into the one statement (``pg_oneshot``), the JSON split lost
its whole-body depth scan, the batch its per-element dumper (``pg_chunks``) and the notice its
per-chunk records. PostgreSQL 15, durable commits, ``DEBUG=0``, main (before) and this branch
(after) alternating, each pair back to back:

- In process (the ASGI app called directly, 300 appends of 100 JSON chunks of 64 B with
  producer headers; 08:00 UTC, load 4–6 on 2 cores): 3.85, 4.22, 4.62, 4.49 ms of CPU per
  request before; 2.19, 2.21 after the one statement and the split, 2.10, 1.94 with the rest.
  With Redis (rate limit counted there, notice published there): 5.49 before, 3.01 after.
- ``streambench append --batches 50`` (4 writers, one process, in-memory layer; 08:17 UTC,
  load 2.0–2.7), two pairs: before 11,875 and 13,520 chunks/s (4.95 and 4.45 ms CPU per
  request), 0.37 and 0.30 of COPY (32,308 and 44,489); after 15,807 and 19,732 chunks/s (2.95
  and 2.20 ms), 0.45 and 0.50 of COPY (34,976 and 39,414). The reference server in the same
  runs: in memory 24,769–38,546, file-backed 22,640–32,951 chunks/s (goal, at least the
  file-backed figure: missed).
- ``--writers 1``: before 6,823 chunks/s (4.8 ms), after 9,013 (3.2 ms); COPY 34,314 / 31,439.
- ``--workers 2`` (Redis, 4 writers): before 12,645 chunks/s (4.05 ms; metrics off 18,851,
  3.30 ms), after 14,816 (2.60 ms; metrics off 12,280, 3.00 ms); the in-memory reference
  36,851–39,167 (goal: missed). An earlier sitting at load 5–7 gave CPU figures in line
  (before 4.9–6.1 ms, after 2.75–4.9), its throughput swinging twofold from run to run.
- Left per request over daphne: daphne and Twisted themselves (1.2 ms for a do-nothing app),
  the C scanner's ~0.3 ms for 100 JSON values, psycopg's execute, and with Redis the notice's
  publish (about half of the Redis calls' 1 ms in process, cProfile).
"""

from __future__ import annotations

import asyncio
import select
import weakref
from typing import Any

from django.conf import settings
from django.utils import timezone
from psycopg import AsyncConnection, OperationalError
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from apps.streams import pg_chunks, pg_oneshot, rows
from apps.streams.appending import (
    AppendRequest,
    AppendResult,
    check_request,
    plan_append,
    tell_readers,
)
from apps.streams.models import Chunk

# The chunks go as one bytea array in binary (``%b``): psycopg's text format escapes every
# element through a regular expression, which cost more CPU than the rest of a 100-chunk
# append's database work; the indices are the array's ordinality.
_INSERT = (
    f'INSERT INTO "{Chunk._meta.db_table}" (stream_id, "index", data, producer, created_at) '
    "SELECT %s, %s + t.i - 1, t.d, %s, %s FROM unnest(%b::bytea[]) WITH ORDINALITY AS t(d, i)"
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
    # Autocommit: a plain append is one statement, its own transaction; the checked path
    # opens one explicitly.
    await conn.set_autocommit(True)
    await conn.execute("SET TIME ZONE 'UTC'")
    pg_chunks.register(conn)


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


async def pool() -> AsyncConnectionPool[Any]:
    """This loop's pool, shared with the read path's statements (``pg_read``)."""
    return await _pool()


async def close_pool() -> None:
    """Close this loop's pool, if it has one: a server's loop lives as long as the process,
    but each test runs a loop of its own."""
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close()


def usage() -> tuple[int, int]:
    """Connections in use and requests waiting for one, over this process's pools."""
    in_use = waiting = 0
    for pool in list(_pools.values()):
        stats = pool.get_stats()
        in_use += stats.get("pool_size", 0) - stats.get("pool_available", 0)
        waiting += stats.get("requests_waiting", 0)
    return in_use, waiting


async def append(*, where: dict[str, Any], request: AppendRequest) -> AppendResult:
    check_request(request)
    pool = await _pool()
    if pg_oneshot.applies(request):
        async with pool.connection(timeout=float(settings.STREAMDASH_DB_WAIT_SECONDS)) as conn:
            if _went_away(conn):
                # The server closed it while it sat in the pool (a restart, a failover):
                # nothing of this append was sent; the checked path drops the other dead
                # ones and goes on with a live one.
                await conn.close()
            else:
                result = await pg_oneshot.append(conn, where, request)
                if result is not None:
                    return result
    return await _append_checked(pool, where, request)


def _went_away(conn: AsyncConnection[Any]) -> bool:
    """True when an idle connection has something to read: the server's goodbye (or EOF).
    A live idle connection has nothing to say until it is asked."""
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


async def _append_checked(
    pool: AsyncConnectionPool[Any], where: dict[str, Any], request: AppendRequest
) -> AppendResult:
    try:
        return await _append_locked(pool, where, request)
    except _Stale:
        # The pooled connections died with the server they were made to: drop every dead
        # one, then try once more on a live one.
        await pool.check()
    try:
        return await _append_locked(pool, where, request)
    except _Stale as stale:
        cause = stale.__cause__
        assert isinstance(cause, OperationalError)
        raise cause from None  # still away: the caller answers 503


class _Stale(Exception):
    """The connection failed before anything of this append reached the database."""


async def _append_locked(
    pool: AsyncConnectionPool[Any], where: dict[str, Any], request: AppendRequest
) -> AppendResult:
    """Any append, by the rules (``plan_append``) on the locked row: BEGIN and the lock in
    one round trip, the writes and COMMIT in the second."""
    now = timezone.now()
    sql, params = rows.lock_sql(postgres=True, **where)
    producer_id = request.producer.producer_id if request.producer else ""
    async with (
        pool.connection(timeout=float(settings.STREAMDASH_DB_WAIT_SECONDS)) as conn,
        conn.pipeline(),
        conn.transaction(),
    ):
        try:
            cursor = await conn.execute(sql, [producer_id, *params])
            row = await cursor.fetchone()
        except OperationalError as exc:
            if not conn.closed and not conn.broken:
                raise
            raise _Stale from exc
        stream, state = rows.locked_row(row)
        plan = plan_append(stream, state, request, now)
        if isinstance(plan, AppendResult):
            return plan  # nothing written; the commit only releases the row lock
        saves = rows.save_sql(
            plan.stream, now=now, producer=plan.producer_row, postgres=True, adapt=_same
        )
        if plan.chunks:
            await conn.execute(
                _INSERT,
                [plan.stream.pk, plan.start, plan.producer_id, now, pg_chunks.Chunks(plan.chunks)],
            )
        for statement, values in saves:
            await conn.execute(statement, values)
    tell_readers(plan)
    return plan.result


def _same(value: Any) -> Any:
    return value


async def fetch_one(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    """One row of one read statement through this loop's pool, with no thread (a HEAD's
    stream lookup); a connection the server closed in the pool is dropped, not used."""
    pool = await _pool()
    for _ in range(2):
        async with pool.connection(timeout=float(settings.STREAMDASH_DB_WAIT_SECONDS)) as conn:
            if _went_away(conn):
                await conn.close()
                continue
            cursor = await conn.execute(sql, params)
            row: tuple[Any, ...] | None = await cursor.fetchone()
            return row
    await pool.check()
    async with pool.connection(timeout=float(settings.STREAMDASH_DB_WAIT_SECONDS)) as conn:
        cursor = await conn.execute(sql, params)
        last: tuple[Any, ...] | None = await cursor.fetchone()
        return last


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
