"""The stream URL's entry point (every method) and its live reads: SSE, long-poll, NDJSON.

``dispatch`` serves one ``StreamRequest`` (``apps.api.exchange``) for the lean ASGI app and for
the Django views below alike. It is async so that live reads hold no thread: every operation
crosses to the database once, on a bounded pool (``apps.streams.threads``); after that, live
chunks come from the hub.

On the lean path a HEAD and a catch-up GET resolve the caller on the loop (its credential is
cached) and hand the target on; a run id that cannot name a run is a 404 right there, after
the 401 and 403 checks, and on PostgreSQL a HEAD looks its stream up on the loop too
(``services.astream_lookup``): no thread hop for either. ``streambench inprocess --requests
300``, three runs each way in one sitting (2026-12-02 04:54 UTC, load 1.9–2.1, PostgreSQL 15,
``DEBUG=0``): HEAD 0.80, 1.29 and 1.30 ms of CPU before, 0.62, 0.49 and 0.60 after; the 404
1.23, 0.91 and 1.88 ms before, 0.14, 0.20 and 0.15 after.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from apps.api import protocol, sse, stream_views
from apps.api.errors import error_json, error_response
from apps.api.exchange import StreamRequest, StreamResponse, from_django, to_django
from apps.api.ratelimit import live_reads
from apps.api.stream_wait import await_run_stream
from apps.api.targets import Target, run_target, standalone_target
from apps.projects import credentials
from apps.streams import pg_read, services, threads
from apps.streams.export import chunks_export
from apps.streams.live import DirectWrite, check_retained, follow
from apps.streams.models import Stream
from apps.streams.payloads import read_body
from streamdash.core.errors import BadRequest, DomainError, StreamNotFound, TooLarge
from streamdash.core.offsets import NOW

T = TypeVar("T")

_SYNC_HANDLERS: dict[str, Callable[[StreamRequest, Target], StreamResponse]] = {
    "PUT": stream_views.create,
    "POST": stream_views.append,
    "HEAD": stream_views.metadata,
    "DELETE": stream_views.delete,
}

Resolve = Callable[[StreamRequest], Target]


@csrf_exempt
async def standalone_stream(request: HttpRequest, name: str) -> HttpResponseBase:
    return await _serve_django(request, lambda req: standalone_target(req, name))


@csrf_exempt
async def run_stream(request: HttpRequest, run_id: str, key: str) -> HttpResponseBase:
    return await _serve_django(request, lambda req: run_target(req, run_id, key))


async def _serve_django(request: HttpRequest, resolve: Resolve) -> HttpResponseBase:
    try:
        body = request.body
    except RequestDataTooBig:
        limit = settings.STREAMDASH_MAX_REQUEST_BYTES
        return error_response(
            TooLarge(f"The request body is larger than {limit} bytes.", limit=limit)
        )
    return to_django(await dispatch(from_django(request, body), resolve))


def _run_sync(
    handler: Callable[[StreamRequest, Target], StreamResponse],
    request: StreamRequest,
    resolve: Resolve,
) -> StreamResponse:
    return handler(request, resolve(request))


def _prepare_live(
    request: StreamRequest, resolve: Resolve, read_request: protocol.ReadRequest
) -> tuple[Target, Stream | None, int]:
    """The stream and start position of a live read; no stream when it is a run's stream that
    does not exist yet and the read may wait for it (``apps.api.stream_wait``)."""
    target = resolve(request)
    target.require("read")
    try:
        stream = target.stream()
    except StreamNotFound:
        if target.run_id is None or read_request.live is None or read_request.ndjson:
            raise
        return target, None, 0
    services.stream_touch(stream)
    start = read_request.start_index(stream.next_index)
    check_retained(stream.first_index, start)
    return target, stream, start


async def dispatch(request: StreamRequest, resolve: Resolve) -> StreamResponse:
    """Serve one request on a stream URL; domain errors become their JSON responses."""
    try:
        if request.method == "POST" and request.pooled and services.appends_on_loop():
            return await stream_views.aappend(request, await _resolve_on_loop(request, resolve))
        if request.method == "HEAD" and request.pooled:
            resolve = await _resolved_for_reading(request, resolve)
            if services.appends_on_loop():
                return await stream_views.ametadata(request, resolve(request))
        handler = _SYNC_HANDLERS.get(request.method)
        if handler is not None:
            return await _offload(request, _run_sync, handler, request, resolve)
        if request.method != "GET":
            raise BadRequest(f"Method {request.method} is not supported on a stream URL.")
        read_request = protocol.read_params(
            request.query, last_event_id=request.headers.get("Last-Event-ID")
        )
        if read_request.live is None and not read_request.ndjson:
            if request.pooled:
                resolve = await _resolved_for_reading(request, resolve)
                if pg_read.available():
                    response = await stream_views.aread(request, resolve(request), read_request)
                    if response is not None:
                        return response
            return await _offload(
                request,
                _run_sync,
                lambda req, target: stream_views.read(req, target, read_request),
                request,
                resolve,
            )
        # On the pools, not sync_to_async: a thread-sensitive call here would give this
        # request a thread that lives as long as the live response.
        target, stream, start = await threads.run_in(
            "read", _prepare_live, request, resolve, read_request
        )
        if read_request.ndjson:
            assert stream is not None  # an export never waits
            return _ndjson_response(stream, start)
        limit = _connection_limit(target)
        key_id = target.principal.key_id
        kind = "sse" if read_request.live == "sse" else "long_poll"
        release = await live_reads.aacquire(request.reader_key, kind)
        if stream is None:
            try:
                stream, start = await _wait_for_stream(request, resolve, read_request, target)
            except BaseException:
                release()
                raise
        if read_request.live == "sse":
            response = _sse_response(stream, start, read_request, limit, key_id)
            response.closers.append(release)
            return response
        try:
            return await _long_poll(stream, start, read_request, limit, key_id)
        finally:
            release()
    except DomainError as exc:
        return error_stream_response(exc)


async def _wait_for_stream(
    request: StreamRequest, resolve: Resolve, read_request: protocol.ReadRequest, target: Target
) -> tuple[Stream, int]:
    """Wait on the server for a run's stream that does not exist yet (``apps.api.stream_wait``),
    then prepare the read as if it had been there."""
    assert target.run_id is not None
    waits: list[float | None] = [read_request.idle_timeout, _connection_limit(target)]
    if read_request.live == "long-poll":
        waits.append(settings.STREAMDASH_LONG_POLL_TIMEOUT)
    await await_run_stream(
        target.run_id, target.key, wait=_limit(settings.STREAMDASH_STREAM_WAIT_SECONDS, *waits)
    )
    _, stream, start = await threads.run_in("read", _prepare_live, request, resolve, read_request)
    if stream is None:
        # Created and deleted again while this read woke up: what a read of it would say.
        raise StreamNotFound(f"Stream {target.key!r} not found.", stream=target.key)
    if read_request.offset == NOW:
        # "From now" was asked before the stream existed: all of it is new to this reader,
        # the chunks its create carried included.
        start = stream.first_index
    return stream, start


async def _resolve_on_loop(request: StreamRequest, resolve: Resolve) -> Target:
    """The target without a thread when the caller's credential is cached (it usually is);
    otherwise verified on the write pool."""
    try:
        with credentials.cached_only():
            return resolve(request)
    except credentials.Uncached:
        return await threads.run_in("write", resolve, request)


async def _resolved_for_reading(request: StreamRequest, resolve: Resolve) -> Resolve:
    """The caller, resolved on the loop, allowed to read and naming a run that can exist; the
    404 of a run id that cannot name one costs no thread and no query. The target is handed on
    so the read does not resolve it again."""
    target = await _resolve_on_loop(request, resolve)
    target.require("read")
    if target.names_no_run():
        target.not_found()
    return lambda _request: target


def error_stream_response(exc: DomainError) -> StreamResponse:
    response = error_response(exc)
    headers = {name: value for name, value in response.items()}
    return StreamResponse(response.status_code, headers, response.content)


async def _offload(request: StreamRequest, fn: Callable[..., T], *args: Any) -> T:
    """Run sync work for this request: on the shared write pool on a real server, else the
    Django way (the test client, whose test transaction lives on the calling thread)."""
    return await threads.run_in("write" if request.pooled else "caller", fn, *args)


def _connection_limit(target: Target) -> float | None:
    """Seconds a live read may last: a token's remaining life ends the read with it."""
    expires_at = target.principal.expires_at
    if expires_at is None:
        return None
    return max(0.0, expires_at.timestamp() - time.time())


