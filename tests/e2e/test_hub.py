"""The hub: live readers hold no threads, and notifications cross server processes via Redis."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e

READERS = 200


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


async def _read_until(
    client: httpx.AsyncClient,
    url: str,
    want: int,
    ready: asyncio.Event,
    headers: dict[str, str] | None = None,
) -> int:
    got = 0
    params = {"offset": "-1", "live": "sse"}
    async with client.stream("GET", url, params=params, headers=headers) as response:
        assert response.status_code == 200
        ready.set()
        async for line in response.aiter_lines():
            if line.startswith("data:["):
                got += len(json.loads(line[5:]))
                if got >= want:
                    return got
    return got


@pytest.mark.parametrize("root_path", ["", "/mounted"], ids=["plain", "daphne-root-path"])
def test_many_live_readers_add_no_threads(server: Server, root_path: str):
    """DESIGN.md's trap: a live reader must not pin a thread. 200 SSE readers on one stream,
    then one append reaches all of them; the server's thread count barely moves. A client may
    send ``Daphne-Root-Path`` itself: the readers must still take the thread-free stream path
    (it once sent them through Django's handler, a thread each)."""
    assert server.process is not None
    # A key of its own: 200 readers is the per-credential cap of live reads, and another
    # test's readers may still be releasing theirs (with Redis, asynchronously).
    auth = {"Authorization": f"Bearer {server.create_project()}"}
    run = httpx.post(f"{server.url}/api/v1/runs", json={"task_id": "fan"}, headers=auth).json()
    url = f"{server.url}/api/v1/runs/{run['id']}/streams/fan"
    httpx.put(url, headers={**auth, "Content-Type": "application/json"})
    # Warm the server's pools before counting.
    httpx.get(url, headers=auth)

    async def scenario() -> tuple[list[int], int, int]:
        limits = httpx.Limits(max_connections=READERS + 10)
        async with httpx.AsyncClient(headers=auth, timeout=30, limits=limits) as client:
            before = _threads(server.process.pid)
            events = [asyncio.Event() for _ in range(READERS)]
            reader_url = url.replace("/api/", f"{root_path}/api/", 1)
            root = {"Daphne-Root-Path": root_path} if root_path else None
            tasks = [
                asyncio.create_task(_read_until(client, reader_url, 3, e, root)) for e in events
            ]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 30)
            await asyncio.sleep(0.5)
            during = _threads(server.process.pid)
            await client.post(
                url, content="[1, 2, 3]", headers={"Content-Type": "application/json"}
            )
            results = await asyncio.wait_for(asyncio.gather(*tasks), 30)
            return results, before, during

    results, before, during = asyncio.run(scenario())
    assert results == [3] * READERS
    # The hub's small thread pool may start; nothing scales with the number of readers.
    assert during - before <= 8, (before, during)


def test_reader_on_one_process_sees_writes_on_another(server_db: str, redis_url: str):
    """Two server processes share the Redis layer. The tail re-check is slowed to a minute so
    that only a real cross-process notification can deliver the chunk quickly."""
    env = {"REDIS_URL": redis_url, "STREAMDASH_TAIL_CHECK_SECONDS": "60"}
    reader_side = Server(server_db, env).start()
    writer_side = Server(server_db, env).start()
    try:
        key = writer_side.create_project()
        auth = {"Authorization": f"Bearer {key}"}
        run = httpx.post(f"{writer_side.url}/api/v1/runs", json={"task_id": "x"}, headers=auth)
        path = f"/api/v1/runs/{run.json()['id']}/streams/cross"
        httpx.put(writer_side.url + path, headers={**auth, "Content-Type": "application/json"})

        async def scenario() -> tuple[int, float]:
            ready = asyncio.Event()
            async with httpx.AsyncClient(headers=auth, timeout=30) as client:
                reader = asyncio.create_task(_read_until(client, reader_side.url + path, 2, ready))
                await asyncio.wait_for(ready.wait(), 10)
                await asyncio.sleep(0.3)
                started = time.monotonic()
                await client.post(
                    writer_side.url + path,
                    content="[1, 2]",
                    headers={"Content-Type": "application/json"},
                )
                got = await asyncio.wait_for(reader, 10)
                return got, time.monotonic() - started

        got, _ = asyncio.run(scenario())
        assert got == 2
    finally:
        reader_side.stop()
        writer_side.stop()
        for log in (reader_side.log.name, writer_side.log.name):
            Path(log).unlink(missing_ok=True)
