"""Daphne with flow control on streamed HTTP responses: a reader that stops reading is paused,
then cut off, instead of making the server hold the stream in memory.

Daphne hands every ``http.response.body`` straight to Twisted's transport and returns, so an
application's ``await send(...)`` never waits: a client that reads slowly or not at all makes
the server buffer everything it is sent (measured: 3 idle SSE readers of a 40 MiB stream added
242 MiB of RSS, held after they went). Here a streamed response registers a push producer with
its Twisted request; Twisted pauses it when the connection's send buffer is full and resumes it
when the buffer drains, and ``send`` waits while it is paused. So each connection holds at most
Twisted's buffer (64 KiB) plus the one message being sent. A connection paused for longer than
``STREAMDASH_SEND_STALL_SECONDS`` is closed: the client resumes from the last offset it got.

WebSocket messages get the same treatment (the token reader route and the dashboard's sockets
alike): the valve is registered with the connection's TCP transport on the first message, and
a ``websocket.send`` waits while Twisted has paused it; a socket paused for longer than the
stall limit is aborted. Daphne tells the application ``websocket.disconnect`` as for any drop.

A streamed body part goes straight to the socket when Twisted holds nothing for it
(``_write_body``): daphne's path made every part an epoll registration and a later
``doWrite``, most of what a live SSE reader cost per append. The same write is offered to the
application as the scope extension ``streamdash.write_body`` (``sendchain.direct_writer``): a
synchronous write of more body bytes that refuses (False, nothing written) unless the response
is streaming, its valve is open and nothing is buffered, so whoever falls back to ``send``
gets the flow control above. The hub's wake rounds write live SSE frames with it.

Run it like daphne (same arguments): ``python -m streamdash.core.flowserver …``;
``streamdash.core.serving.daphne_command`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import Callable
from functools import partial
from typing import Any

from daphne.cli import CommandLineInterface
from daphne.http_protocol import WebRequest
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings
from twisted.internet import reactor
from twisted.internet.tcp import Server as _TCP_SERVER

from streamdash.core import metrics
from streamdash.core.sendchain import WRITE_BODY

logger = logging.getLogger(__name__)


def _stall_seconds() -> float:
    # Read here rather than from Django's settings: this module runs before Django is set up.
    return float(os.environ.get("STREAMDASH_SEND_STALL_SECONDS", "30"))


class _Valve:
    """A Twisted push producer whose state an asyncio task can wait on."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()

    def pauseProducing(self) -> None:
        self.open.clear()

    def resumeProducing(self) -> None:
        self.open.set()

    def stopProducing(self) -> None:
        self.open.set()


def buffered(transport: Any) -> int:
    """Bytes a Twisted TCP transport holds for its peer (written, not yet sent)."""
    if transport is None:
        return 0
    held = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return held + int(getattr(transport, "_tempDataLen", 0))


async def _wait_or_abort(
    valve: _Valve, what: str, transport: Any, abort: Callable[[], None]
) -> None:
    """Wait while the valve is shut; past the stall limit, drop the connection."""
    if valve.open.is_set():
        return
    try:
        await asyncio.wait_for(valve.open.wait(), _stall_seconds())
    except TimeoutError:
        logger.info(
            "closing a %s whose reader stopped reading (%d bytes unsent)",
            what,
            buffered(transport),
        )
        metrics.stall_disconnect()
        abort()


def _abort_response(request: Any) -> None:
    request.unregisterProducer()
    transport = request.channel.transport if request.channel else None
    if transport is not None:
        transport.abortConnection()


def _abort_socket(transport: Any) -> None:
    transport.unregisterProducer()
    transport.abortConnection()


