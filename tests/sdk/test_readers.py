"""Readers that wait and do not give up while the stream is open (streamdash/sdk/README.md,
"Readers that wait"): a read started before the task creates its stream gets the chunks; a
finished run's missing stream raises at once; a server that goes away and comes back is
resumed; a server away for longer than ``give_up_after`` raises, every retry reported to
``on_retry``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from streamdash.sdk import (
    APIConnectionError,
    AsyncClient,
    Client,
    NotFoundError,
    ReconnectPolicy,
    RetryInfo,
    streams,
)
from tests.sdk.helpers import finish_run, new_run
from tests.sdk.proxy import FaultyProxy
from tests.server import Server

pytestmark = pytest.mark.e2e

# Reconnects fast enough for a test; the give-up limit is what each test sets.
FAST = {"initial_delay": 0.02, "max_delay": 0.2}


def _later(seconds: float, action: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _read_all(mode: str, stream_id: str, run_id: str, **options: Any) -> list[Any]:
    """Every chunk of a read, through the sync or the async API."""
    definition = streams.define(stream_id, chunk=int)
    if mode == "sync":
        return list(definition.read_sync(run_id, **options))

    async def collect() -> list[Any]:
        return [n async for n in definition.read(run_id, **options)]

    return asyncio.run(collect())


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _read_through(
    mode: str,
    url: str,
    policy: ReconnectPolicy,
    stream_id: str,
    run_id: str,
    on_retry: Callable[[RetryInfo], object],
    on_chunk: Callable[[int], object] = lambda n: None,
) -> None:
    """Read to the end through a client of ``url`` with ``policy``, sync or async."""
    definition = streams.define(stream_id, chunk=int)
    if mode == "sync":
        with Client(url=url, reconnect=policy) as client:
            for n in definition.read_sync(run_id, client=client, on_retry=on_retry):
                on_chunk(n)
        return

    async def read() -> None:
        async with AsyncClient(url=url, reconnect=policy) as client:
            async for n in definition.read(run_id, client=client, on_retry=on_retry):
                on_chunk(n)

    asyncio.run(read())


def test_read_waits_for_a_stream_the_run_creates_later(
    sdk_server: Server, stream_id: str, mode: str
) -> None:
    run_id = new_run()
    definition = streams.define(stream_id, chunk=int)

    def task() -> None:
        definition.append_sync(1, run_id=run_id)  # creates the stream
        definition.append_sync(2, run_id=run_id)
        definition.close_sync(run_id=run_id)

    writer = _later(0.5, task)
    try:
        assert _read_all(mode, stream_id, run_id, timeout=30) == [1, 2]
    finally:
        writer.join()


def test_read_of_a_finished_runs_missing_stream_raises(
    sdk_server: Server, stream_id: str, mode: str
) -> None:
    run_id = new_run()
    finish_run(run_id)
    retries: list[RetryInfo] = []
    with pytest.raises(NotFoundError) as info:
        _read_all(mode, stream_id, run_id, on_retry=retries.append)
    assert info.value.code == "stream_not_found"
    assert info.value.facts["run_status"] == "completed"
    assert retries == []


def test_reader_resumes_when_the_server_comes_back(
    sdk_server: Server, stream_id: str, mode: str
) -> None:
    definition = streams.define(stream_id, chunk=int)
    run_id = new_run()
    definition.append_sync(0, run_id=run_id)
    retries: list[RetryInfo] = []
    received: list[int] = []
    policy = ReconnectPolicy(**FAST, give_up_after=60)
    with FaultyProxy(sdk_server.port) as proxy:

        def away_then_back() -> None:
            proxy.go_down()
            definition.append_sync(1, run_id=run_id)  # written while the reader is cut off
            time.sleep(1.0)
            proxy.come_back()
            definition.append_sync(2, run_id=run_id)
            definition.close_sync(run_id=run_id)

        outage: list[threading.Thread] = []

        def on_chunk(n: int) -> None:
            received.append(n)
            if n == 0:  # the reader is connected: now the server goes away
                outage.append(_later(0, away_then_back))

        try:
            _read_through(mode, proxy.url, policy, stream_id, run_id, retries.append, on_chunk)
        finally:
            for thread in outage:
                thread.join()
    assert received == [0, 1, 2]
    assert retries, "the reader never retried: the server was not away"
    assert [r.attempt for r in retries] == list(range(1, len(retries) + 1))


def test_reader_gives_up_after_its_limit_reporting_every_retry(
    sdk_server: Server, stream_id: str, mode: str
) -> None:
    definition = streams.define(stream_id, chunk=int)
    run_id = new_run()
    definition.append_sync(0, run_id=run_id)
    retries: list[RetryInfo] = []
    policy = ReconnectPolicy(**FAST, give_up_after=1.5)
    with FaultyProxy(sdk_server.port) as proxy:
        proxy.go_down()
        with pytest.raises(APIConnectionError):
            _read_through(mode, proxy.url, policy, stream_id, run_id, retries.append)
    assert len(retries) >= 3
    assert [r.attempt for r in retries] == list(range(1, len(retries) + 1))
    assert all(isinstance(r.error, httpx.TransportError | APIConnectionError) for r in retries)
    assert all(0 < r.delay <= 0.2 for r in retries)
