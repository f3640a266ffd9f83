"""Live fan-out under a burst: every SSE reader gets every chunk once, in order, whatever way
the server batches them (apps/streams/pacing.py, streamdash/core/flowserver.py); a reader
that stops reading is still cut off, and the others are not held up by it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e

READERS = 60
WRITERS = 4
APPENDS = 60  # per writer, one chunk each, as fast as the server acknowledges them
STALL_SECONDS = 3


@pytest.fixture
def stall_server(server_db: str) -> Iterator[Server]:
    with Server(
        server_db,
        {
            "STREAMDASH_PUBLIC_DS": "1",
            "STREAMDASH_SEND_STALL_SECONDS": str(STALL_SECONDS),
            "STREAMDASH_RATE_LIMIT_PER_SECOND": "0",
            "STREAMDASH_MAX_LIVE_READS": "0",
        },
    ) as live:
        yield live


async def _read_to_close(client: httpx.AsyncClient, url: str, ready: asyncio.Event) -> list[int]:
    """Every chunk value of an SSE read from the start, until the stream's close."""
    values: list[int] = []
    event = ""
    async with client.stream("GET", url, params={"offset": "-1", "live": "sse"}) as response:
        assert response.status_code == 200
        ready.set()
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "data":
                values.extend(json.loads(line[5:]))
            elif (
                line.startswith("data:")
                and event == "control"
                and json.loads(line[5:]).get("streamClosed")
            ):
                return values
    raise AssertionError("the response ended before the stream's close")


async def _write(client: httpx.AsyncClient, url: str, writer: int) -> None:
    for i in range(APPENDS):
        response = await client.post(
            url,
            content=json.dumps([writer * 1000 + i]),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 204, response.text


def test_a_burst_reaches_every_sse_reader_complete_and_in_order(stall_server: Server) -> None:
    url = f"{stall_server.url}/ds/v1/stream/burst-{time.monotonic_ns()}"
    assert httpx.put(url, headers={"Content-Type": "application/json"}).status_code == 201

    async def scenario() -> list[list[int]]:
        limits = httpx.Limits(max_connections=READERS + WRITERS + 5)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            ready = [asyncio.Event() for _ in range(READERS)]
            readers = [asyncio.create_task(_read_to_close(client, url, e)) for e in ready]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 30)
            await asyncio.gather(*(_write(client, url, w) for w in range(WRITERS)))
            await client.post(url, headers={"Stream-Closed": "true"})
            return await asyncio.wait_for(asyncio.gather(*readers), 60)

    received = asyncio.run(scenario())
    stored = httpx.get(url, params={"offset": "-1"}).json()
    assert len(stored) == WRITERS * APPENDS
    for values in received:
        assert values == stored  # every chunk, once, in the stream's order


def test_a_stalled_reader_is_cut_off_while_live_readers_get_everything(
    stall_server: Server,
) -> None:
    """Many small live appends (each written straight to the sockets that have room) fill a
    reader that reads nothing; it is dropped after the stall limit, and a reader that reads
    gets every chunk meanwhile."""
    url = f"{stall_server.url}/ds/v1/stream/stall-{time.monotonic_ns()}"
    assert httpx.put(url, headers={"Content-Type": "application/json"}).status_code == 201
    chunk = json.dumps("y" * 32 * 1024)
    appends = 200  # 6.4 MiB: more than the socket buffers and Twisted's hold
    stalled = stall_server.unread_get(url.removeprefix(stall_server.url) + "?live=sse&offset=-1")

    async def scenario() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            ready = asyncio.Event()
            reader = asyncio.create_task(_read_lengths(client, url, ready, appends))
            await asyncio.wait_for(ready.wait(), 30)
            for _ in range(appends):
                response = await client.post(
                    url, content=f"[{chunk}]", headers={"Content-Type": "application/json"}
                )
                assert response.status_code == 204
            return await asyncio.wait_for(reader, 60)

    # The stream stays open: the stalled reader's response is still waiting to send.
    lengths = asyncio.run(scenario())
    assert lengths == [len(chunk) - 2] * appends

    time.sleep(STALL_SECONDS + 1)
    stalled.settimeout(10)
    total, ended = 0, False
    try:
        while total < appends * len(chunk) * 2:
            data = stalled.recv(1 << 20)
            if not data:
                ended = True
                break
            total += len(data)
    except ConnectionResetError:
        ended = True
    except TimeoutError:
        pass
    finally:
        stalled.close()
    assert ended, "a stalled reader was never cut off"
    assert total < appends * len(chunk)


async def _read_lengths(
    client: httpx.AsyncClient, url: str, ready: asyncio.Event, want: int
) -> list[int]:
    """The length of every chunk (a JSON string) of an SSE read, until ``want`` chunks."""
    lengths: list[int] = []
    event = ""
    async with client.stream("GET", url, params={"offset": "-1", "live": "sse"}) as response:
        ready.set()
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "data":
                lengths.extend(len(value) for value in json.loads(line[5:]))
                if len(lengths) >= want:
                    return lengths
    raise AssertionError("the response ended early")
