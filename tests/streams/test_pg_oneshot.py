"""A producer's next append in one statement (``apps.streams.pg_oneshot``): the same answers as
the checked path, and no chunk stored twice or index taken twice when appends race, on real
PostgreSQL connections."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from psycopg import AsyncConnection

from apps.streams import pg_append, removal
from apps.streams.appending import AppendRequest, AppendResult
from apps.streams.models import Chunk, Producer, Stream
from apps.streams.producers import ProducerClaim
from streamdash.core.errors import (
    BadRequest,
    ProducerSeqGap,
    StaleProducerEpoch,
    StreamClosed,
    StreamNotFound,
)
from tests.factories import make_project, make_stream

pytestmark = [
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="the one-statement append is PostgreSQL's",
    ),
    pytest.mark.django_db(transaction=True),
]

JSON = "application/json"
ROUNDS = 25  # races per test: bounded, each a few milliseconds


async def _stream() -> Stream:
    project, _ = await sync_to_async(make_project)()
    return await sync_to_async(make_stream)(project)


def _append(
    stream: Stream, chunks: list[bytes], producer: ProducerClaim | None = None, **kwargs: object
) -> Awaitable[AppendResult]:
    request = AppendRequest(chunks, JSON, producer, **kwargs)  # type: ignore[arg-type]
    where = {"project_id": stream.project_id, "run_id": None, "key": stream.key}
    return pg_append.append(where=where, request=request)


def _batch(tag: str, n: int, size: int = 3) -> list[bytes]:
    return [b'{"t":"%s","n":%d,"i":%d}' % (tag.encode(), n, i) for i in range(size)]


async def _stored(stream: Stream) -> tuple[Stream, list[tuple[int, bytes, str]]]:
    def read() -> tuple[Stream, list[tuple[int, bytes, str]]]:
        rows = Chunk.objects.filter(stream_id=stream.pk).order_by("index")
        return Stream.objects.get(pk=stream.pk), [
            (c.index, bytes(c.data), c.producer) for c in rows
        ]

    return await sync_to_async(read)()


async def _producer(stream: Stream, producer_id: str) -> Producer:
    return await sync_to_async(Producer.objects.get)(stream_id=stream.pk, producer_id=producer_id)


async def _warm_pool(stream: Stream, connections: int) -> None:
    """Open ``connections`` pooled connections, so the races below start at once."""
    await asyncio.gather(*(_append(stream, [b'{"warm":%d}' % i]) for i in range(connections)))


async def test_a_producers_next_seq_takes_one_statement(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = await _stream()
    first = await _append(stream, _batch("p", 0), ProducerClaim("p", 0, 0))

    async def checked(*args: object) -> AppendResult:
        raise AssertionError("a producer's next seq took the checked path")

    monkeypatch.setattr(pg_append, "_append_checked", checked)
    second = await _append(stream, _batch("p", 1), ProducerClaim("p", 0, 1))
    assert (first.start_index, second.start_index, second.next_index) == (0, 3, 6)
    assert (second.duplicate, second.producer) == (False, ProducerClaim("p", 0, 1))
    saved, chunks = await _stored(stream)
    assert (saved.next_index, [producer for *_, producer in chunks]) == (6, ["p"] * 6)
    state = await _producer(stream, "p")
    assert (state.epoch, state.last_seq) == (0, 1)
    assert state.last_result == {"start": 3, "next": 6, "closed": False}


async def test_what_the_statement_does_not_match_is_answered_by_the_rules() -> None:
    stream = await _stream()
    await _append(stream, _batch("p", 0), ProducerClaim("p", 0, 0))
    await _append(stream, _batch("p", 1), ProducerClaim("p", 0, 1))
    again = await _append(stream, _batch("p", 1), ProducerClaim("p", 0, 1))
    assert (again.duplicate, again.start_index, again.next_index) == (True, 3, 6)
    older = await _append(stream, _batch("p", 0), ProducerClaim("p", 0, 0))
    assert (older.duplicate, older.next_index) == (True, 6)
    with pytest.raises(ProducerSeqGap) as gap:
        await _append(stream, _batch("p", 3), ProducerClaim("p", 0, 3))
    assert gap.value.headers["Producer-Expected-Seq"] == "2"
    with pytest.raises(ProducerSeqGap):
        await _append(stream, _batch("q", 1), ProducerClaim("q", 0, 1))  # new: starts at 0
    with pytest.raises(BadRequest):
        await _append(stream, _batch("p", 2), ProducerClaim("p", 1, 2))  # new epoch: from 0
    assert (await _append(stream, _batch("p", 0), ProducerClaim("p", 1, 0))).start_index == 6
    with pytest.raises(StaleProducerEpoch):
        await _append(stream, _batch("p", 1), ProducerClaim("p", 0, 2))
    await _append(stream, [], close=True)
    with pytest.raises(StreamClosed):
        await _append(stream, _batch("p", 1), ProducerClaim("p", 1, 1))
    saved, chunks = await _stored(stream)
    assert saved.next_index == len(chunks) == 9
    state = await _producer(stream, "p")
    assert (state.epoch, state.last_seq) == (1, 0)


async def _waiting_for_a_lock(admin: AsyncConnection[object], count: int) -> None:
    for _ in range(500):  # up to 5 s
        cursor = await admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        row = await cursor.fetchone()
        if row is not None and row[0] >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} appends never waited for the stream's lock")


async def _behind_a_lock(stream: Stream, *appends: Awaitable[AppendResult]) -> list[AppendResult]:
    """Start ``appends`` while another transaction holds the stream row, wait until every one
    is blocked on it (so each statement's snapshot predates the others' commits), let go."""
    holder = await AsyncConnection.connect(pg_append._conninfo())
    watcher = await AsyncConnection.connect(pg_append._conninfo(), autocommit=True)
    async with holder, watcher:
        await holder.execute(
            f'SELECT 1 FROM "{Stream._meta.db_table}" WHERE id = %s FOR UPDATE', [stream.pk]
        )
        tasks = [asyncio.ensure_future(a) for a in appends]
        await _waiting_for_a_lock(watcher, len(tasks))
        await holder.commit()
        return list(await asyncio.gather(*tasks))


async def test_a_retry_behind_its_original_is_a_duplicate_stored_once() -> None:
    stream = await _stream()
    await _warm_pool(stream, 2)
    await _append(stream, _batch("p", 0), ProducerClaim("p", 0, 0))
    for seq in range(1, 6):
        claim = ProducerClaim("p", 0, seq)
        batch = _batch("p", seq)
        results = await _behind_a_lock(
            stream, _append(stream, batch, claim), _append(stream, batch, claim)
        )
        assert sorted(r.duplicate for r in results) == [False, True]
        assert len({(r.start_index, r.next_index) for r in results}) == 1
    saved, chunks = await _stored(stream)
    assert [data for _, data, producer in chunks if producer == "p"] == [
        chunk for seq in range(6) for chunk in _batch("p", seq)
    ]
    assert [index for index, *_ in chunks] == list(range(saved.next_index))


async def test_two_producers_behind_a_lock_take_an_index_each() -> None:
    stream = await _stream()
    await _warm_pool(stream, 3)
    for producer in ("a", "b"):
        await _append(stream, _batch(producer, 0), ProducerClaim(producer, 0, 0))
    for seq in range(1, 4):
        results = await _behind_a_lock(
            stream,
            _append(stream, _batch("a", seq), ProducerClaim("a", 0, seq)),
            _append(stream, _batch("b", seq), ProducerClaim("b", 0, seq)),
            _append(stream, [b'{"plain":%d}' % seq]),
        )
        assert not any(r.duplicate for r in results)
    saved, chunks = await _stored(stream)
    assert [index for index, *_ in chunks] == list(range(saved.next_index))
    for producer in ("a", "b"):
        mine = [data for _, data, owner in chunks if owner == producer]
        assert mine == [chunk for seq in range(4) for chunk in _batch(producer, seq)]
        assert (await _producer(stream, producer)).last_seq == 3


async def test_appends_and_retries_racing_store_every_batch_once() -> None:
    stream = await _stream()
    await _warm_pool(stream, 4)
    for producer in ("a", "b"):
        await _append(stream, _batch(producer, 0), ProducerClaim(producer, 0, 0))
    for seq in range(1, ROUNDS + 1):
        results = await asyncio.gather(
            *(
                _append(stream, _batch(producer, seq), ProducerClaim(producer, 0, seq))
                for producer in ("a", "a", "b", "b")
            )
        )
        for mine in (results[:2], results[2:]):
            assert sorted(r.duplicate for r in mine) == [False, True]
            assert mine[0].next_index == mine[1].next_index
    saved, chunks = await _stored(stream)
    assert [index for index, *_ in chunks] == list(range(saved.next_index))
    assert saved.byte_size == sum(len(data) for _, data, _ in chunks)
    for producer in ("a", "b"):
        mine = [data for _, data, owner in chunks if owner == producer]
        assert mine == [chunk for seq in range(ROUNDS + 1) for chunk in _batch(producer, seq)]


async def test_appends_racing_the_streams_deletion_leave_no_chunk_behind() -> None:
    """The chunk table has no foreign key to the stream (``Chunk``'s docstring says why): the
    stream row's lock, taken by every append and every deletion, is what keeps a chunk from
    outliving its stream. Appends by both paths (one statement; a new producer, checked) race
    the deletion; each either lands before it and goes with the stream, or finds no stream."""
    for round_ in range(ROUNDS // 5):
        stream = await _stream()
        await _warm_pool(stream, 4)
        appends = [
            _append(stream, _batch("plain", n))
            if n % 2
            else _append(stream, _batch("new", n), ProducerClaim(f"p{n}", 0, 0))
            for n in range(6)
        ]
        deletion = sync_to_async(removal.stream_delete)(stream_id=stream.pk)
        results = await asyncio.gather(deletion, *appends, return_exceptions=True)
        assert results[0] is None, results[0]
        for result in results[1:]:
            assert isinstance(result, (AppendResult, StreamNotFound)), (round_, result)
        left = await sync_to_async(Chunk.objects.filter(stream_id=stream.pk).count)()
        assert left == 0, f"round {round_}: {left} chunks outlived their stream"
