"""The hub in-process: one database read per batch per process (none for small batches), and
a lost notification costs a tail-check period, never a chunk."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest
from asgiref.sync import sync_to_async

from apps.streams import notify, selectors
from apps.streams.live import follow
from apps.streams.services import chunks_append
from tests.factories import make_project, make_stream

pytestmark = pytest.mark.django_db(transaction=True)


async def _collect(stream_id: int, start: int, want: int) -> list[int]:
    seen: list[int] = []
    async for batch in follow(stream_id, start, idle_timeout=10):
        if batch is not None:
            seen.extend(c.index for c in batch.chunks)
            if len(seen) >= want:
                break
    return seen


async def _stream_with(chunks: list[bytes]) -> int:
    project, _ = await sync_to_async(make_project)()
    stream = await sync_to_async(make_stream)(project, chunks=chunks or None)
    return stream.pk


async def _append(stream_id: int, chunks: list[bytes]) -> None:
    await sync_to_async(chunks_append)(stream_id=stream_id, chunks=chunks)


@pytest.mark.parametrize(("size", "reads"), [(10, 0), (70_000, 1)])
async def test_readers_share_one_read_per_batch(monkeypatch, size, reads):
    stream_id = await _stream_with([])
    calls = []
    original = selectors.chunks_from_index

    def counting(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(selectors, "chunks_from_index", counting)
    readers = [asyncio.create_task(_collect(stream_id, 0, 2)) for _ in range(20)]
    await asyncio.sleep(0.3)
    payload = b'"' + b"x" * size + b'"'
    await _append(stream_id, [payload, payload])
    results = await asyncio.wait_for(asyncio.gather(*readers), 10)
    assert results == [[0, 1]] * 20
    # Small batches travel inside the notification; a large one is read once for all readers.
    assert len(calls) == reads


async def test_lost_notification_is_recovered_by_the_tail_check(monkeypatch, settings):
    settings.STREAMDASH_TAIL_CHECK_SECONDS = 0.3
    stream_id = await _stream_with([b"0"])
    reader = asyncio.create_task(_collect(stream_id, 0, 3))
    await asyncio.sleep(0.3)
    monkeypatch.setattr(notify, "_send", lambda *args, **kwargs: None)  # every message lost
    await _append(stream_id, [b"1", b"2"])
    assert await asyncio.wait_for(reader, 5) == [0, 1, 2]


async def test_reader_far_behind_the_ring_catches_up_in_order(settings):
    settings.STREAMDASH_HUB_RING_CHUNKS = 8
    settings.STREAMDASH_READ_PAGE_CHUNKS = 5
    stream_id = await _stream_with([str(i).encode() for i in range(30)])
    early = asyncio.create_task(_collect(stream_id, 3, 37))
    await asyncio.sleep(0.2)
    await _append(stream_id, [str(i).encode() for i in range(30, 40)])
    assert await asyncio.wait_for(early, 10) == list(range(3, 40))


async def test_ring_is_bounded_in_bytes_and_readers_still_get_everything(settings):
    from apps.streams.hub import get_hub

    settings.STREAMDASH_HUB_RING_BYTES = 250_000
    stream_id = await _stream_with([])
    reader = asyncio.create_task(_collect(stream_id, 0, 12))
    holder = asyncio.create_task(_collect(stream_id, 0, 1_000))  # keeps the subscription
    await asyncio.sleep(0.3)
    big = [b'"' + bytes([65 + i]) * 99_998 + b'"' for i in range(12)]  # 12 x 100 kB
    for start in range(0, 12, 4):
        await _append(stream_id, big[start : start + 4])
    assert await asyncio.wait_for(reader, 10) == list(range(12))
    ring = get_hub().states[stream_id].ring
    assert sum(len(r.data) for r in ring) <= 250_000
    assert ring[-1].index == 11
    holder.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await holder


async def test_a_key_revoked_while_its_reader_reads_from_the_database_gets_no_chunk(
    monkeypatch, settings
):
    """A reader far behind the ring reads a page from the database; a revocation that lands
    while that read is under way ends the reader before the page goes out."""
    from apps.projects import services as projects
    from apps.projects.models import ApiKey
    from streamdash.core.errors import Unauthorized

    settings.STREAMDASH_HUB_RING_CHUNKS = 4
    project, _ = await sync_to_async(make_project)()
    stream = await sync_to_async(make_stream)(project, chunks=[str(i).encode() for i in range(20)])
    key = await ApiKey.objects.aget(project=project)
    original = selectors.achunks_from_index

    async def revoked_meanwhile(**kwargs):
        await sync_to_async(projects.api_key_revoke)(key=key)
        return await original(**kwargs)

    monkeypatch.setattr(selectors, "achunks_from_index", revoked_meanwhile)
    got = []

    async def read() -> None:
        async for batch in follow(stream.pk, 0, idle_timeout=5, key_id=key.pk):
            if batch is not None:
                got.extend(batch.chunks)

    with pytest.raises(Unauthorized):
        await read()
    assert got == []


async def _until_watched(stream_id: int) -> None:
    from apps.streams.hub import get_hub

    for _ in range(500):
        if stream_id in get_hub().states:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"stream {stream_id} never watched")


async def test_a_reader_that_starts_while_the_tail_check_reads_is_not_told_of_a_deletion(
    monkeypatch, settings
):
    """The tail re-check reads the tails of the streams watched when it began; a stream whose
    first reader came meanwhile is not among them, and is not deleted for that."""
    from streamdash.core.errors import StreamNotFound

    settings.STREAMDASH_TAIL_CHECK_SECONDS = 0.05
    first = await _stream_with([b"0"])
    second = await _stream_with([b"0"])
    holder = asyncio.create_task(_collect(first, 1, 1))
    await _until_watched(first)
    reading, go_on = threading.Event(), threading.Event()
    original = selectors.stream_tails

    def held_tail_check(stream_ids):
        tails = original(stream_ids)
        if list(stream_ids) == [first]:  # the re-check: only the first stream was watched
            reading.set()
            go_on.wait(5)
        return tails

    monkeypatch.setattr(selectors, "stream_tails", held_tail_check)
    assert await asyncio.to_thread(reading.wait, 5)
    reader = asyncio.create_task(_collect(second, 1, 1))
    await _until_watched(second)
    go_on.set()
    await asyncio.sleep(0.2)  # the re-check ends, and the next ones run
    await _append(second, [b"1"])
    try:
        assert await asyncio.wait_for(reader, 5) == [1]
    except StreamNotFound:
        pytest.fail("a live stream's reader was told it was deleted")
    finally:
        holder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holder


async def test_a_close_committed_while_the_first_reader_reads_the_tail_reaches_it(
    monkeypatch, settings
):
    """The first reader of a stream joins its group, then reads its tail: a close committed
    after that read, whose notice comes before the reader's state exists, still ends the read
    at once (not at the tail re-check, set to a minute here)."""
    from apps.streams.services import stream_close

    settings.STREAMDASH_TAIL_CHECK_SECONDS = 60
    stream_id = await _stream_with([b"0"])
    original = selectors.stream_tails

    def closed_after_the_read(stream_ids):
        tails = original(stream_ids)
        if list(stream_ids) == [stream_id]:
            stream_close(stream_id=stream_id)
            time.sleep(0.3)  # the notice is heard while this read is still under way
        return tails

    monkeypatch.setattr(selectors, "stream_tails", closed_after_the_read)

    async def read() -> list[int]:
        seen: list[int] = []
        async for batch in follow(stream_id, 0, heartbeat=60):
            if batch is not None:
                seen.extend(record.index for record in batch.chunks)
                if batch.closed:
                    return seen
        return seen

    assert await asyncio.wait_for(read(), 10) == [0]
