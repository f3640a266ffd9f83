"""A channel layer that is away degrades live reads to the tail re-check's pace, never breaks
them, and says so once when it goes and once when it is back (not once per append)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer

from apps.streams import hub as hub_module
from apps.streams import notify
from apps.streams.appending import AppendRequest
from apps.streams.layer import health
from apps.streams.live import follow
from apps.streams.services import StreamRef, achunks_append, chunks_append
from tests.factories import make_project, make_stream

pytestmark = pytest.mark.django_db(transaction=True)


class FlakyLayer(InMemoryChannelLayer):
    """The in-memory layer, with an outage switch: while ``down`` every call that would
    reach Redis fails as a refused connection would."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionRefusedError("layer is down")

    async def new_channel(self, prefix: str = "specific.") -> str:
        self._check()
        return await super().new_channel(prefix)

    async def group_add(self, group: str, channel: str) -> None:
        self._check()
        await super().group_add(group, channel)

    async def group_send(self, group: str, message: dict) -> None:
        self._check()
        await super().group_send(group, message)


@pytest.fixture
def flaky(monkeypatch, settings) -> FlakyLayer:
    settings.STREAMDASH_TAIL_CHECK_SECONDS = 0.3
    layer = FlakyLayer()
    monkeypatch.setattr(hub_module, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(notify, "get_channel_layer", lambda: layer)
    health.down_since = None
    yield layer
    health.down_since = None


async def _read(stream_id: int, seen: list[int], want: int) -> None:
    """Follow the stream from 0 into ``seen`` until it holds ``want`` indices."""
    async for batch in follow(stream_id, 0, idle_timeout=15):
        if batch is not None:
            seen.extend(c.index for c in batch.chunks)
            if len(seen) >= want:
                return


async def test_live_reads_go_on_through_a_layer_outage(flaky: FlakyLayer, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="streamdash.layer")
    project, _ = await sync_to_async(make_project)()
    stream = await sync_to_async(make_stream)(project)
    flaky.down = True
    seen: list[int] = []
    reader = asyncio.create_task(_read(stream.pk, seen, 6))
    await asyncio.sleep(0.2)
    for n in range(3):  # appends while the layer is away: each notification fails
        await sync_to_async(chunks_append)(stream_id=stream.pk, chunks=[b"%d" % n])
    for _ in range(50):
        if len(seen) >= 3:
            break
        await asyncio.sleep(0.1)
    assert seen == [0, 1, 2]  # found by the tail re-check
    flaky.down = False
    await asyncio.sleep(1)  # the hub rejoins on its next re-check
    for n in range(3, 6):
        await sync_to_async(chunks_append)(stream_id=stream.pk, chunks=[b"%d" % n])
    await asyncio.wait_for(reader, 10)
    assert seen == [0, 1, 2, 3, 4, 5]
    messages = [r.getMessage() for r in caplog.records if r.name == "streamdash.layer"]
    assert len([m for m in messages if m.startswith("channel layer unavailable")]) == 1, messages
    assert len([m for m in messages if m.startswith("channel layer is back")]) == 1, messages
    assert hub_module.get_hub()._layer_ok


async def test_an_append_of_this_process_reaches_its_readers_at_once_with_the_layer_away(
    flaky: FlakyLayer, settings
) -> None:
    """The server's own append path (on the loop with PostgreSQL, the write pool otherwise)
    tells this process's hub directly: its readers do not wait for the layer, nor for the
    tail re-check while the layer is away."""
    settings.STREAMDASH_TAIL_CHECK_SECONDS = 60
    project, _ = await sync_to_async(make_project)()
    stream = await sync_to_async(make_stream)(project)
    ref = StreamRef(project_id=project.pk, run_id=None, key=stream.key)
    seen: list[int] = []
    reader = asyncio.create_task(_read(stream.pk, seen, 4))
    await asyncio.sleep(0.2)
    await achunks_append(ref=ref, request=AppendRequest([b"0", b"1"]))
    flaky.down = True
    await achunks_append(ref=ref, request=AppendRequest([b"2", b"3"]))
    await asyncio.wait_for(reader, 10)
    assert seen == [0, 1, 2, 3]  # each once: the layer's copy of the first append is skipped
    flaky.down = False