def _write_body(request: Any, body: bytes) -> bool:
    """Write one more part of a chunked response body straight to its socket; False (nothing
    done) when that is not a plain case: daphne's own path then handles the message.

    Daphne's path for each part (``handle_reply`` → ``Request.write`` → ``writeSequence`` →
    ``startWriting``, an epoll registration, then ``doWrite`` on the next turn of the loop and
    an epoll unregistration) was most of the 0.25 ms of server CPU that a live SSE reader cost
    per append (py-spy, ``streambench fanout --readers 200``). With nothing buffered, one
    ``send`` of the chunk-framed bytes does it; whatever the socket does not take goes to the
    transport, whose buffer pauses the valve as before.
    """
    transport: Any = request.channel.transport if request.channel is not None else None
    sock = getattr(transport, "socket", None)
    if (
        sock is None
        or request.finished
        or request._disconnected
        or not request.startedWriting
        or not request.chunked
        or not transport.connected
        or transport.disconnecting
        or buffered(transport)
        or type(transport) is not _TCP_SERVER  # TLS and other wrappers keep their own path
    ):
        return False
    request.sentLength += len(body)
    if not body:
        return True
    framed = _chunk_framed(body)
    try:
        sent = sock.send(framed)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        sent = 0  # Twisted's own write meets the error and tells daphne the peer went
    if sent < len(framed):
        transport.write(framed[sent:])  # type: ignore[no-untyped-call]  # Twisted is untyped
    return True


_last_framed: tuple[bytes, bytes] = (b"", b"")
_FRAMED_KEPT_BYTES = 64 * 1024  # a live frame, not a catch-up page of a megabyte


def _chunk_framed(body: bytes) -> bytes:
    """``body`` as one part of a chunked HTTP body. A wake round writes the same frame object
    to every reader at the same position: the last small one framed is kept (with 1,000
    readers, a copy of the frame per reader was 2% of the round)."""
    global _last_framed
    last_body, framed = _last_framed
    if body is not last_body:
        framed = b"%x\r\n%b\r\n" % (len(body), body)
        if len(body) <= _FRAMED_KEPT_BYTES:
            _last_framed = (body, framed)
    return framed


def _write_now(request: Any, body: bytes) -> bool:
    """``streamdash.write_body``: ``body`` as the next part of a streamed response, written now,
    or False (nothing done) unless a part went through ``handle_reply`` already, the valve is
    open and nothing is buffered."""
    valve: _Valve | None = getattr(request, "_streamdash_valve", None)
    return valve is not None and valve.open.is_set() and _write_body(request, body)


class _BoundedRequest(WebRequest):  # type: ignore[misc]  # daphne is untyped
    """A request that keeps at most one byte more of its body than any route accepts.

    Twisted receives the whole body before daphne hands the request to the application, into
    memory or, past 100 KB, a temporary file, however large it is: a client could fill the
    server's disk with one chunked upload, though the application then refused it (413,
    ``apps.api.bodylimit``). Here the bytes past ``STREAMDASH_MAX_REQUEST_BYTES`` + 1 are read
    and dropped. The application still sees more than its limit, so its answer (the JSON 413)
    is the one it gave before, and a Content-Length over the limit is refused from the header
    as before (tests/e2e/test_form_bodies.py)."""

    _room = 0

    def gotLength(self, length: int | None) -> None:
        super().gotLength(length)
        self._room = int(settings.STREAMDASH_MAX_REQUEST_BYTES) + 1

    def handleContentChunk(self, data: bytes) -> None:
        if len(data) > self._room:
            data = data[: self._room]
        self._room -= len(data)
        if data:
            super().handleContentChunk(data)


def _discard(request: Any) -> None:
    return None


