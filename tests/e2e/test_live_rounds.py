"""Live SSE readers at the tail, served from the hub's wake rounds (apps/streams/live.py): an
SSE read still ends at its time limit while chunks keep coming, and readers that hang up as
soon as a stream closes cost the server no error."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e

SSE_SECONDS = 2
WRITE_SECONDS = 10  # the writer's bound: far past the reader's time limit
READERS = 20


@pytest.fixture
def short_reads(server_db: str) -> Iterator[Server]:
    with Server(
        server_db,
        {
            "STREAMDASH_PUBLIC_DS": "1",
            "STREAMDASH_SSE_MAX_SECONDS": str(SSE_SECONDS),
            "STREAMDASH_RATE_LIMIT_PER_SECOND": "0",
            "STREAMDASH_MAX_LIVE_READS": "0",
        },
    ) as live:
        yield live


def _values(lines: list[str]) -> list[int]:
    values: list[int] = []
    event = ""
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event == "data":
            values.extend(json.loads(line[5:]))
    return values


def test_an_sse_read_ends_at_its_time_limit_while_chunks_keep_coming(
    short_reads: Server,
) -> None:
    url = f"{short_reads.url}/ds/v1/stream/limit-{time.monotonic_ns()}"
    assert httpx.put(url, headers={"Content-Type": "application/json"}).status_code == 201

    async def scenario() -> tuple[list[str], list[int], bool]:
        async with httpx.AsyncClient(timeout=30) as client:
            written: list[int] = []
            stop = asyncio.Event()

            async def write() -> None:
                began = time.monotonic()
                while not stop.is_set() and time.monotonic() - began < WRITE_SECONDS:
                    answer = await client.post(
                        url,
                        content=json.dumps([len(written)]),
                        headers={"Content-Type": "application/json"},
                    )
                    assert answer.status_code == 204, answer.text
                    written.append(len(written))
                    await asyncio.sleep(0.05)

            lines: list[str] = []
            params = {"offset": "-1", "live": "sse"}
            async with client.stream("GET", url, params=params) as response:
                assert response.status_code == 200
                writer = asyncio.ensure_future(write())
                async for line in response.aiter_lines():
                    lines.append(line)
            writer_was_running = not writer.done()
            stop.set()
            await writer
            return lines, written, writer_was_running

    lines, written, writer_was_running = asyncio.run(scenario())
    assert writer_was_running, "the SSE read outlived its time limit"
    values = _values(lines)
    assert values, "the reader got no chunk while the writer wrote"
    assert values == list(range(len(values)))  # in order, none twice, none skipped
    # The read resumes where it ended: the next read from its last offset starts right after.
    last_offset = [json.loads(line[5:]) for line in lines if "streamNextOffset" in line][-1]
    rest = httpx.get(url, params={"offset": last_offset["streamNextOffset"]})
    assert rest.status_code == 200
    assert values + rest.json() == written


def test_readers_that_hang_up_at_the_close_leave_no_error_in_the_server_log(
    short_reads: Server,
) -> None:
    url = f"{short_reads.url}/ds/v1/stream/close-{time.monotonic_ns()}"
    assert httpx.put(url, headers={"Content-Type": "application/json"}).status_code == 201

    async def read_to_close(client: httpx.AsyncClient, ready: asyncio.Event) -> list[int]:
        lines: list[str] = []
        params = {"offset": "-1", "live": "sse"}
        async with client.stream("GET", url, params=params) as response:
            ready.set()
            async for line in response.aiter_lines():
                lines.append(line)
                if line.startswith("data:") and '"streamClosed":true' in line:
                    break  # hang up at once, as a client that got the close may
        return _values(lines)

    async def scenario() -> list[list[int]]:
        limits = httpx.Limits(max_connections=READERS + 5)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            ready = [asyncio.Event() for _ in range(READERS)]
            readers = [asyncio.ensure_future(read_to_close(client, r)) for r in ready]
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 30)
            for i in range(5):
                await client.post(
                    url, content=json.dumps([i]), headers={"Content-Type": "application/json"}
                )
            closing = await client.post(url, headers={"Stream-Closed": "true"})
            assert closing.status_code == 204, closing.text
            return await asyncio.wait_for(asyncio.gather(*readers), 30)

    assert asyncio.run(scenario()) == [list(range(5))] * READERS
    time.sleep(0.5)  # the server ends the responses after the readers went
    log = Path(short_reads.log.name).read_text(errors="replace")
    assert "Exception inside application" not in log, log[-3000:]
