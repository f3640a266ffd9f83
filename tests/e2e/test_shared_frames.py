"""Live SSE frames are built once per batch and process and shared by the readers at the same
position (apps/api/sse.py ``live_frames``); each reader still gets its own stream's frames,
its own cursor and offsets that match the bytes it got, whatever mix of readers a batch has."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Iterator

import httpx
import pytest

from streamdash.core.offsets import offset_for
from tests.server import Server

pytestmark = pytest.mark.e2e

READERS = 20  # per stream: enough for the pacer to batch their wake-ups
APPENDS = 30
FUTURE_CURSOR = "999999999"
BYTES = "application/octet-stream"
JSON = "application/json"


@pytest.fixture(scope="module")
def live(server_db: str) -> Iterator[Server]:
    with Server(
        server_db,
        {
            "STREAMDASH_PUBLIC_DS": "1",
            "STREAMDASH_RATE_LIMIT_PER_SECOND": "0",
            "STREAMDASH_MAX_LIVE_READS": "0",
        },
    ) as server:
        yield server


def _events(raw: bytes) -> list[tuple[str, bytes]]:
    events = []
    for block in raw.split(b"\n\n"):
        lines = [line for line in block.split(b"\n") if line and not line.startswith(b":")]
        kind = next((x[6:].strip() for x in lines if x.startswith(b"event:")), b"")
        data = b"\n".join(x[5:] for x in lines if x.startswith(b"data:"))
        if kind:
            events.append((kind.decode(), data))
    return events


async def _read(
    client: httpx.AsyncClient, url: str, params: dict[str, str], ready: asyncio.Event
) -> tuple[str | None, bytes]:
    raw = b""
    async with client.stream("GET", url, params={**params, "live": "sse"}) as response:
        assert response.status_code == 200
        ready.set()
        async for part in response.aiter_raw():
            raw += part
            if b'"streamClosed":true' in raw:
                break
    return response.headers.get("Stream-SSE-Data-Encoding"), raw


def test_readers_of_three_streams_with_their_own_cursors_and_starts_get_their_own_frames(
    live: Server,
) -> None:
    stamp = time.monotonic_ns()
    # Two byte streams (same encoding, same index ranges) and a JSON stream.
    streams = {"bytes-a": BYTES, "bytes-b": BYTES, "json": JSON}
    urls = {name: f"{live.url}/ds/v1/stream/shared-{name}-{stamp}" for name in streams}
    payloads = {
        name: [
            os.urandom(1 + n * 37 % 500)
            if kind == BYTES
            else json.dumps({"n": n, "s": "x" * (n % 7)}).encode()
            for n in range(APPENDS)
        ]
        for name, kind in streams.items()
    }
    # Readers from the start and from index 5 (written before they come), with no cursor, an
    # old one and one from the future: every kind of reader on every stream at once.
    plans = [
        (name, start, cursor)
        for name in streams
        for n in range(READERS)
        for start, cursor in [((0, 5)[n % 2], (None, "1", FUTURE_CURSOR)[n % 3])]
    ]

    async def scenario() -> list[tuple[str | None, bytes]]:
        limits = httpx.Limits(max_connections=len(plans) + 4)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            for name, url in urls.items():
                created = await client.put(url, headers={"Content-Type": streams[name]})
                assert created.status_code == 201
            for n in range(5):
                for name, url in urls.items():
                    await client.post(
                        url, content=payloads[name][n], headers={"Content-Type": streams[name]}
                    )
            ready = [asyncio.Event() for _ in plans]
            readers = [
                asyncio.create_task(
                    _read(
                        client,
                        urls[name],
                        {
                            "offset": "-1" if start == 0 else offset_for(start),
                            **({"cursor": cursor} if cursor else {}),
                        },
                        event,
                    )
                )
                for (name, start, cursor), event in zip(plans, ready, strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 30)
            for n in range(5, APPENDS):
                for name, url in urls.items():
                    response = await client.post(
                        url, content=payloads[name][n], headers={"Content-Type": streams[name]}
                    )
                    assert response.status_code == 204
            for url in urls.values():
                await client.post(url, headers={"Stream-Closed": "true"})
            return await asyncio.wait_for(asyncio.gather(*readers), 60)

    results = asyncio.run(scenario())
    for (name, start, cursor), (encoding, raw) in zip(plans, results, strict=True):
        kind = streams[name]
        assert encoding == ("base64" if kind == BYTES else None)
        got: list[bytes] = []  # what this reader decoded so far
        last: dict[str, object] = {}
        for event, data in _events(raw):
            assert event in ("data", "control"), data
            if event == "data":
                if kind == BYTES:
                    got.append(base64.b64decode(data))
                else:
                    got.extend(json.dumps(v).encode() for v in json.loads(data))
                continue
            control = last = json.loads(data)
            upto = int(control["streamNextOffset"].split("_")[1])
            # The offset names exactly what this reader got: its stream, from its start.
            assert b"".join(got) == b"".join(payloads[name][start:upto])
            if "streamCursor" in control:
                later = int(control["streamCursor"]) > int(FUTURE_CURSOR)
                assert later == (cursor == FUTURE_CURSOR)
        assert last == {
            "streamNextOffset": offset_for(APPENDS),
            "streamClosed": True,
            "upToDate": True,
        }
