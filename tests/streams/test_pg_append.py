"""Appends on PostgreSQL from async code (``apps.streams.pg_append``): a plain append is one
statement; every stream the rules look at more closely gets the same answer as before. And the
stream lookup a HEAD makes there (``services.astream_lookup``)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone
from psycopg import AsyncConnection

from apps.projects.models import Project
from apps.streams import pg_append
from apps.streams.appending import AppendRequest, AppendResult
from apps.streams.models import Chunk, Stream, StreamDefinition
from apps.streams.producers import ProducerClaim
from apps.streams.services import StreamRef, astream_lookup, stream_lookup
from streamdash.core.errors import (
    ContentTypeMismatch,
    SchemaViolation,
    StreamClosed,
    StreamDeleted,
    StreamFull,
)
from tests.factories import make_project, make_stream

pytestmark = [
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="the async append path is PostgreSQL's",
    ),
    pytest.mark.django_db(transaction=True),
]

JSON = "application/json"


async def _stream(**kwargs: object) -> tuple[Project, Stream]:
    project, _ = await sync_to_async(make_project)()
    stream = await sync_to_async(make_stream)(project, **kwargs)
    return project, stream


async def _append(stream: Stream, chunks: list[bytes], **kwargs: object) -> AppendResult:
    request = AppendRequest(chunks, kwargs.pop("content_type", JSON), **kwargs)  # type: ignore[arg-type]
    where = {"project_id": stream.project_id, "run_id": None, "key": stream.key}
    return await pg_append.append(where=where, request=request)


async def _stored(stream: Stream) -> tuple[Stream, list[tuple[int, bytes]]]:
    def read() -> tuple[Stream, list[tuple[int, bytes]]]:
        rows = Chunk.objects.filter(stream_id=stream.pk).order_by("index")
        return Stream.objects.get(pk=stream.pk), [(c.index, bytes(c.data)) for c in rows]

    return await sync_to_async(read)()


async def test_plain_appends_store_the_chunks_and_move_the_counters() -> None:
    _, stream = await _stream(chunks=[b'{"n":0}'])
    first = await _append(stream, [b'{"n":1}', b'{"n":2}'])
    second = await _append(stream, [b'{"n":3}'])
    assert (first.start_index, first.next_index, first.closed) == (1, 3, False)
    assert (second.start_index, second.next_index) == (3, 4)
    saved, chunks = await _stored(stream)
    assert (saved.next_index, saved.byte_size) == (4, 28)
    assert chunks == [(i, b'{"n":%d}' % i) for i in range(4)]


async def test_a_plain_append_takes_one_statement(monkeypatch: pytest.MonkeyPatch) -> None:
    _, stream = await _stream()

    async def checked(*args: object) -> AppendResult:
        raise AssertionError("a plain append took the checked path")

    monkeypatch.setattr(pg_append, "_append_checked", checked)
    assert (await _append(stream, [b"{}"])).next_index == 1


async def test_plain_appends_at_once_get_one_index_each() -> None:
    _, stream = await _stream()
    results = await asyncio.gather(*(_append(stream, [b'{"n":%d}' % i]) for i in range(20)))
    assert sorted(r.start_index for r in results) == list(range(20))
    saved, chunks = await _stored(stream)
    assert saved.next_index == 20
    assert sorted(data for _, data in chunks) == sorted(b'{"n":%d}' % i for i in range(20))


async def test_a_plain_append_renews_the_idle_timeout() -> None:
    _, stream = await _stream()
    await sync_to_async(Stream.objects.filter(pk=stream.pk).update)(
        ttl_seconds=60, expires_at=timezone.now() + dt.timedelta(seconds=5)
    )
    await _append(stream, [b"{}"])
    saved, _ = await _stored(stream)
    assert saved.expires_at is not None
    assert saved.expires_at > timezone.now() + dt.timedelta(seconds=50)


async def test_the_content_type_spelled_differently_is_the_same_type() -> None:
    _, stream = await _stream()
    result = await _append(stream, [b"{}"], content_type="Application/JSON; charset=utf-8")
    assert result.next_index == 1


async def test_streams_the_rules_refuse_are_refused_as_before(settings: object) -> None:
    _, closed = await _stream()
    await _append(closed, [], close=True)
    with pytest.raises(StreamClosed):
        await _append(closed, [b"{}"])
    _, text = await _stream(content_type="text/plain")
    with pytest.raises(ContentTypeMismatch):
        await _append(text, [b"{}"])
    _, full = await _stream(chunks=[b'{"n":0}'])
    settings.STREAMDASH_MAX_STREAM_BYTES = 10  # type: ignore[attr-defined]
    with pytest.raises(StreamFull):
        await _append(full, [b'{"n":1}'])
    for stream in (closed, text, full):
        saved, chunks = await _stored(stream)
        assert saved.next_index == len(chunks)


async def test_a_stream_with_a_schema_validates_the_chunks() -> None:
    project, stream = await _stream()
    await sync_to_async(StreamDefinition.objects.create)(
        project=project,
        stream_id=stream.key,
        validate=True,
        schema={"type": "object", "required": ["n"]},
    )
    with pytest.raises(SchemaViolation):
        await _append(stream, [b'{"m":1}'])
    assert (await _append(stream, [b'{"n":1}'])).next_index == 1


async def test_a_producer_append_is_deduplicated() -> None:
    _, stream = await _stream()
    claim = ProducerClaim("p1", 0, 0)
    batch = [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    first = await _append(stream, batch, producer=claim)
    again = await _append(stream, batch, producer=claim)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.next_index == first.next_index == 3
    _, chunks = await _stored(stream)
    assert chunks == list(enumerate(batch))


async def test_a_connection_the_server_closed_in_the_pool_is_not_used() -> None:
    _, stream = await _stream()
    await _append(stream, [b"{}"])  # the pool holds a connection now
    pool = await pg_append._pool()
    async with pool.connection() as conn:
        pid = conn.info.backend_pid
    admin = await AsyncConnection.connect(pg_append._conninfo(), autocommit=True)
    async with admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    await asyncio.sleep(0.2)  # the goodbye reaches the pooled connection's socket
    assert (await _append(stream, [b"{}"])).next_index == 2
    _, chunks = await _stored(stream)
    assert [i for i, _ in chunks] == [0, 1]


async def test_the_async_lookup_finds_what_the_sync_one_finds() -> None:
    project, stream = await _stream(chunks=[b"{}"])
    ref = StreamRef(project_id=project.pk, run_id=None, key=stream.key)
    found = await astream_lookup(ref)
    same = await sync_to_async(stream_lookup)(ref)
    assert found is not None
    assert same is not None
    assert [getattr(found, f.attname) for f in Stream._meta.concrete_fields] == [
        getattr(same, f.attname) for f in Stream._meta.concrete_fields
    ]
    assert await astream_lookup(StreamRef(project.pk, None, "no-such-stream")) is None
    await sync_to_async(Stream.objects.filter(pk=stream.pk).update)(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert await astream_lookup(ref) is None  # expired is as good as gone
    _, deleted = await _stream()
    await sync_to_async(Stream.objects.filter(pk=deleted.pk).update)(deleted_at=timezone.now())
    with pytest.raises(StreamDeleted):
        await astream_lookup(StreamRef(deleted.project_id, None, deleted.key))
