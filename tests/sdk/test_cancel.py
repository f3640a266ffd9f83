"""Cancellation: a pipe stopped by an ``asyncio.Event`` or a ``threading.Event`` closes its
source, delivers what it read and leaves the stream open or closes it, as asked; and
``runs.cancel`` stops a worker's task and its pipes."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from streamdash.sdk import Worker, runs, streams, task
from tests.sdk.helpers import finish_run, new_run

pytestmark = pytest.mark.e2e


class Endless:
    """A source that never ends by itself and says when it was closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    async def async_items(self) -> AsyncIterator[int]:
        try:
            for n in range(1_000_000):
                await asyncio.sleep(0.005)
                yield n
        finally:
            self.closed.set()

    def sync_items(self) -> Iterator[int]:
        try:
            for n in range(1_000_000):
                time.sleep(0.005)
                yield n
        finally:
            self.closed.set()


async def wait_for(condition: threading.Event) -> None:
    async with asyncio.timeout(10):
        while not condition.is_set():  # noqa: ASYNC110 (set from the source's own thread)
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("close_on_cancel", [False, True], ids=["left-open", "closed"])
@pytest.mark.parametrize("kind", ["asyncio", "threading"])
async def test_pipe_cancelled_by_event(
    sdk_server: object, stream_id: str, kind: str, close_on_cancel: bool
) -> None:
    definition = streams.define(stream_id, chunk=int)
    run_id = new_run()
    source = Endless()
    cancel = asyncio.Event() if kind == "asyncio" else threading.Event()
    items = source.async_items() if kind == "asyncio" else source.sync_items()
    piped = definition.pipe(items, run_id=run_id, cancel=cancel, close_on_cancel=close_on_cancel)
    local = piped.stream
    async for n in local:
        if n == 20:
            if kind == "asyncio":
                cancel.set()
            else:  # from another thread, as a stop button's handler would
                threading.Thread(target=cancel.set).start()
            break
    count = await piped.wait_until_complete(timeout=10)
    assert piped.cancelled
    await wait_for(source.closed)
    assert count >= 21
    # What was read is stored, every chunk once, in order.
    got = [n async for n in definition.read(run_id, timeout=None if close_on_cancel else 1)]
    assert got == list(range(count))
    if not close_on_cancel:  # still open: the task may write more
        await definition.append(-1, run_id=run_id)
        finish_run(run_id)
        assert [n async for n in definition.read(run_id, start_index=count)] == [-1]


async def test_pipe_cancelled_before_its_first_chunk_still_closes(
    sdk_server: object, stream_id: str
) -> None:
    definition = streams.define(stream_id, chunk=int)
    run_id = new_run()
    cancel = asyncio.Event()
    cancel.set()
    piped = definition.pipe(Endless().async_items(), run_id=run_id, cancel=cancel,
                            close_on_cancel=True)  # fmt: skip
    assert await piped.wait_until_complete(timeout=10) == 0
    async with asyncio.timeout(10):  # the stream exists and is closed: the read ends at once
        assert [n async for n in definition.read(run_id)] == []


def test_pipe_sync_cancelled_by_threading_event(sdk_server: object, stream_id: str) -> None:
    definition = streams.define(stream_id, chunk=int)
    run_id = new_run()
    source = Endless()
    cancel = threading.Event()
    yielded: list[int] = []

    def counted() -> Iterator[int]:
        for n in source.sync_items():
            yielded.append(n)
            yield n

    def stop_button() -> None:  # another thread, once the pipe is under way
        deadline = time.monotonic() + 10
        while len(yielded) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        cancel.set()

    threading.Thread(target=stop_button).start()
    count = definition.pipe_sync(counted(), run_id=run_id, cancel=cancel, close_on_cancel=True)
    assert source.closed.is_set()
    assert count >= 10
    assert list(definition.read_sync(run_id)) == list(range(count))  # closed: the read ends


async def test_runs_cancel_stops_the_workers_task_and_its_pipe(sdk_server: object) -> None:
    source = Endless()
    ticks = streams.define(f"ticks-{uuid.uuid4().hex[:6]}", chunk=int)

    @task(f"endless-{uuid.uuid4().hex[:6]}")
    async def endless() -> None:
        ticks.pipe(source.async_items())
        await asyncio.Event().wait()  # a task that would never end by itself

    handle = await endless.trigger()
    worker = Worker([endless], poll_interval=0.05, heartbeat=0.1)
    working = asyncio.create_task(worker.run(max_runs=1))
    async with asyncio.timeout(20):
        async for n in ticks.read(handle.id):
            if n == 10:
                break
        await runs.cancel(handle.id)
        # A couple of seconds at most: the worker hears of it on its next heartbeat.
        async with asyncio.timeout(3):
            await working
            await wait_for(source.closed)
    assert (worker.canceled, worker.completed, worker.failed) == (1, 0, 0)
    assert (await runs.retrieve(handle.id)).status == "canceled"
