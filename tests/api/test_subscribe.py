"""``/subscribe`` in-process: its connections follow the run through the hub, so a run change
costs one load per process, not one per connection (tests/e2e/test_subscribe.py covers the
wire: resumption, every chunk, the end)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from apps.api import subscribe_views
from apps.runs import selectors
from apps.runs.services import run_create, run_update
from apps.streams.hub import get_hub
from apps.streams.services import chunks_purge, streams_delete
from tests.factories import make_project, make_stream

pytestmark = pytest.mark.django_db(transaction=True)

SUBSCRIBERS = 10


def _event(frame: bytes) -> tuple[str, dict[str, object]]:
    head, _, data = frame.partition(b"\ndata:")
    return head.removeprefix(b"event: ").decode(), json.loads(data)


async def _next_events(feeds: list) -> list[tuple[str, dict[str, object]]]:
    frames = await asyncio.wait_for(asyncio.gather(*(anext(f) for f in feeds)), 5)
    return [_event(frame) for frame in frames]


async def test_subscribers_share_one_load_per_run_change(monkeypatch, settings):
    settings.STREAMDASH_TAIL_CHECK_SECONDS = 60  # the count below is exact: no re-check
    project, _ = await sync_to_async(make_project)()
    run = await sync_to_async(run_create)(project=project, task_id="t")
    loads = []
    original = selectors.run_with_streams

    def counting(**kwargs):
        loads.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(selectors, "run_with_streams", counting)
    feeds = [subscribe_views._events(run.id, {}, None, None) for _ in range(SUBSCRIBERS)]
    try:
        events = await _next_events(feeds)
        assert {(kind, data["status"]) for kind, data in events} == {("run", "queued")}
        assert len(loads) == 1
        await sync_to_async(run_update)(project=project, run_id=run.id, status="executing")
        events = await _next_events(feeds)
        assert {(kind, data["status"]) for kind, data in events} == {("run", "executing")}
        await sync_to_async(run_update)(project=project, run_id=run.id, status="completed")
        frames = await asyncio.wait_for(asyncio.gather(*(anext(f) for f in feeds)), 5)
        for frame in frames:
            assert _split([frame]) == [("run", _split([frame])[0][1]), ("end", {"run": run.id})]
            assert _split([frame])[0][1]["status"] == "completed"
        # Before the hub: one load per connection per change, 10 + 10 + 10 here.
        assert len(loads) == 3
    finally:
        for feed in feeds:
            await feed.aclose()
    assert run.id not in get_hub().runs.runs  # the last subscriber released the run's group


# --- a stream that cannot be read on ends the subscription ---------------------------------


def _split(frames: list[bytes]) -> list[tuple[str, dict[str, object]]]:
    """The events of yielded frames (one frame may carry several chunk events, with ids)."""
    blocks = [b for f in frames for b in f.split(b"\n\n") if b.startswith(b"event:")]
    return [_event(b.split(b"\nid:")[0]) for b in blocks]


async def _until(feed, last: str) -> list[tuple[str, dict[str, object]]]:
    """Events up to and including the first of kind ``last``; fails after 5 s."""
    frames: list[bytes] = []

    async def read() -> None:
        while not _split(frames) or _split(frames)[-1][0] != last:
            frames.append(await anext(feed))

    await asyncio.wait_for(read(), 5)
    return _split(frames)


async def _finished_run_with(chunks: int):
    project, _ = await sync_to_async(make_project)()
    run = await sync_to_async(run_create)(project=project, task_id="t")
    stream = await sync_to_async(make_stream)(
        project, "ai", run=run, chunks=[b'{"n":%d}' % i for i in range(chunks)]
    )
    await sync_to_async(run_update)(project=project, run_id=run.id, status="completed")
    return run, stream


async def test_a_stream_purged_under_its_position_ends_with_gone_and_resumes(settings):
    settings.STREAMDASH_TAIL_CHECK_SECONDS = 60  # no re-check to save the day
    run, stream = await _finished_run_with(10)
    await sync_to_async(chunks_purge)(stream_id=stream.pk, batch_size=4)
    feed = subscribe_views._events(run.id, {"ai": 2}, None, None)
    try:
        events = await _until(feed, "error")
        assert [kind for kind, _ in events] == ["run", "error"]
        error = events[-1][1]
        assert (error["code"], error["stream"], error["earliest_index"]) == ("gone", "ai", 4)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(feed), 5)  # ended, not left waiting for the run
    finally:
        await feed.aclose()
    # The client resumes that stream from the earliest index it was given.
    feed = subscribe_views._events(run.id, {"ai": 4}, None, None)
    try:
        events = await _until(feed, "end")
        chunks = [data["index"] for kind, data in events if kind == "chunk"]
        assert chunks == list(range(4, 10))
    finally:
        await feed.aclose()


async def test_a_deleted_stream_ends_the_subscription_with_an_error(settings):
    settings.STREAMDASH_TAIL_CHECK_SECONDS = 60
    project, _ = await sync_to_async(make_project)()
    run = await sync_to_async(run_create)(project=project, task_id="t")
    ai = await sync_to_async(make_stream)(project, "ai", run=run, chunks=[b"1", b"2"])
    await sync_to_async(make_stream)(project, "log", run=run, chunks=[b"3"])
    feed = subscribe_views._events(run.id, {}, None, None)
    try:
        seen: list[tuple[str, dict[str, object]]] = []
        while len([e for e in seen if e[0] == "chunk"]) < 3:
            seen += _split([await asyncio.wait_for(anext(feed), 5)])
        await sync_to_async(streams_delete)(stream_ids=[ai.pk])
        events = await _until(feed, "error")
        assert events[-1][1]["code"] == "stream_not_found"
        assert events[-1][1]["stream"] == "ai"
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(feed), 5)
    finally:
        await feed.aclose()


async def test_the_final_status_comes_after_the_last_chunk_of_every_stream(monkeypatch, settings):
    """A client that sees the run finished has every chunk: here the streams deliver slowly
    (each batch a little late), and the run finishes before they are through."""
    settings.STREAMDASH_TAIL_CHECK_SECONDS = 60
    project, _ = await sync_to_async(make_project)()
    run = await sync_to_async(run_create)(project=project, task_id="t")
    for key in ("ai", "log"):
        await sync_to_async(make_stream)(project, key, run=run, chunks=[b"0"])
    original = subscribe_views.follow

    async def late(*args, **kwargs):
        async for batch in original(*args, **kwargs):
            await asyncio.sleep(0.2)
            yield batch

    monkeypatch.setattr(subscribe_views, "follow", late)
    feed = subscribe_views._events(run.id, {}, None, None)
    try:
        events = _split([await asyncio.wait_for(anext(feed), 5)])
        assert events == [("run", events[0][1])]
        assert events[0][1]["status"] == "queued"
        await sync_to_async(run_update)(project=project, run_id=run.id, status="completed")
        events = await _until(feed, "end")
    finally:
        await feed.aclose()
    kinds = [(kind, data.get("stream")) for kind, data in events]
    assert sorted(k for k in kinds if k[0] == "chunk") == [("chunk", "ai"), ("chunk", "log")]
    assert kinds[-2:] == [("run", None), ("end", None)]
    assert events[-2][1]["status"] == "completed"
