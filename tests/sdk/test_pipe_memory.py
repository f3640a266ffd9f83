"""Pipes hold no history: each local reader has a bounded buffer and the source waits while it
is full; with no local reader nothing is kept; a late reader is told, not silently skipped;
and a 1 GiB pipe runs in flat memory."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from streamdash.sdk import AsyncClient, PipeStreamError, streams
from tests.sdk.helpers import finish_run, new_run

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20
CHUNK = 64 * 1024
GIB_CHUNKS = 16_384  # of 64 KiB: 1 GiB
GROWTH_BOUND = 64 * MIB


async def counted(count: int, pulled: list[int]) -> AsyncIterator[int]:
    for n in range(count):
        pulled[0] += 1
        yield n


async def test_local_reader_bounds_the_source(sdk_server: object, stream_id: str) -> None:
    definition = streams.define(stream_id, chunk=int)
    run_id = new_run()
    pulled = [0]
    piped = definition.pipe(counted(500, pulled), run_id=run_id, buffer=4)
    local = piped.stream
    assert await anext(local) == 0
    await asyncio.sleep(0.3)  # the source has had every chance to run ahead
    # One chunk read, four in the buffer, one waiting for room: the source waits.
    assert pulled[0] <= 6
    rest = [n async for n in local]
    assert rest == list(range(1, 500))
    assert await piped.wait_until_complete(timeout=20) == 500
    finish_run(run_id)
    assert [n async for n in definition.read(run_id, timeout=10)] == list(range(500))


async def test_reader_that_stops_early_lets_the_pipe_go_on(
    sdk_server: object, stream_id: str
) -> None:
    definition = streams.define(stream_id, chunk=int)
    run_id = new_run()
    piped = definition.pipe(counted(300, [0]), run_id=run_id, buffer=2)
    async for n in piped.stream:
        if n == 5:
            break
    assert await piped.wait_until_complete(timeout=20) == 300


async def test_late_reader_is_told_it_missed_chunks(sdk_server: object, stream_id: str) -> None:
    definition = streams.define(stream_id, chunk=int)
    run_id = new_run()
    piped = definition.pipe(range(1000), run_id=run_id)
    assert await piped.wait_until_complete(timeout=20) == 1000  # nobody read: nothing kept
    with pytest.raises(PipeStreamError, match="1000 chunks were piped before"):
        [n async for n in piped.stream]
    # Two readers that start in time both get everything.
    both = definition.pipe(range(300), run_id=run_id, buffer=3)
    first, second = both.stream, both.stream
    got = await asyncio.gather(_all(first), _all(second))
    assert got == [list(range(300))] * 2


async def _all(chunks: AsyncIterator[int]) -> list[int]:
    return [n async for n in chunks]


def resident() -> int:
    """This process's resident memory (Linux): what the machine pays, C buffers included."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def big_chunks(count: int, peak: list[int]) -> AsyncIterator[str]:
    filler = "x" * (CHUNK - 8)
    for n in range(count):
        if n % 64 == 0:
            peak[0] = max(peak[0], resident())
        yield f"{n:08d}" + filler  # a new 64 KiB string each time, as a real source makes


@pytest.fixture
def sink() -> Iterator[str]:
    """``tests/sdk/sink.py`` in a subprocess: stream writes are counted and dropped (the real
    server would take minutes to store a GiB on two cores, and caps a stream at 300 MiB)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.sdk.sink"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        yield f"http://127.0.0.1:{int(process.stdout.readline())}"
    finally:
        process.stdin.close()
        process.wait(timeout=10)


async def test_a_1_gib_pipe_runs_in_flat_memory(sink: str) -> None:
    """16,384 chunks of 64 KiB, made on the fly, piped with a local reader that checks each
    one: the process grows by the writer's and the reader's bounded buffers, not by the GiB
    (before pipes dropped their history, it grew by all of it)."""
    definition = streams.define("one-gib", chunk=str)
    seen = 0
    peak = [0]
    async with AsyncClient(url=sink, api_key="sd_sk_sink") as client:
        before = resident()
        piped = definition.pipe(big_chunks(GIB_CHUNKS, peak), run_id="run_sink", client=client)
        async for chunk in piped.stream:
            assert int(chunk[:8]) == seen
            seen += 1
        assert await piped.wait_until_complete(timeout=600) == GIB_CHUNKS
    assert seen == GIB_CHUNKS
    async with httpx.AsyncClient() as http:
        received = (await http.get(f"{sink}/count")).json()
    assert received["bytes"] > GIB_CHUNKS * CHUNK  # the whole GiB went out (as JSON strings)
    growth = peak[0] - before
    assert growth < GROWTH_BOUND, f"grew by {growth / MIB:.1f} MiB while piping 1 GiB"
