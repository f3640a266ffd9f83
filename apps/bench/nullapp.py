"""A do-nothing ASGI app: daphne running this is the floor under any request's cost.

``streambench requests`` sends it the same requests as streamdash (same client, paths, headers
and bodies): it reads the body and answers 200 with two bytes. Served as
``apps.bench.nullapp:application``; it imports nothing, so no Django is loaded either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]


async def application(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    message = await receive()
    while message.get("more_body"):
        message = await receive()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})
