"""``Pipe``: an iterable (sync or async) flowing into a stream in the background, with a local
copy of the same chunks (``pipe.stream``) for the task that started it."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, Generic, TypeVar

from streamdash.sdk._writer import AsyncStreamWriter

__all__ = ["Pipe", "aiterate"]

T = TypeVar("T")
_BRIDGE_ITEMS = 1024
_INLINE = (list, tuple, range, str, bytes, dict, set, frozenset)


async def aiterate(source: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    """Any iterable as an async iterator. Sync iterables that may block (network streams,
    generators) are read on a thread so that the event loop never waits on them."""
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
        return
    if isinstance(source, _INLINE):
        for n, item in enumerate(source):
            if n % 256 == 255:
                await asyncio.sleep(0)
            yield item
        return
    async for item in _from_thread(source):
        yield item


async def _from_thread(source: Iterable[T]) -> AsyncIterator[T]:
    loop = asyncio.get_running_loop()
    items: deque[tuple[bool, Any]] = deque()
    ready = asyncio.Event()
    room = threading.Semaphore(_BRIDGE_ITEMS)
    stop = threading.Event()

    def wake() -> None:
        try:
            loop.call_soon_threadsafe(ready.set)
        except RuntimeError:  # the loop closed: nobody is listening any more
            stop.set()

    def produce() -> None:
        try:
            for item in source:
                while not room.acquire(timeout=0.5):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                items.append((True, item))
                wake()
            items.append((False, None))
        except BaseException as exc:
            items.append((False, exc))
        wake()

    threading.Thread(target=produce, name="streamdash pipe source", daemon=True).start()
    try:
        while True:
            while not items:
                ready.clear()
                if items:
                    break
                await ready.wait()
            is_item, value = items.popleft()
            if not is_item:
                if value is not None:
                    raise value
                return
            room.release()
            yield value
    finally:
        stop.set()


class Pipe(Generic[T]):
    """Started by ``StreamDefinition.pipe``; returns at once and runs as a task."""

    def __init__(
        self,
        source: Iterable[T] | AsyncIterable[T],
        writer: AsyncStreamWriter,
        encode: Callable[[T], bytes],
        *,
        owned: bool = False,
    ) -> None:
        """``owned``: the pipe closes the writer when it ends."""
        self._items: list[T] = []
        self._finished = False
        self._changed = asyncio.Event()
        self.task: asyncio.Task[int] = asyncio.create_task(self._run(source, writer, encode, owned))

    async def _run(
        self,
        source: Iterable[T] | AsyncIterable[T],
        writer: AsyncStreamWriter,
        encode: Callable[[T], bytes],
        owned: bool,
    ) -> int:
        try:
            last = 0
            async for item in aiterate(source):
                data = encode(item)
                self._items.append(item)
                self._notify()
                await writer.reserve()
                last = writer.submit(data)
            self._finished = True
            self._notify()
            await writer.wait_acked(last)
            return len(self._items)
        finally:
            self._finished = True
            self._notify()
            if owned:
                await writer.aclose()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def stream(self) -> AsyncIterator[T]:
        """The same chunks, locally, from the first one (each access starts over)."""
        return self._local()

    async def _local(self) -> AsyncIterator[T]:
        position = 0
        while True:
            if position < len(self._items):
                item = self._items[position]
                position += 1
                yield item
                continue
            if self._finished:
                if self.task.done() and not self.task.cancelled() and self.task.exception():
                    raise self.task.exception()  # type: ignore[misc]
                return
            await self._changed.wait()

    async def wait_until_complete(self, timeout: float | None = None) -> int:  # noqa: ASYNC109
        """Wait until every chunk is acknowledged (durable); returns how many were piped."""
        return await asyncio.wait_for(asyncio.shield(self.task), timeout)

    def __await__(self) -> Any:
        return self.wait_until_complete().__await__()
