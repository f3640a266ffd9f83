"""One id per request, for log lines and error bodies: ``X-Request-ID`` in, or a new one.

``RequestId(app)`` wraps the whole ASGI application (HTTP and WebSocket). It takes a sane
incoming ``X-Request-ID`` (what a load balancer or a client put there, so one id follows a
request across hops) and otherwise makes one; it keeps it in a context variable for everything
that runs for the request — the tasks it starts copy their context, and so does
``sync_to_async`` — and answers it as the ``X-Request-ID`` response header. The log formatter
(``jsonlog``) and the error bodies (``apps.api.errors``) read it with :func:`current`.

A process-wide task started while handling some request (the hub's loops, the purge schedule)
would inherit that request's id forever: start it in :func:`outside_request` instead.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from streamdash.core.sendchain import Wrapper

__all__ = [
    "HEADER",
    "RequestId",
    "accept",
    "answering",
    "current",
    "enter",
    "incoming",
    "leave",
    "outside_request",
]

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("latin-1")
# Bounded and plain, so an id written into a log line can forge nothing there (no spaces,
# quotes or line breaks); underscores are left out so no credential shape (sd_sk_…) passes.
_SANE = re.compile(r"[A-Za-z0-9.:-]{1,128}")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "streamdash_request_id", default=None
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def current() -> str | None:
    """The id of the request being handled here, if any."""
    return _current.get()


def accept(incoming: bytes | None) -> str:
    """``incoming`` when it is a sane id, else a new one (32 hex digits)."""
    if incoming is not None:
        text = incoming.decode("latin-1")
        if _SANE.fullmatch(text):
            return text
    return os.urandom(16).hex()


def outside_request() -> contextvars.Context:
    """A copy of the current context without a request id, to start a process-wide task in."""
    context = contextvars.copy_context()
    context.run(_current.set, None)
    return context


def incoming(scope: Scope) -> str:
    """The request's id: its sane ``X-Request-ID``, else a new one."""
    for name, value in scope["headers"]:
        if name == _HEADER_KEY:
            return accept(value)
    return accept(None)


def enter(request_id: str) -> contextvars.Token[str | None]:
    """Make ``request_id`` the current one; hand the token to :func:`leave` when done."""
    return _current.set(request_id)


def leave(token: contextvars.Token[str | None]) -> None:
    _current.reset(token)


class RequestId:
    """``RequestId(app)``: every HTTP and WebSocket request gets an id (see the module). The
    ASGI entry (``streamdash.entry``) does the same with :func:`incoming`, :func:`enter` and
    :func:`answering`."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = incoming(scope)
        token = enter(request_id)
        try:
            if scope["type"] == "http":
                await self.app(scope, receive, answering(send, request_id))
            else:
                await self.app(scope, receive, send)
        finally:
            leave(token)


def answering(send: Send, request_id: str) -> Send:
    """``send`` with the ``X-Request-ID`` response header added (replacing any the app set)."""
    return _Answering(send, request_id.encode("latin-1"))


class _Answering(Wrapper):
    # The header is all it adds: a streamed body's parts may skip it (``sendchain.bare``).
    done = True

    def __init__(self, inner: Send, encoded: bytes) -> None:
        super().__init__(inner)
        self.encoded = encoded

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER_KEY]
            message = {**message, "headers": [*headers, (_HEADER_KEY, self.encoded)]}
        await self.inner(message)
