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
from tests.factories import make_project

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
        for status in ("executing", "completed"):
            await sync_to_async(run_update)(project=project, run_id=run.id, status=status)
            events = await _next_events(feeds)
            assert {(kind, data["status"]) for kind, data in events} == {("run", status)}
        # Before the hub: one load per connection per change, 10 + 10 + 10 here.
        assert len(loads) == 3
        assert await _next_events(feeds) == [("end", {"run": run.id})] * SUBSCRIBERS
    finally:
        for feed in feeds:
            await feed.aclose()
    assert run.id not in get_hub().runs.runs  # the last subscriber released the run's group
