"""Request ids: a sane incoming X-Request-ID is kept, anything else replaced; the id is answered
as a header, visible while the request is handled, and not inherited by process-wide tasks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streamdash.core import requestid
from streamdash.core.requestid import RequestId


@pytest.mark.parametrize("sane", [b"abc-123", b"lb-7f3a.2:9", b"0" * 128])
def test_request_id_keeps_a_sane_incoming_id(sane: bytes) -> None:
    assert requestid.accept(sane) == sane.decode()


@pytest.mark.parametrize(
    "insane",
    [
        b"",
        b"a b",
        b"x\r\nforged: 1",
        b"0" * 129,
        b'"quoted"',
        b"sd_sk_secret",
        b"caf\xc3\xa9",
        None,
    ],
)
def test_request_id_replaces_anything_else(insane: bytes | None) -> None:
    made = requestid.accept(insane)
    assert len(made) == 32
    assert int(made, 16) >= 0
    assert made != requestid.accept(insane)


def test_request_id_is_answered_and_seen_while_handling_only() -> None:
    seen: list[str | None] = []
    background: list[str | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(requestid.current())
        task = asyncio.get_running_loop().create_task(
            _record(background), context=requestid.outside_request()
        )
        await task
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    scope = {"type": "http", "headers": [(b"x-request-id", b"trace-1")]}
    asyncio.run(RequestId(app)(scope, receive, send))
    assert seen == ["trace-1"]
    assert background == [None]
    assert (b"x-request-id", b"trace-1") in sent[0]["headers"]
    assert requestid.current() is None


async def _record(into: list[str | None]) -> None:
    into.append(requestid.current())
