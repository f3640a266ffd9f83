"""ASGI ``send`` wrappers that step aside once a response no longer needs them.

The ASGI entry wraps every HTTP ``send`` twice: the request id goes into the response's
headers (``requestid.answering``) and the response is counted by status and error code
(``metrics_export.counting``). Both are done with a response by its start (or, for a JSON
error, by its first body part), yet a live SSE response sent every later part through both:
two more coroutine calls per reader per delivery (with 1,000 SSE readers, py-spy on
``streambench fanout``: 22% of the samples under them, the socket write included; about 2%
their own).

A wrapper here is a :class:`Wrapper` that says when it is ``done`` with the response; a
streamed body asks :func:`bare` for the send to use once its response has started, and gets
the innermost send that every wrapper above it is done with.

A server may also offer a streamed response a synchronous write (:func:`direct_writer`, the
scope extension ``streamdash.write_body`` of ``streamdash.core.flowserver``): more body bytes
written to the connection at once, or False (nothing written) when the connection cannot take
them now. The hub's wake rounds write to live SSE readers with it (``apps.streams.live``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["WRITE_BODY", "Send", "Wrapper", "bare", "direct_writer"]

WRITE_BODY = "streamdash.write_body"

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


class Wrapper:
    """A ``send`` around ``inner``; ``done`` once the messages left pass through unchanged."""

    done = False

    def __init__(self, inner: Send) -> None:
        self.inner = inner

    async def __call__(self, message: Message) -> None:
        await self.inner(message)


def bare(send: Send) -> Send:
    """``send`` without the wrappers that are done with the response."""
    while isinstance(send, Wrapper) and send.done:
        send = send.inner
    return send


def direct_writer(scope: MutableMapping[str, Any]) -> Callable[[bytes], bool] | None:
    """The server's synchronous write of more body bytes for this request, if it has one."""
    writer: Callable[[bytes], bool] | None = scope.get("extensions", {}).get(WRITE_BODY)
    return writer
