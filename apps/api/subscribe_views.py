"""``GET /api/v1/runs/<run>/subscribe``: one SSE connection for a run and all its streams.

Events: ``run`` (the run as JSON, on every change), ``chunk`` (``{stream, index, data}``),
``stream_closed`` and, last, ``end`` once the run is final and every stream delivered. The
``run`` event with a final status comes only after every stream's last chunk, just before
``end``: whoever sees the run finished has all it wrote.
Every chunk event's ``id`` is the positions of all streams so far (``key=next_index,…``), so a
reconnecting ``EventSource`` resumes with Last-Event-ID and gets each chunk exactly once. The
connection ends once the run is final and every stream has been delivered to its close.

If one stream cannot be read on (deleted, or purged by retention under its position), the
connection ends with an ``error`` event in the JSON error shape, naming the ``stream``: for a
purge the ``gone`` error with ``earliest_index``, from which the client may resume that stream.
The event has no id: a reconnect with Last-Event-ID alone gets the error again rather than
skipping the purged chunks silently.

The run is followed through the process's hub like every other live read
(``apps.streams.run_watch``): a run change costs one load of the run and its streams per
process, where it cost one per connection (N loads and N group subscriptions for N
subscribers); a burst of changes may show as one ``run`` event with the latest state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.http import require_GET

from apps.api.errors import error_json
from apps.api.exchange import StreamRequest, StreamResponse, from_django, to_django
from apps.api.live_views import error_stream_response
from apps.api.ratelimit import live_reads
from apps.api.serializers import run_dict
from apps.projects.access import authenticate_credential
from apps.projects.credentials import is_revoked
from apps.runs import selectors, services
from apps.streams import hub, threads
from apps.streams.live import LiveBatch, follow
from apps.streams.run_watch import RunGone, RunSource, RunState
from streamdash.core.content import chunk_object
from streamdash.core.errors import BadRequest, DomainError, MethodNotAllowed, Unauthorized

_POSITION_RE = re.compile(r"[A-Za-z0-9._~:-]{1,200}=[0-9]{1,19}")


def parse_positions(value: str | None) -> dict[str, int]:
    if not value:
        return {}
    positions: dict[str, int] = {}
    for item in value.split(","):
        if not _POSITION_RE.fullmatch(item):
            raise BadRequest(f"Position {item!r} is not key=index.")
        key, _, index = item.partition("=")
        positions[key] = int(index)
    return positions


def format_positions(positions: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(positions.items()))


class StreamInfo(NamedTuple):
    key: str
    pk: int
    content_type: str
    first_index: int


@dataclass(frozen=True)
class RunView:
    """What every subscriber of a run is shown: loaded and serialized once per run change per
    process by the hub (``apps.streams.run_watch``), not once per connection."""

    event: bytes  # the ``run`` event
    final: bool
    streams: tuple[StreamInfo, ...]


def _run_view(run_id: str) -> tuple[selectors.RunStamp, RunView] | None:
    found = selectors.run_with_streams(run_id=run_id)
    if found is None:
        return None
    run, streams = found
    view = RunView(
        event=b"event: run\ndata:" + json.dumps(run_dict(run)).encode() + b"\n\n",
        final=run.is_final,
        streams=tuple(StreamInfo(s.key, s.pk, s.content_type, s.first_index) for s in streams),
    )
    return selectors.run_stamp(run, streams), view


RUN_VIEWS: RunSource[RunView] = RunSource(load=_run_view, stamps=selectors.run_stamps)
_REVOKED = Unauthorized("The API key was revoked.")


@require_GET
async def subscribe(request: HttpRequest, run_id: str) -> HttpResponseBase:
    """The Django view of this URL (the test client); a real server serves it in the lean
    path (``apps.api.lean``), through the same ``subscribe_run``."""
    return to_django(await subscribe_run(from_django(request, b""), run_id))


async def subscribe_run(request: StreamRequest, run_id: str) -> StreamResponse:
    try:
        if request.method != "GET":
            raise MethodNotAllowed("Subscribe with GET.", headers={"Allow": "GET"})
        # The read pool, not sync_to_async: no thread per live connection.
        pool = "read" if request.pooled else "caller"
        principal = await threads.run_in(pool, authenticate_credential, request.credential)
        principal.require("read", run_id=run_id)
        await threads.run_in(pool, services.run_get, project=principal.project, run_id=run_id)
        positions = parse_positions(
            request.headers.get("Last-Event-ID") or request.query_value("positions")
        )
        release = await live_reads.aacquire(request.reader_key, "subscribe")
    except DomainError as exc:
        return error_stream_response(exc)
    # A token's read ends with the token; the client reconnects with a fresh one.
    deadline = principal.expires_at.timestamp() if principal.expires_at is not None else None
    return StreamResponse(
        200,
        {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache, no-store",
            "X-Accel-Buffering": "no",
        },
        stream=_events(run_id, positions, deadline, principal.key_id),
        closers=[release],
    )


async def _events(
    run_id: str, positions: dict[str, int], deadline: float | None, key_id: int | None
) -> AsyncIterator[bytes]:
    # The view checked the run is the project's; run ids are unique, so the hub's state of
    # the run is shared by every subscriber in this process, whatever their project.
    with contextlib.suppress(RunGone):
        async with hub.get_hub().watch_run(run_id, RUN_VIEWS) as watch:
            async for frame in _follow_run(watch, positions, deadline, key_id):
                yield frame


async def _follow_run(
    watch: RunState[RunView], positions: dict[str, int], deadline: float | None, key_id: int | None
) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[tuple[str, str, LiveBatch | DomainError | None]] = asyncio.Queue(
        maxsize=64
    )
    pumps: dict[str, asyncio.Task[None]] = {}

    async def pump_stream(stream: StreamInfo) -> None:
        start = positions.get(stream.key, stream.first_index)
        try:
            async for batch in follow(stream.pk, start, heartbeat=3600, key_id=key_id):
                if batch is not None and (batch.chunks or batch.closed):
                    await queue.put(("chunks", stream.key, batch))
        except DomainError as exc:
            # Not lost with the task: the subscription would wait for this stream until the
            # run went. The client learns which stream and why, and resumes.
            exc.facts.setdefault("stream", stream.key)
            await queue.put(("error", stream.key, exc))
            return
        await queue.put(("done", stream.key, None))

    async def pump_run(version: int) -> None:
        while True:
            await watch.changed(version)
            version = watch.version
            await queue.put(("run", "", None))

    run_id = watch.run_id
    view, shown = watch.snapshot, watch.version
    run_task = asyncio.create_task(pump_run(shown))
    content_types: dict[str, str] = {}
    heartbeat = settings.STREAMDASH_HEARTBEAT_SECONDS
    quiet_since = time.monotonic()
    try:
        finished: set[str] = set()
        while view is not None:
            for stream in view.streams:
                if stream.key not in pumps:
                    content_types[stream.key] = stream.content_type
                    pumps[stream.key] = asyncio.create_task(pump_stream(stream))
            # A final status waits for every stream's last chunk: a client that sees
            # "completed" has everything the run wrote, whichever stream was written last.
            held = view.event if view.final else None
            if held is None:
                yield view.event
            while True:
                if view.final and finished >= set(pumps):
                    # An explicit end: a clean finish never looks like a dropped connection.
                    yield (
                        (held or b"")
                        + b"event: end\ndata:"
                        + json.dumps({"run": run_id}).encode()
                        + b"\n\n"
                    )
                    return
                if is_revoked(key_id):
                    yield b"event: error\ndata:" + error_json(_REVOKED).encode() + b"\n\n"
                    return
                wait = settings.STREAMDASH_HEARTBEAT_SECONDS
                if key_id is not None:
                    # The hub marks a revoked key within a second (apps.projects.credentials).
                    wait = min(wait, 1.0)
                if deadline is not None:
                    wait = min(wait, deadline - time.time())
                    if wait <= 0:
                        return
                try:
                    kind, key, batch = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    if key_id is None or time.monotonic() - quiet_since >= heartbeat:
                        quiet_since = time.monotonic()
                        yield b": keep-alive\n\n"
                    continue
                quiet_since = time.monotonic()
                if kind == "run":
                    if watch.version == shown:
                        continue
                    # The hub's latest snapshot: changes that came in a burst show once.
                    view, shown = watch.snapshot, watch.version
                    break
                if kind == "done":
                    finished.add(key)
                    continue
                if kind == "error":
                    assert isinstance(batch, DomainError)
                    error = b"event: error\ndata:" + error_json(batch).encode() + b"\n\n"
                    yield (held or b"") + error
                    return
                assert isinstance(batch, LiveBatch)
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
