"""``GET /api/v1/runs/<run>/subscribe``: one SSE connection for a run and all its streams.

Events: ``run`` (the run as JSON, on every change), ``chunk`` (``{stream, index, data}``),
``stream_closed`` and, last, ``end`` once the run is final and every stream delivered.
Every chunk event's ``id`` is the positions of all streams so far (``key=next_index,…``), so a
reconnecting ``EventSource`` resumes with Last-Event-ID and gets each chunk exactly once. The
connection ends once the run is final and every stream has been delivered to its close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator

from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.http import require_GET

from apps.api.errors import async_api_errors
from apps.api.serializers import run_dict
from apps.projects.access import authenticate
from apps.runs import selectors, services
from apps.runs.models import Run
from apps.streams import hub
from apps.streams.live import LiveBatch, follow
from apps.streams.models import Stream
from apps.streams.notify import run_group
from streamdash.core.content import chunk_object
from streamdash.core.errors import BadRequest

_POSITION_RE = re.compile(r"^[A-Za-z0-9._~:-]{1,200}=\d{1,19}$")


def parse_positions(value: str | None) -> dict[str, int]:
    if not value:
        return {}
    positions: dict[str, int] = {}
    for item in value.split(","):
        if not _POSITION_RE.match(item):
            raise BadRequest(f"Position {item!r} is not key=index.")
        key, _, index = item.partition("=")
        positions[key] = int(index)
    return positions


def format_positions(positions: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(positions.items()))


def _load(project_id: int, run_id: str) -> tuple[Run, list[Stream]]:
    run = Run.objects.get(project_id=project_id, pk=run_id)
    return run, selectors.run_streams(run=run)


@require_GET
@async_api_errors
async def subscribe(request: HttpRequest, run_id: str) -> HttpResponseBase:
    # hub.db, not sync_to_async: see live_views._dispatch (no thread per live connection).
    principal = await hub.db(authenticate, request)
    principal.require("read", run_id=run_id)
    await hub.db(services.run_get, project=principal.project, run_id=run_id)
    positions = parse_positions(
        request.headers.get("Last-Event-ID") or request.GET.get("positions")
    )
    # A token's read ends with the token; the client reconnects with a fresh one.
    deadline = principal.expires_at.timestamp() if principal.expires_at is not None else None
    response = StreamingHttpResponse(
        _events(principal.project.pk, run_id, positions, deadline),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"
    return response


async def _events(
    project_id: int, run_id: str, positions: dict[str, int], deadline: float | None
) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[tuple[str, str, LiveBatch | None]] = asyncio.Queue(maxsize=64)
    pumps: dict[str, asyncio.Task[None]] = {}
    layer = get_channel_layer()
    assert layer is not None  # settings.CHANNEL_LAYERS always names a default layer
    # The configured layers (in-memory, Redis pub/sub) take a prefix; the stubs type
    # only channels' base class, whose new_channel takes none.
    channel = await layer.new_channel("sub.")  # type: ignore[call-arg]
    await layer.group_add(run_group(run_id), channel)

    async def pump_stream(stream: Stream) -> None:
        start = positions.get(stream.key, stream.first_index)
        async for batch in follow(stream.pk, start, heartbeat=3600):
            if batch is not None and (batch.chunks or batch.closed):
                await queue.put(("chunks", stream.key, batch))
        await queue.put(("done", stream.key, None))

    async def pump_run() -> None:
        while True:
            await layer.receive(channel)
            await queue.put(("run", "", None))

    run_task = asyncio.create_task(pump_run())
    content_types: dict[str, str] = {}
    try:
        run, streams = await hub.db(_load, project_id, run_id)
        finished: set[str] = set()
        while True:
            for stream in streams:
                if stream.key not in pumps:
                    content_types[stream.key] = stream.content_type
                    pumps[stream.key] = asyncio.create_task(pump_stream(stream))
            yield b"event: run\ndata:" + json.dumps(run_dict(run)).encode() + b"\n\n"
            while True:
                if run.is_final and finished >= set(pumps):
                    # An explicit end: a clean finish never looks like a dropped connection.
                    yield b"event: end\ndata:" + json.dumps({"run": run_id}).encode() + b"\n\n"
                    return
                wait = settings.STREAMDASH_HEARTBEAT_SECONDS
                if deadline is not None:
                    wait = min(wait, deadline - time.time())
                    if wait <= 0:
                        return
                try:
                    kind, key, batch = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if kind == "run":
                    run, streams = await hub.db(_load, project_id, run_id)
                    break
                if kind == "done":
                    finished.add(key)
                    continue
                assert batch is not None
                frames = []
                for record in batch.chunks:
                    positions[key] = record.index + 1
                    data = chunk_object(
                        {"stream": key, "index": record.index, "ts": record.created_at},
                        record.data,
                        content_types[key],
                    )
                    frames.append(
                        b"event: chunk\ndata:"
                        + data
                        + b"\nid:"
                        + format_positions(positions).encode()
                        + b"\n\n"
                    )
                if batch.closed:
                    frames.append(
                        b"event: stream_closed\ndata:"
                        + json.dumps({"stream": key}).encode()
                        + b"\n\n"
                    )
                yield b"".join(frames)
    finally:
        run_task.cancel()
        for task in pumps.values():
            task.cancel()
        with contextlib.suppress(Exception):
            await layer.group_discard(run_group(run_id), channel)
