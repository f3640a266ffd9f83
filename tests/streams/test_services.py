"""The streams write path: retention's purge of old chunks (``chunks_purge``)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction

from apps.projects.models import Project
from apps.streams.models import Chunk, Stream
from apps.streams.notify import stream_group
from apps.streams.services import PurgedChunks, chunks_purge
from tests.factories import make_project, make_stream

CHUNKS = [b'{"n":%d}' % i for i in range(10)]  # 7 bytes each


def _floor(stream: Stream) -> tuple[int, int, int, list[int]]:
    stream.refresh_from_db()
    indices = list(Chunk.objects.filter(stream=stream).values_list("index", flat=True))
    return stream.first_index, stream.next_index, stream.byte_size, sorted(indices)


def test_chunks_purge_deletes_one_bounded_batch_and_raises_the_floor(project: Project) -> None:
    stream = make_stream(project, chunks=CHUNKS)
    assert chunks_purge(stream_id=stream.pk, batch_size=4) == PurgedChunks(4, 28, False)
    assert _floor(stream) == (4, 10, 42, list(range(4, 10)))
    assert chunks_purge(stream_id=stream.pk, batch_size=4) == PurgedChunks(4, 28, False)
    assert chunks_purge(stream_id=stream.pk, batch_size=4) == PurgedChunks(2, 14, True)
    assert _floor(stream) == (10, 10, 0, [])
    assert chunks_purge(stream_id=stream.pk, batch_size=4) == PurgedChunks(0, 0, True)


def test_chunks_purge_stops_at_before_index(project: Project) -> None:
    stream = make_stream(project, chunks=CHUNKS)
    assert chunks_purge(stream_id=stream.pk, batch_size=100, before_index=3) == PurgedChunks(
        3, 21, True
    )
    assert _floor(stream) == (3, 10, 49, list(range(3, 10)))
    # A point at or below the floor, or past the tail, deletes nothing more than there is.
    assert chunks_purge(stream_id=stream.pk, batch_size=100, before_index=2).chunks == 0
    assert chunks_purge(stream_id=stream.pk, batch_size=100, before_index=99).chunks == 7


def test_chunks_purge_of_a_missing_stream_is_done(db: None) -> None:
    assert chunks_purge(stream_id=987654, batch_size=10) == PurgedChunks(0, 0, True)


@pytest.mark.django_db(transaction=True)
async def test_chunks_purge_tells_readers_the_new_floor_after_the_commit() -> None:
    project, _ = await sync_to_async(make_project)()
    stream = await sync_to_async(make_stream)(project, chunks=CHUNKS)
    layer = get_channel_layer()
    channel = await layer.new_channel("test.")
    await layer.group_add(stream_group(stream.pk), channel)

    def rolled_back() -> None:
        with transaction.atomic():
            chunks_purge(stream_id=stream.pk, batch_size=4)
            transaction.set_rollback(True)

    await sync_to_async(rolled_back)()
    await sync_to_async(chunks_purge)(stream_id=stream.pk, batch_size=6)
    # The first message is the committed purge's: the rolled-back one never left.
    message = await layer.receive(channel)
    assert message == {
        "type": "stream.changed",
        "stream": stream.pk,
        "first": 6,
        "end": 10,
        "closed": False,
    }
