"""Telling readers about committed changes, through the Channels layer.

Only the write path calls these, from ``transaction.on_commit``: a notification never names an
index that could still roll back. Messages go to the group ``stream.<id>``; every server
process's hub that has readers for that stream is a member. A lost message costs at most one
tail-check period (the hub re-reads the tail), never a chunk.

An append is told to the hub of the writer's own event loop at once, as well, and carries that
hub's mark (``origin``) so that it skips the copy the layer brings back. Through the layer alone
the local readers waited for the layer's round: with the in-memory layer the notice reached the
hub 1.5–1.75 ms after it was sent, queued behind the append's own response (traced with
perf_counter stamps on the server and the client, one-chunk appends at 20/s, load 5); with
Redis, a round trip to Redis as well. The other processes' hubs hear it through the layer as
before.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import weakref
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.streams import threads
from apps.streams.layer import health

logger = logging.getLogger(__name__)

# Batches up to this size travel inside the notification, so hubs need no database read.
INLINE_BYTES = 64 * 1024
# A chunk as the notice carries it, ``[index, data, created_at seconds, producer]``: a list, as
# msgpack gives it back from Redis, built once (a ``ChunkRecord`` per chunk, then a list of
# each, cost 8 times as much: 135 µs for 100 chunks). The hub makes a ``ChunkRecord`` of it.
InlineChunk = list[object]


def stream_group(stream_id: int) -> str:
    return f"stream.{stream_id}"


def run_group(run_id: str) -> str:
    return f"run.{run_id}"


RUNS_GROUP = "runs"


def inline_chunks(
    start: int, chunks: list[bytes], now: dt.datetime, producer: str
) -> list[InlineChunk] | None:
    if sum(map(len, chunks)) > INLINE_BYTES:
        return None
    stamp = now.timestamp()
    return [[start + i, data, stamp, producer] for i, data in enumerate(chunks)]


_sending: set[asyncio.Task[None]] = set()

Hearer = Callable[[dict[str, Any]], None]
# Each event loop's hub: (its mark, what it does with a message).
_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[str, Hearer]] = (
    weakref.WeakKeyDictionary()
)


def hear_here(mark: str, hearer: Hearer) -> None:
    """Have ``hearer`` (the running loop's hub) told of this loop's appends at once; the
    layer's copies of them carry ``origin == mark``."""
    _hubs[asyncio.get_running_loop()] = (mark, hearer)


def _tell_here(loop: asyncio.AbstractEventLoop | None, message: dict[str, object]) -> None:
    hub = _hubs.get(loop) if loop is not None else None
    if hub is None:
        return
    mark, hearer = hub
    message["origin"] = mark
    if loop is _running_loop():
        try:
            hearer(message)
        except Exception:
            # The append is committed whatever happens here: its answer must not fail.
            logger.exception("telling this process's hub of an append failed")
    else:
        assert loop is not None
        # A pool thread's commit: the hub's loop runs the hearer next.
        loop.call_soon_threadsafe(hearer, dict(message))


def _log_failure(future: concurrent.futures.Future[None] | asyncio.Task[None]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        # The data is committed already; readers find it with the tail re-check.
        health.failed("notification", error)
    else:
        health.ok()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _send(group: str, message: dict[str, object], *, here_first: bool = False) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    here = _running_loop()
    if here_first:
        _tell_here(here or threads.calling_loop(), message)
    if here is not None:
        # On the event loop itself (the async write path): send from here; the
        # acknowledgement does not wait for it. The loop holds tasks weakly: keep a reference.
        task = here.create_task(layer.group_send(group, message))
        _sending.add(task)
        task.add_done_callback(_sending.discard)
        task.add_done_callback(_log_failure)
        return
    loop = threads.calling_loop()
    if loop is not None and loop.is_running():
        # On a pool thread (apps.streams.threads): hand the send to the loop that awaits this
        # call (where the hub listens) and return at once; the acknowledgement does not wait.
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
        future.add_done_callback(_log_failure)
        return
    try:
        # In a sync_to_async thread async_to_sync runs the send on the outer event loop; in a
        # management command or worker, on a short-lived loop, from which only a
        # cross-process (Redis) layer can reach readers.
        async_to_sync(layer.group_send)(group, message)
    except Exception as exc:
        health.failed("notification", exc)
    else:
        health.ok()


def stream_appended(
    *, stream_id: int, start: int, end: int, closed: bool, chunks: list[InlineChunk] | None
) -> None:
    _send(
        stream_group(stream_id),
        {
            "type": "stream.appended",
            "stream": stream_id,
            "start": start,
            "end": end,
            "closed": closed,
            "chunks": chunks,
        },
        here_first=True,
    )


def stream_changed(*, stream_id: int, first_index: int, next_index: int, closed: bool) -> None:
    """The stream's whole tail (as ``StreamTail``): created, or its floor raised by a purge."""
    _send(
        stream_group(stream_id),
        {
            "type": "stream.changed",
            "stream": stream_id,
            "first": first_index,
            "end": next_index,
            "closed": closed,
        },
    )


def stream_deleted(*, stream_id: int) -> None:
    _send(stream_group(stream_id), {"type": "stream.deleted", "stream": stream_id})


def run_changed(*, run_id: str, status: str, parent_id: str = "") -> None:
    """To the run's own subscribers, the runs lists, and its parent's group: a run's page
    shows its children, and a child's its parent (``parent`` tells a child's change apart)."""
    message: dict[str, object] = {
        "type": "run.changed",
        "run": run_id,
        "status": status,
        "parent": parent_id,
    }
    _send(run_group(run_id), message)
    _send(RUNS_GROUP, message)
    if parent_id:
        _send(run_group(parent_id), message)
