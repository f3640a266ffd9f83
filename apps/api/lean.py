"""The lean path: an ASGI app in front of Django that serves the stream URLs itself.

Stream traffic (Durable Streams ``/ds/v1/stream/…`` and ``/api/v1/runs/<run>/streams/<key>``:
appends, reads, HEAD, SSE, long-poll; and ``/api/v1/runs/<run>/subscribe``) is what a streams
server does all day, and Django's request cycle was most of its cost. Measured in process (the
ASGI app called directly, PostgreSQL, ``DEBUG=0``), before: HEAD 6.0 ms of CPU, one-chunk
append 5.7 ms, catch-up GET of 20 chunks 12.0 ms, a 404 8.5 ms — of which the database work was
under 1 ms each. In process after it (``streambench inprocess``): HEAD 0.8 ms, one-chunk append
1.7 ms (with the async append), a 404 0.5 ms; since, with the one-statement append, the
folded ASGI entry and HEAD and the 404 on the loop: HEAD 0.5–0.6 ms, one-chunk append
0.7–1.3 ms, a 404 0.15–0.2 ms (``apps.streams.pg_append``, ``live_views``). Here a request is
parsed from the ASGI scope, matched against the URLconf's own patterns for these routes, handed
to ``live_views.dispatch`` or ``subscribe_run`` (the same code the Django views run) and sent
back; no ``HttpRequest``, no middleware chain, no URL resolver, no per-request thread context.

What Django's middleware did for these URLs is done here, once each: CORS (preflight and
headers), ``nosniff``, the sandbox CSP, CORP and HSTS (``middleware.api_headers``), the write
rate limit (``ratelimit.awrite_limited``); the body limit (``bodylimit.limited``), request ids,
health checks and response metrics are the ASGI entry's (``streamdash.entry``), which calls
:func:`match` and :func:`serve`, and log redaction is the access-log filter's. Any other path
goes on to Django.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from django.core.handlers.asgi import get_script_prefix
from django.urls import URLPattern

from apps.api import urls
from apps.api.errors import unexpected_error
from apps.api.exchange import Headers, StreamRequest, StreamResponse
from apps.api.input_views import serve_input
from apps.api.live_views import Resolve, dispatch, error_stream_response
from apps.api.middleware import PREFLIGHT_HEADERS, api_headers
from apps.api.ratelimit import awrite_limited, rate_key
from apps.api.subscribe_views import subscribe_run
from apps.api.targets import run_target, standalone_target
from streamdash.core.sendchain import bare, direct_writer

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

Handler = Callable[[StreamRequest], Awaitable[StreamResponse]]


def _stream(resolve: Resolve) -> Handler:
    return lambda request: dispatch(request, resolve)


# The routes served here, by URL name: each turns the URL's parameters into its handler.
_HANDLERS: dict[str, Callable[[dict[str, Any]], Handler]] = {
    "ds-stream": lambda kw: _stream(lambda req: standalone_target(req, kw["name"])),
    "api-run-stream": lambda kw: _stream(lambda req: run_target(req, kw["run_id"], kw["key"])),
    "api-run-input": lambda kw: lambda req: serve_input(req, kw["run_id"], kw["name"]),
    "api-subscribe": lambda kw: lambda req: subscribe_run(req, kw["run_id"]),
}
_ROUTES: list[tuple[URLPattern, Callable[[dict[str, Any]], Handler]]] = [
    (p, _HANDLERS[p.name]) for p in urls.urlpatterns if p.name in _HANDLERS
]


def route_path(scope: Scope) -> str:
    """The path Django's URL resolver will see: ``root_path`` (daphne's ``Daphne-Root-Path``
    header, which any client may send) taken off, exactly as ``ASGIRequest`` does. Dispatching
    on the raw path instead let a client route the API through the site's handler."""
    path: str = scope["path"]
    prefix = get_script_prefix(scope)
    if prefix and path.startswith(prefix):
        path = path.removeprefix(prefix)
    return path if path.startswith("/") else "/" + path


def match(path: str) -> Handler | None:
    """The handler of a stream URL (``path`` from :func:`route_path`), or None for any other."""
    for pattern, handler in _ROUTES:
        matched = pattern.pattern.match(path[1:])
        if matched is not None:
            return handler(matched[2])
    return None


def _request(scope: Scope, body: bytes) -> StreamRequest:
    headers = Headers(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
    )
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    host = headers.get("Host") or "{}:{}".format(*scope.get("server") or ("localhost", 80))
    client = scope.get("client") or ("", 0)
    return StreamRequest(
        method=scope["method"],
        headers=headers,
        query=query,
        body=body,
        url=f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}{scope['path']}",
        client=str(client[0]),
    )


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None when the client went (or the body limit refused it and
    answered already)."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def serve(handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one request on a stream URL (``handler``, from :func:`match`)."""
    secure = scope.get("scheme") == "https"
    if scope["method"] == "OPTIONS":
        await _send(send, StreamResponse(204, dict(PREFLIGHT_HEADERS)), secure, head=False)
        return
    request = _request(scope, b"")
    refusal = await awrite_limited(
        request.method,
        rate_key(
            authorization=request.headers.get("Authorization", "") or "",
            token=request.query_value("token"),
            client=request.client,
        ),
    )
    if refusal is not None:
        await _send(send, error_stream_response(refusal), secure, head=False)
        return
    body = await _read_body(receive)
    if body is None:
        return
    request.body = body
    try:
        response = await handler(request)
    except Exception as exc:
        where = f"{scope['method']} {scope['path']}"
        response = error_stream_response(unexpected_error(where, exc))
    if response.direct is not None:
        response.direct.write = direct_writer(scope)
    await _send(send, response, secure, head=request.method == "HEAD", receive=receive)


def _encode(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def _send(
    send: Send,
    response: StreamResponse,
    secure: bool,
    *,
    head: bool,
    receive: Receive | None = None,
) -> None:
    try:
        await _send_response(send, response, secure, head=head, receive=receive)
    finally:
        for close in response.closers:
            close()


async def _send_response(
    send: Send,
    response: StreamResponse,
    secure: bool,
    *,
    head: bool,
    receive: Receive | None,
) -> None:
    headers = {**response.headers, **api_headers(secure=secure)}
    if response.stream is None:
        if not head and response.status not in (204, 304):
            headers["Content-Length"] = str(len(response.body))
        await send(
            {"type": "http.response.start", "status": response.status, "headers": _encode(headers)}
        )
        body = b"" if head else response.body
        await send({"type": "http.response.body", "body": body})
        return
    await send(
        {"type": "http.response.start", "status": response.status, "headers": _encode(headers)}
    )
    assert receive is not None
    await _send_stream(send, receive, response.stream)


async def _send_stream(send: Send, receive: Receive, parts: Any) -> None:
    """Send a streamed body as it is produced; stop producing as soon as the client goes. The
    response has started: its parts skip the entry's wrappers that are done with it
    (``sendchain.bare``)."""
    send = bare(send)

    async def pump() -> None:
        async for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    pumping = asyncio.ensure_future(pump())
    watching = asyncio.ensure_future(gone())
    try:
        await asyncio.wait({pumping, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watching.cancel()
        if not pumping.done():
            pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        with contextlib.suppress(asyncio.CancelledError):
            await pumping
        with contextlib.suppress(Exception):
            await parts.aclose()
    if pumping.cancelled():
        return  # the client went: nothing more to send
    if pumping.exception() is not None:
        # Too late for an error response: end the body, the client resumes from its offset.
        logger.error("stream response failed", exc_info=pumping.exception())
    await send({"type": "http.response.body", "body": b""})
