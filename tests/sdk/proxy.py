"""A small TCP proxy that breaks connections, for fault tests (not mocks: real sockets).

Each new connection is, with probability ``cut_probability``, cut after a random number of
bytes (``cut_bytes``, counted over the connection's life: keep-alive connections carry many
requests) in one direction — upstream (mid-request: the server gets part of a
request) or downstream (mid-response: the server did the work, the client never hears). With
``reset_every`` every open connection is also aborted on that period. Seeded, so a failure
replays. Loopback only; runs its own event loop on a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from dataclasses import dataclass


@dataclass
class Stats:
    connections: int = 0
    cuts_up: int = 0
    cuts_down: int = 0
    resets: int = 0


class FaultyProxy:
    def __init__(
        self,
        upstream_port: int,
        *,
        seed: int = 0,
        cut_probability: float = 0.0,
        cut_bytes: tuple[int, int] = (1, 4000),
        directions: tuple[str, ...] = ("up", "down"),
        reset_every: float | None = None,
    ) -> None:
        self.upstream_port = upstream_port
        self.rng = random.Random(seed)
        self.cut_probability = cut_probability
        self.cut_bytes = cut_bytes
        self.directions = directions
        self.reset_every = reset_every
        self.stats = Stats()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._resetter: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultyProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=5)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> FaultyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.reset_every:
            self._resetter = asyncio.create_task(self._reset_periodically(self.reset_every))

    async def _stop(self) -> None:
        if self._resetter is not None:
            self._resetter.cancel()
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        await asyncio.sleep(0.05)  # let the connection handlers see the aborts and finish

    async def _reset_periodically(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            self.stats.resets += 1
            for writer in list(self._open):
                writer.transport.abort()

    def _plan(self) -> tuple[str, int] | None:
        if self.rng.random() >= self.cut_probability:
            return None
        return self.rng.choice(self.directions), self.rng.randint(*self.cut_bytes)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.transport.abort()
            return
        plan = self._plan()
        self._open.update((client_w, server_w))

        def cut() -> None:
            client_w.transport.abort()
            server_w.transport.abort()

        async def pump(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str
        ) -> None:
            sent = 0
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await reader.read(65536):
                    if plan is not None and plan[0] == direction and sent + len(data) >= plan[1]:
                        writer.write(data[: plan[1] - sent])
                        with contextlib.suppress(OSError):
                            await writer.drain()
                        if direction == "up":
                            self.stats.cuts_up += 1
                        else:
                            self.stats.cuts_down += 1
                        cut()
                        return
                    sent += len(data)
                    writer.write(data)
                    await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()

        try:
            await asyncio.gather(pump(client_r, server_w, "up"), pump(server_r, client_w, "down"))
        finally:
            self._open.discard(client_w)
            self._open.discard(server_w)
            client_w.transport.abort()
            server_w.transport.abort()

    def go_down(self) -> None:
        """Refuse connections (the listener closes) and abort the open ones: a server away."""

        async def down() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._open):
                writer.transport.abort()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(down(), self._loop).result(timeout=5)

    def come_back(self) -> None:
        """Accept connections again, on the same port."""

        async def back() -> None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

        asyncio.run_coroutine_threadsafe(back(), self._loop).result(timeout=5)
