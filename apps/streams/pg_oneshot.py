"""An append on PostgreSQL in one autocommit statement, when the stream's state cannot change
the answer: a plain append (no producer) and a producer's next seq in its current epoch.

The statement matches only what ``appending.plan_append`` would accept as it is: an open, live
stream of the same content type, with room and no schema to validate, and for a producer the
row that says this request is the next one (same epoch, ``last_seq`` one below). Anything else
matches nothing, writes nothing, and the caller takes the checked path, which answers as the
rules say: a duplicate, a gap, a stale epoch, a new producer or epoch, a closed or full stream.

Why a retry racing its original cannot be stored twice, and two producers cannot take one
index (tests/streams/test_pg_oneshot.py races both): the statement locks the stream row first
(``SELECT … FOR UPDATE``, the checked path's order too, so the two paths cannot deadlock).
Under READ COMMITTED a locked row is waited for, then read again in its committed version and
its conditions checked again (EvalPlanQual); so is the producer row its ``UPDATE`` finds
changed, which then no longer matches ``last_seq = seq - 1`` once the original is committed.
The data-modifying CTEs share one snapshot, so each step reads the one before it through its
``RETURNING`` rows, never through the tables: the producer's update joins the locked stream row,
the stream's counters move only for the producer row updated (``FROM p``), and the chunks go in
from the counters' ``RETURNING``. No row back: nothing was written.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone
from psycopg import AsyncConnection

from apps.streams import notify, pg_chunks
from apps.streams.appending import AppendRequest, AppendResult
from apps.streams.models import Chunk, Producer, Stream, StreamDefinition

_S = Stream._meta.db_table


def applies(request: AppendRequest) -> bool:
    """An append of chunks with none of the headers that need the stream's state to decide
    (no Stream-Seq, no close) and, for a producer, a seq that can follow one already stored
    (seq 0 starts a producer or an epoch: the checked path's work)."""
    return (
        bool(request.chunks)
        and request.stream_seq is None
        and not request.close
        and request.content_type is not None
        and (request.producer is None or request.producer.seq > 0)
    )


_MATCH = {
    "id": "s.id = %(stream_id)s",
    "run": "s.project_id = %(project_id)s AND s.run_id = %(run_id)s AND s.key = %(key)s",
    "standalone": "s.project_id = %(project_id)s AND s.run_id IS NULL AND s.key = %(key)s",
}
# A stream the rules would look at more closely (closed, deleted, expired, a schema to
# validate, full, another content type spelled differently) matches nothing.
_OPEN = (
    "NOT s.closed AND s.deleted_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > %(now)s) "
    "AND s.content_type = %(type)s AND s.byte_size + %(size)s <= %(max_bytes)s "
    f'AND NOT EXISTS (SELECT 1 FROM "{StreamDefinition._meta.db_table}" d '
    "WHERE d.project_id = s.project_id AND d.stream_id = s.key AND d.validate "
    "AND d.schema IS NOT NULL)"
)
_COUNTERS = (
    "next_index = s.next_index + %(count)s, byte_size = s.byte_size + %(size)s, "
    "expires_at = CASE WHEN s.ttl_seconds IS NULL THEN s.expires_at "
    "ELSE %(now)s + s.ttl_seconds * interval '1 second' END, updated_at = %(now)s"
)
# One chunk is a parameter of its own: adapting even a one-element list to an array costs
# psycopg more CPU than all the statement's other parameters together. Several go as one bytea
# array in binary (psycopg's text format escapes every element through a regular expression).
_ROWS = {
    True: "SELECT u.id, u.next_index - 1, %(data)s::bytea, %(producer)s, %(now)s FROM u",
    False: "SELECT u.id, u.next_index - %(count)s + t.i - 1, t.d, %(producer)s, %(now)s "
    "FROM u, unnest(%(data)b::bytea[]) WITH ORDINALITY AS t(d, i)",
}
_INSERT = f'INSERT INTO "{Chunk._meta.db_table}" (stream_id, "index", data, producer, created_at) '
# Plain: the UPDATE locks the row itself (a concurrent append waits, then sees the new counters).
_PLAIN = (
    f'WITH u AS (UPDATE "{_S}" AS s SET {_COUNTERS} WHERE {{match}} AND {_OPEN} '
    "RETURNING s.id, s.next_index), i AS ({insert}) SELECT id, next_index FROM u"
)
# A producer's next seq: lock the stream, move the producer on, then the counters, then the rows.
_PRODUCER = (
    f'WITH l AS (SELECT s.id, s.next_index FROM "{_S}" AS s WHERE {{match}} AND {_OPEN} '
    "FOR UPDATE OF s), "
    f'p AS (UPDATE "{Producer._meta.db_table}" AS p SET last_seq = %(seq)s, '
    "last_result = jsonb_build_object('start', l.next_index, 'next', l.next_index + %(count)s, "
    "'closed', false), updated_at = %(now)s FROM l WHERE p.stream_id = l.id "
    "AND p.producer_id = %(producer)s AND p.epoch = %(epoch)s AND p.last_seq = %(seq)s - 1 "
    "RETURNING p.stream_id), "
    f'u AS (UPDATE "{_S}" AS s SET {_COUNTERS} FROM p WHERE s.id = p.stream_id '
    "RETURNING s.id, s.next_index), i AS ({insert}) SELECT id, next_index FROM u"
)
_SQL = {
    (shape, single, producer): (_PRODUCER if producer else _PLAIN).format(
        match=match, insert=_INSERT + _ROWS[single]
    )
    for shape, match in _MATCH.items()
    for single in (True, False)
    for producer in (True, False)
}


def _shape(where: dict[str, Any]) -> str:
    if where.get("stream_id") is not None:
        return "id"
    return "run" if where.get("run_id") is not None else "standalone"


async def append(
    conn: AsyncConnection[Any], where: dict[str, Any], request: AppendRequest
) -> AppendResult | None:
    """The append in one round trip, or None when the stream (or the producer's state) needs
    the checked path; then nothing was written."""
    now = timezone.now()
    chunks, claim = request.chunks, request.producer
    producer_id = claim.producer_id if claim is not None else ""
    params = {
        **where,
        "count": len(chunks),
        "size": sum(map(len, chunks)),
        "now": now,
        "type": request.content_type,
        "max_bytes": int(settings.STREAMDASH_MAX_STREAM_BYTES),
        "data": chunks[0] if len(chunks) == 1 else pg_chunks.Chunks(chunks),
        "producer": producer_id,
    }
    if claim is not None:
        params["epoch"], params["seq"] = claim.epoch, claim.seq
    cursor = await conn.execute(_SQL[_shape(where), len(chunks) == 1, claim is not None], params)
    row = await cursor.fetchone()
    if row is None:
        return None
    stream_id, next_index = row
    start = next_index - len(chunks)
    notify.stream_appended(
        stream_id=stream_id,
        start=start,
        end=next_index,
        closed=False,
        chunks=notify.inline_chunks(start, chunks, now, producer_id),
    )
    return AppendResult(stream_id, start, next_index, False, producer=claim)
