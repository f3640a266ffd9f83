"""The fan-out benchmark's clients, all on one asyncio loop: SSE readers (a bare
``asyncio.Protocol`` each, so a thousand of them stay cheap), dashboard viewers (the live
viewer's WebSocket, through ``websockets``), and a watch on the loop itself, because a client
that cannot keep up would show its own delay as the server's.

Every reader and viewer records, per message, when it arrived and the index after its last
chunk; the send times come from the writer afterwards, so nothing is matched while measuring.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from array import array
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from apps.bench import wire

_BATCH = re.compile(rb'id="viewer-batch" data-first="(\d+)" data-next="(\d+)" data-count="(\d+)"')
_END = b'data-end="1"'


class Receipts:
    """What one client got: chunk counts and, per message, (arrival time, next index)."""

    def __init__(self) -> None:
        self.start = -1
        self.position = -1
        self.counted = 0
        self.mismatches = 0
        self.times = array("d")
        self.ends = array("q")
        self.closed = False
        self.error: str | None = None

    def record(self, at: float, first: int, next_index: int, counted: int) -> None:
        if self.start < 0:
            self.start = self.position = first
        if next_index <= self.position:
            return
        if counted != next_index - self.position or first != self.position:
            self.mismatches += 1
        self.counted += counted
        self.position = next_index
        self.times.append(at)
        self.ends.append(next_index)

    def complete(self, tail: int) -> bool:
        return (
            self.error is None
            and self.mismatches == 0
            and self.position == tail
            and self.counted == tail - self.start
        )


class SseReader(asyncio.Protocol):
    """One ``live=sse`` reader. ``ready`` resolves on its first control frame (it is then
    up to date), ``done`` when the stream closed or the connection went."""

    def __init__(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.request = request
        self.receipts = Receipts()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self._head = wire.ResponseHead()
        self._body = wire.ChunkedDecoder()
        self._events = wire.SseDecoder()
        self._data_chunks = 0
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.local_port: int = transport.get_extra_info("sockname")[1]
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self._head.done:
            data = self._head.feed(data)
            if not self._head.done:
                return
            if self._head.status != 200:
                self._fail(f"HTTP {self._head.status}")
                return
            start = int(self._head.headers["stream-start-index"])
            self.receipts.start = self.receipts.position = start
        for event, payload in self._events.feed(self._body.feed(data)):
            if event == "data":
                self._data_chunks = payload.count(b'"n":')
            elif event == "control":
                self._control(json.loads(payload), now)
            elif event == "error":
                self._fail(payload.decode("utf-8", "replace"))

    def _control(self, control: dict[str, Any], now: float) -> None:
        next_index = int(control["streamNextOffset"].rsplit("_", 1)[1])
        receipts = self.receipts
        receipts.record(now, receipts.position, next_index, self._data_chunks)
        self._data_chunks = 0
        if not self.ready.done():
            self.ready.set_result(None)
        if control.get("streamClosed"):
            receipts.closed = True
            assert self._transport is not None
            self._transport.close()

    def _fail(self, error: str) -> None:
        self.receipts.error = error
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.receipts.closed and self.receipts.error is None:
            self.receipts.error = f"connection lost ({exc or 'closed by the server'})"
        for future in (self.ready, self.done):
            if not future.done():
                future.set_result(None)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def open_reader(port: int, path: str, key: str, offset: str) -> SseReader:
    request = wire.get_request(
        f"127.0.0.1:{port}",
        path,
        {"offset": offset, "live": "sse"},
        {"Authorization": f"Bearer {key}"},
    )
    loop = asyncio.get_running_loop()
    _, reader = await loop.create_connection(lambda: SseReader(request), "127.0.0.1", port)
    return reader


class Viewer:
    """The dashboard's live viewer socket, ``/ws/streams/<pk>/?from=N``, with a logged-in
    session cookie and the page's own Origin (the socket refuses any other)."""

    def __init__(self, port: int, stream_id: int, start: int, cookie: str) -> None:
        self.uri = f"ws://127.0.0.1:{port}/ws/streams/{stream_id}/?from={start}"
        self.origin = Origin(f"http://127.0.0.1:{port}")
        self.cookie = cookie
        self.receipts = Receipts()
        self.receipts.start = self.receipts.position = start
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.task = asyncio.create_task(self._run())
        self.done: asyncio.Future[None] = self.task

    async def _run(self) -> None:
        try:
            async with connect(
                self.uri,
                origin=self.origin,
                additional_headers={"Cookie": self.cookie},
                compression=None,
                ping_interval=None,
                max_size=None,
            ) as socket:
                async for message in socket:
                    self._message(message.encode() if isinstance(message, str) else message)
                    if self.receipts.closed:
                        return
            self.receipts.error = self.receipts.error or "closed before the stream's end"
        except (OSError, ConnectionClosed) as exc:
            self.receipts.error = f"{type(exc).__name__}: {exc}"
        except asyncio.CancelledError:
            pass
        finally:
            if not self.ready.done():
                self.ready.set_result(None)

    def _message(self, html: bytes) -> None:
        now = time.monotonic()
        match = _BATCH.search(html)
        if match is None:
            self.receipts.error = "a message without the viewer batch marker"
            return
        first, next_index, count = (int(g) for g in match.groups())
        rows = html.count(b'data-index="')
        if rows != count:
            self.receipts.mismatches += 1
        self.receipts.record(now, first if count else self.receipts.position, next_index, rows)
        if _END in html:
            self.receipts.closed = True
        if not self.ready.done():
            self.ready.set_result(None)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class LoopWatch:
    """How late this loop wakes up (sleeps of ``interval``) and how much CPU this process uses:
    the client's own health, printed beside the figures it produced."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.lags = array("d")
        self._task: asyncio.Task[None] | None = None
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)
            self.lags.append(time.monotonic() - before - self.interval)

    def phase(self) -> tuple[float, float]:
        """(client CPU share of one core, worst loop lag in s) since the last call."""
        cpu, wall = time.process_time(), time.monotonic()
        share = (cpu - self._cpu) / max(wall - self._wall, 1e-9)
        worst = max(self.lags, default=0.0)
        self._cpu, self._wall, self.lags = cpu, wall, array("d")
        return share, worst

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