class FlowControlledServer(Server):  # type: ignore[misc]  # daphne is untyped
    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        # ``manage.py serve`` probes each worker every few seconds over the worker's private
        # Unix socket (no client address): those requests are not the access log's business.
        if details.get("client") is None and details.get("path") in ("/healthz", "/readyz"):
            return
        super().log_action(protocol, action, details)

    def run(self) -> None:
        # Everything loaded so far (Django, the apps, the URL and template machinery) lives as
        # long as the process: out of the collector's sight, a full collection no longer walks
        # it. Measured with the application imported (DEBUG=0, 116,886 objects, load 4): a
        # full collection 99.7 ms before, 0.002 ms after; each such pause held every live
        # reader and writer of the process.
        gc.collect()
        gc.freeze()
        if self.verbosity <= 1:
            reactor.callWhenRunning(self._drop_twisted_access_lines)
        super().run()

    def protocol_connected(self, protocol: Any) -> None:
        if isinstance(protocol, WebRequest):
            # Twisted parses a POST's form body into ``request.args``, which daphne never reads
            # (the application gets the raw body): on the event loop, before the application
            # sees the request. That cost every POST 0.16 ms for the Content-Type alone (5% of
            # an append's GIL time, py-spy), a 1.1 MB body of 20,000 multipart fields held the
            # loop 1.2 s, and a multipart body it could not parse got Twisted's bare 400
            # (tests/e2e/test_form_bodies.py).
            protocol._parsePOSTFormSubmission = False
            if type(protocol) is WebRequest:
                # Daphne's factory makes every request a ``WebRequest``; it is made now, before
                # any byte of its body is read.
                protocol.__class__ = _BoundedRequest
        super().protocol_connected(protocol)

    def _drop_twisted_access_lines(self) -> None:
        # Twisted's HTTP factory formats a combined-log line for every request (date, peer,
        # the request line unredacted, referrer, user agent) and hands it to Twisted's log,
        # which daphne sends nowhere at verbosity 0 and 1: the access log that is kept is
        # daphne's (``log_action``). 2.3% of the server's samples (py-spy --gil) during
        # ``streambench append``, a sixth of what finishing a response cost. Above verbosity 1
        # daphne forwards Twisted's log to ``logging``, and the line is left alone.
        self.http_factory.log = _discard

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        if isinstance(protocol, WebRequest):
            extensions = {**scope.get("extensions", {}), WRITE_BODY: partial(_write_now, protocol)}
            scope["extensions"] = extensions
        return super().create_application(protocol, scope)

    async def handle_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        if isinstance(protocol, WebSocketProtocol):
            await self._websocket_reply(protocol, message)
            return
        if not isinstance(protocol, WebRequest) or message["type"] != "http.response.body":
            await super().handle_reply(protocol, message)
            return
        more = bool(message.get("more_body", False))
        valve: _Valve | None = getattr(protocol, "_streamdash_valve", None)
        if not more and valve is not None and protocol.channel is not None:
            # (A client that went after the last part has no channel: nothing to unregister;
            # every SSE reader that hung up at a stream's close logged a traceback here.)
            protocol.unregisterProducer()
        if not (more and valve is not None and _write_body(protocol, message.get("body", b""))):
            await super().handle_reply(protocol, message)
        if not more or protocol.finished:
            return
        if valve is None:
            valve = protocol._streamdash_valve = _Valve()
            protocol.registerProducer(valve, True)
            if getattr(protocol.channel, "_waitingForTransport", False):
                valve.pauseProducing()  # the buffer was full before we could be told
        transport = protocol.channel.transport if protocol.channel else None
        if not getattr(protocol, "_streamdash_nodelay", False) and transport is not None:
            # Each part of a streamed body is a whole message (an SSE batch) that is due now,
            # and Nagle's algorithm may hold a part sent straight after the last one until the
            # client acknowledges that one. ``streambench latency --rates 500,2000``, one
            # reader, p50 at 2,000 chunks/s: 13.2-13.7 ms without, 9.2-10.4 ms with (main
            # before the direct write: 7.9-8.7 ms, same sitting, load average 1.3-1.6).
            protocol._streamdash_nodelay = True
            with contextlib.suppress(AttributeError, OSError):
                transport.setTcpNoDelay(True)
        what = f"response ({protocol.path!r})"
        await _wait_or_abort(valve, what, transport, lambda: _abort_response(protocol))

    async def _websocket_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        transport = protocol.transport
        valve: _Valve | None = getattr(protocol, "_streamdash_valve", None)
        if valve is None and transport is not None:
            # Before the first write, so Twisted pauses it from the first full buffer on. The
            # HTTP channel that made the upgrade is still registered there: the socket has
            # left it.
            valve = protocol._streamdash_valve = _Valve()
            if transport.producer is not None:
                transport.unregisterProducer()
            transport.registerProducer(valve, True)
        # autobahn applies --websocket-max-message-size to what it sends as well: a reader's
        # frame of one 100 KiB chunk failed. The limit is for what clients send; the
        # consumers bound their own frames. (The send is synchronous: no incoming frame is
        # read meanwhile.)
        limit = protocol.maxMessagePayloadSize
        protocol.maxMessagePayloadSize = 0
        try:
            await super().handle_reply(protocol, message)
        finally:
            protocol.maxMessagePayloadSize = limit
        if valve is not None and message["type"] == "websocket.send":
            what = f"WebSocket ({protocol.path!r})"
            await _wait_or_abort(valve, what, transport, lambda: _abort_socket(transport))


class FlowControlledCLI(CommandLineInterface):  # type: ignore[misc]
    server_class = FlowControlledServer


if __name__ == "__main__":
    FlowControlledCLI.entrypoint()
