"""Request body limits enforced while the body is read, whatever Content-Length says.

Django's ASGI handler (``django/core/handlers/asgi.py``, ``ASGIHandler.read_body``) reads the
whole body into a spooled temporary file before any middleware or view runs, without a size
limit; ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is checked later, and only against the Content-Length
header. A chunked body (no Content-Length) or one that lies about its length would be read in
full. This ASGI wrapper sits in front of Django and counts the bytes as they arrive:

- Content-Length over the limit → 413 at once, before a byte of body is read;
- more bytes than the limit (no Content-Length) → 413 as soon as the limit is passed;
- a Content-Length that is not a number, repeated with different values, or that disagrees
  with the bytes actually received (more or fewer) → 400.

On a rejection it tells Django the client went away (Django then returns without answering)
and answers itself. Twisted receives each request body before the application sees it; the
server (``streamdash.core.flowserver``) keeps at most one byte more than this limit of it, so
this module's answers stand and an oversized upload fills neither disk nor memory.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

from apps.api.errors import error_body
from streamdash.core.errors import BadRequest, DomainError, TooLarge

__all__ = ["RequestBodyLimit", "limited"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Rejected(Exception):
    def __init__(self, error: DomainError) -> None:
        super().__init__(error.message)
        self.status = error.status
        self.body = json.dumps({"error": error_body(error)}).encode()


def _declared_length(scope: Scope) -> int | None:
    values = {v.strip() for k, v in scope.get("headers", []) if k.lower() == b"content-length"}
    if not values:
        return None
    if len(values) > 1:
        raise _Rejected(BadRequest("Conflicting Content-Length headers."))
    (value,) = values
    if not value.isdigit():
        raise _Rejected(BadRequest("Content-Length is not a whole number."))
    return int(value)


def _too_large(limit: int) -> _Rejected:
    return _Rejected(TooLarge(f"The request body is larger than {limit} bytes.", limit=limit))


async def _answer(send: Send, rejected: _Rejected) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": rejected.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(rejected.body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"cross-origin-resource-policy", b"cross-origin"),
                (b"access-control-allow-origin", b"*"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": rejected.body})


class RequestBodyLimit:
    """ASGI middleware: ``RequestBodyLimit(django_asgi_app)``; the limit is
    ``STREAMDASH_MAX_REQUEST_BYTES``, read per request (tests may change it). The ASGI entry
    (``streamdash.entry``) calls :func:`limited` itself."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await limited(self.app, scope, receive, send)


async def limited(app: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one HTTP request with ``app``, its body bounded as the module says."""
    limit = int(settings.STREAMDASH_MAX_REQUEST_BYTES)
    try:
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            raise _too_large(limit)
    except _Rejected as rejected:
        await _answer(send, rejected)
        return

    received = 0
    finished = False
    rejection: _Rejected | None = None

    async def limited_receive() -> Message:
        nonlocal received, finished, rejection
        if finished:
            return await receive()
        message = await receive()
        if message["type"] != "http.request":
            return message
        received += len(message.get("body", b""))
        more = bool(message.get("more_body", False))
        if received > limit:
            rejection = _too_large(limit)
        elif declared is not None and (received > declared or (not more and received < declared)):
            rejection = _Rejected(
                BadRequest(
                    f"The body has {'more' if received > declared else 'fewer'} bytes than "
                    f"its Content-Length ({declared}).",
                    content_length=declared,
                )
            )
        if rejection is not None:
            finished = True
            return {"type": "http.disconnect"}
        finished = not more
        return message

    await app(scope, limited_receive, send)
    if rejection is not None:
        await _answer(send, rejection)