def _limit(default: float, *limits: float | None) -> float:
    return min([default, *[x for x in limits if x is not None]])


async def _long_poll(
    stream: Stream,
    start: int,
    read_request: protocol.ReadRequest,
    token_limit: float | None,
    key_id: int | None,
) -> StreamResponse:
    wait = _limit(settings.STREAMDASH_LONG_POLL_TIMEOUT, read_request.idle_timeout, token_limit)
    cursor = protocol.next_cursor(read_request.cursor)
    position, closed = start, False
    async for batch in follow(
        stream.pk, start, idle_timeout=wait, max_seconds=wait, heartbeat=wait, key_id=key_id
    ):
        if batch is None:
            continue
        position, closed = batch.next_index, batch.closed
        if batch.chunks:
            body = read_body(stream.content_type, [c.data for c in batch.chunks])
            response = StreamResponse(200, {"Content-Type": stream.content_type}, body)
            break
        if closed:
            response = StreamResponse(204)
            break
    else:
        response = StreamResponse(204)
    if not closed:
        response[protocol.CURSOR] = cursor
    response["Cache-Control"] = "no-store"
    protocol.set_position_headers(
        response, start=start, next_index=position, up_to_date=True, closed=closed
    )
    return response


def _sse_response(
    stream: Stream,
    start: int,
    read_request: protocol.ReadRequest,
    token_limit: float | None,
    key_id: int | None,
) -> StreamResponse:
    encoding = sse.data_encoding(stream.content_type)
    max_seconds = _limit(settings.STREAMDASH_SSE_MAX_SECONDS, token_limit)
    cursor = protocol.next_cursor(read_request.cursor)
    # The lean path lets the hub's wake rounds write this reader's frames (apps.streams.live).
    stream_id = stream.pk
    direct = DirectWrite(
        lambda batch: sse.live_frames(stream_id, batch, encoding, cursor), (encoding, cursor)
    )

    async def events() -> AsyncIterator[bytes]:
        try:
            async for batch in follow(
                stream.pk,
                start,
                idle_timeout=read_request.idle_timeout,
                max_seconds=max_seconds,
                key_id=key_id,
                direct=direct,
            ):
                if batch is None:
                    yield sse.HEARTBEAT
                    continue
                yield sse.live_frames(stream.pk, batch, encoding, cursor)
        except DomainError as exc:
            yield f"event: error\ndata:{error_json(exc)}\n\n".encode()

    response = StreamResponse(
        200, {"Content-Type": "text/event-stream"}, stream=events(), direct=direct
    )
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"
    if encoding == "base64":
        response[protocol.SSE_ENCODING] = "base64"
    response[protocol.CONTENT_TYPE] = stream.content_type
    response[protocol.START_INDEX] = str(start)
    return response


def _ndjson_response(stream: Stream, start: int) -> StreamResponse:
    """Every chunk from ``start`` to the tail as it was when the request arrived, in pages."""
    end = stream.next_index
    lines = chunks_export(
        stream_id=stream.pk,
        content_type=stream.content_type,
        start=start,
        end=end,
        fmt="ndjson",
        fork_index=stream.fork_index,
    )
    response = StreamResponse(200, {"Content-Type": "application/x-ndjson"}, stream=lines)
    response["Cache-Control"] = "no-store"
    response[protocol.START_INDEX] = str(start)
    response[protocol.NEXT_INDEX] = str(end)
    return response
