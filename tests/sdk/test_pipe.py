"""Pipes: sync and async sources, many pipes at once, the local copy, and the reader's
start index, timeout, cancellation and waiting for a stream that does not exist yet."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import pytest

from streamdash.sdk import RunFinishedError, WriterOptions, streams
from tests.sdk.helpers import finish_run, new_run

pytestmark = pytest.mark.e2e

COUNT = 300


def sync_gen(count: int) -> Iterator[dict[str, int]]:
    for n in range(count):
        if n % 50 == 0:
            time.sleep(0.002)  # a blocking source, as an SDK's sync stream is
        yield {"n": n}


async def async_gen(count: int) -> AsyncIterator[dict[str, int]]:
    for n in range(count):
        if n % 50 == 0:
            await asyncio.sleep(0.002)
        yield {"n": n}


def labelled(name: str, count: int) -> Iterator[str]:
    for n in range(count):
        yield f"{name}-{n}"


SOURCES = {
    "sync-generator": lambda: sync_gen(COUNT),
    "async-generator": lambda: async_gen(COUNT),
    "list": lambda: [{"n": n} for n in range(COUNT)],
}


@pytest.mark.parametrize("source", sorted(SOURCES))
async def test_pipe_from_source(sdk_server: object, stream_id: str, source: str) -> None:
    definition = streams.define(stream_id, chunk=dict[str, int])
    run_id = new_run()
    piped = definition.pipe(SOURCES[source](), run_id=run_id)
    local = [chunk async for chunk in piped.stream]
    assert await piped.wait_until_complete(timeout=20) == COUNT
    await definition.close(run_id=run_id)
    remote = [chunk async for chunk in definition.read(run_id, timeout=10)]
    assert local == remote == [{"n": n} for n in range(COUNT)]


async def test_pipe_many_at_once_into_one_and_many_streams(sdk_server: object) -> None:
    shared = streams.define("shared", chunk=str)
    other = streams.define("other", chunk=str)
    run_id = new_run()
    small = WriterOptions(max_batch_chunks=7)
    pipes = [
        shared.pipe(labelled(name, 150), run_id=run_id, options=small) for name in ("a", "b", "c")
    ] + [other.pipe(labelled("o", 50), run_id=run_id)]
    counts = await asyncio.gather(*(p.wait_until_complete(timeout=20) for p in pipes))
    assert counts == [150, 150, 150, 50]
    finish_run(run_id)  # a final status closes every stream of the run
    got = [chunk async for chunk in shared.read(run_id, timeout=10)]
    assert sorted(got) == sorted(f"{name}-{n}" for name in "abc" for n in range(150))
    for name in "abc":  # each source keeps its own order
        assert [c for c in got if c.startswith(name)] == [f"{name}-{n}" for n in range(150)]
    assert [c async for c in other.read(run_id, timeout=10)] == [f"o-{n}" for n in range(50)]


async def test_read_waits_for_a_stream_created_later(sdk_server: object, stream_id: str) -> None:
    definition = streams.define(stream_id, chunk=int)
    run_id = new_run()

    async def write_later() -> None:
        await asyncio.sleep(0.5)
        await definition.pipe(range(10), run_id=run_id).wait_until_complete()
        await definition.close(run_id=run_id)

    writer = asyncio.create_task(write_later())
    got = [n async for n in definition.read(run_id, timeout=10)]
    await writer
    assert got == list(range(10))


async def test_read_timeout_ends_after_silence(sdk_server: object, stream_id: str) -> None:
    definition = streams.define(stream_id, chunk=int)
    run_id = new_run()
    await definition.append(1, run_id=run_id)
    began = time.monotonic()
    got = [n async for n in definition.read(run_id, timeout=0.7)]
    elapsed = time.monotonic() - began
    assert got == [1]
    assert 0.6 <= elapsed < 5


async def test_read_cancel_ends_the_read(sdk_server: object, stream_id: str) -> None:
    definition = streams.define(stream_id, chunk=int)
    run_id = new_run()
    await definition.pipe(range(5), run_id=run_id).wait_until_complete()
    cancel = asyncio.Event()
    got: list[int] = []
    async with asyncio.timeout(10):
        async for n in definition.read(run_id, cancel=cancel):
            got.append(n)
            if n == 4:
                asyncio.get_running_loop().call_later(0.2, cancel.set)
    assert got == [0, 1, 2, 3, 4]


async def test_write_to_a_finished_run_names_what_was_acknowledged(
    sdk_server: object, stream_id: str
) -> None:
    definition = streams.define(stream_id, chunk=int)
    run_id = new_run()
    await definition.append(0, run_id=run_id)
    finish_run(run_id)
    with pytest.raises(RunFinishedError) as info:
        await definition.pipe(range(3), run_id=run_id).wait_until_complete(timeout=10)
    assert "0 of 3 chunks were acknowledged" in " ".join(info.value.__notes__)


def test_pipe_sync_from_a_generator(sdk_server: object, stream_id: str) -> None:
    definition = streams.define(stream_id, chunk=dict[str, int])
    run_id = new_run()
    source: Iterable[dict[str, int]] = sync_gen(COUNT)
    assert definition.pipe_sync(source, run_id=run_id, options=WriterOptions(linger=0.001)) == COUNT
    definition.close_sync(run_id=run_id)
    got: list[Any] = list(definition.read_sync(run_id, timeout=10))
    assert got == [{"n": n} for n in range(COUNT)]
