"""Process-wide loops start on a real server's first request on each event loop, once."""

from __future__ import annotations

import asyncio

from streamdash.core.onserve import OnServe

SERVER = {"type": "http", "server": ("127.0.0.1", 8000)}


def test_starters_run_once_per_loop_in_order_and_only_for_a_server() -> None:
    calls: list[str] = []
    on_serve = OnServe(lambda: calls.append("beat"), lambda: calls.append("purge"))

    async def requests() -> None:
        before = len(calls)
        on_serve({"type": "http"})  # a test client's scope: no server
        assert len(calls) == before
        for _ in range(3):
            on_serve(SERVER)

    asyncio.run(requests())
    assert calls == ["beat", "purge"]
    asyncio.run(requests())  # another event loop: its own loops
    assert calls == ["beat", "purge", "beat", "purge"]
