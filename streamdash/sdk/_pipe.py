"""``Pipe``: an iterable (sync or async) flowing into a stream in the background, with a local
copy of the same chunks (``pipe.stream``) for the task that started it.

A pipe keeps no history. Each local reader has a bounded buffer of the chunks it has not read
yet, and the source is read no faster than the slowest local reader (and the writer's own
``max_pending_bytes``) allows; with no local reader, the pipe holds nothing once a chunk is
handed to the writer. So a pipe of any length runs in constant memory."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
)
from typing import Any, Generic, TypeVar

from streamdash.sdk._exceptions import PipeStreamError
from streamdash.sdk._writer import AsyncStreamWriter

__all__ = ["DEFAULT_PIPE_BUFFER", "Cancel", "Pipe", "aiterate", "cancelled"]

T = TypeVar("T")
Cancel = asyncio.Event | threading.Event
DEFAULT_PIPE_BUFFER = 64  # chunks a local reader may fall behind before the source waits
_BRIDGE_ITEMS = 256  # items a sync source's thread may read ahead
_POLL = 0.05  # seconds between looks at a threading.Event from the event loop
_INLINE = (list, tuple, range, str, bytes, dict, set, frozenset)


async def aiterate(source: Iterable[T] | AsyncIterable[T]) -> AsyncGenerator[T, None]:
    """Any iterable as an async iterator. Sync iterables that may block (network streams,
    generators) are read on a thread so that the event loop never waits on them. Closing the
    result closes the source (``aclose()`` / ``close()``) when it can be closed."""
    if isinstance(source, AsyncIterable):
        iterator = aiter(source)
        try:
            async for item in iterator:
                yield item
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        return
    if isinstance(source, _INLINE):
        for n, item in enumerate(source):
            if n % 256 == 255:
                await asyncio.sleep(0)
            yield item
        return
    async for item in _from_thread(iter(source)):
        yield item


async def _from_thread(source: Iterator[T]) -> AsyncIterator[T]:
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
        finally:
            # Closed here, by the thread that runs it: a generator cannot be closed from
            # another thread while it is running.
            close = getattr(source, "close", None)
            if stop.is_set() and close is not None:
                with contextlib.suppress(Exception):
                    close()
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


async def cancelled(cancel: Cancel) -> None:
    """Return once ``cancel`` is set. A ``threading.Event`` is looked at every 50 ms: waiting
    for it on a thread would keep that thread (and the loop's shutdown) waiting forever."""
    if isinstance(cancel, asyncio.Event):
        await cancel.wait()
        return
    while not cancel.is_set():  # noqa: ASYNC110 (a thread sets it; see above)
        await asyncio.sleep(_POLL)


class _Reader(AsyncIterator[T]):
    """One local reader of a pipe (``pipe.stream``): the chunks it has not read yet. The pipe
    holds it weakly, so a reader dropped without being closed stops holding the pipe back."""

    def __init__(self, pipe: Pipe[T]) -> None:
        self.pipe = pipe
        self.items: deque[T] = deque()
        self.attached = True
        self.ready = asyncio.Event()  # an item, or the end
        self.missed = pipe._read  # chunks piped before this reader existed

    def __aiter__(self) -> _Reader[T]:
        return self

    async def __anext__(self) -> T:
        if self.missed:
            raise PipeStreamError(
                f"{self.missed} chunks were piped before this reader started, and a pipe "
                "keeps no history: take pipe.stream right after pipe(), or read the stream "
                "from the server with read()."
            )
        while True:
            if self.items:
                item = self.items.popleft()
                self.pipe._room.set()
                return item
            if not self.attached:
                raise StopAsyncIteration
            if self.pipe._finished:
                self.detach()
                if self.pipe._error is not None:
                    raise self.pipe._error
                raise StopAsyncIteration
            self.ready.clear()
            await self.ready.wait()

    async def aclose(self) -> None:
        self.detach()

    def detach(self) -> None:
        if self.attached:
            self.attached = False
            self.items.clear()
            self.pipe._room.set()

    def __del__(self) -> None:
        self.detach()


class Pipe(Generic[T]):
    """Started by ``StreamDefinition.pipe``; returns at once and runs as a task.

    - ``await pipe`` (or ``wait_until_complete()``) returns how many chunks were piped, once
      all of them are acknowledged (durable).
    - ``pipe.stream`` is a local copy of the chunks, for a reader taken before the first chunk
      is piped (right after ``pipe()``); see ``stream``.
    - ``cancel`` (an ``asyncio.Event`` or a ``threading.Event``) stops the pipe: the source is
      closed, what was read is delivered, and the stream is closed if ``close_on_cancel``.
    """

    def __init__(
        self,
        source: Iterable[T] | AsyncIterable[T],
        writer: AsyncStreamWriter,
        encode: Callable[[T], bytes],
        *,
        owned: bool = False,
        cancel: Cancel | None = None,
        close_on_cancel: bool = False,
        buffer: int = DEFAULT_PIPE_BUFFER,
    ) -> None:
        """``owned``: the pipe closes the writer when it ends. ``buffer``: how many chunks a
        local reader may fall behind before the source waits."""
        self.writer: AsyncStreamWriter = writer
        self.count: int = 0  # chunks handed to the writer
        self.cancelled: bool = False  # stopped by ``cancel`` before the source ended
        self._read = 0
        self._reading = False
        self._error: Exception | None = None
        self._buffer = max(1, buffer)
        self._readers: list[weakref.ref[_Reader[T]]] = []
        self._room = asyncio.Event()  # a reader took a chunk, or went away
        self._finished = False
        self._stop_requested = False
        self.task: asyncio.Task[int] = asyncio.create_task(
            self._run(source, encode, owned, close_on_cancel),
            name=f"streamdash pipe {writer.state.path}",
        )
        if cancel is not None:
            watcher = asyncio.create_task(self._watch(cancel))
            self.task.add_done_callback(lambda _: watcher.cancel())

    async def _watch(self, cancel: Cancel) -> None:
        await cancelled(cancel)
        self._stop()

    def _stop(self) -> None:
        if self._reading and not self._stop_requested:
            self.task.cancel()  # interrupts the wait for the source (or for room)
        self._stop_requested = True

    async def _run(
        self,
        source: Iterable[T] | AsyncIterable[T],
        encode: Callable[[T], bytes],
        owned: bool,
        close_on_cancel: bool,
    ) -> int:
        writer = self.writer
        try:
            last = await self._pump(source, encode)
            await writer.wait_acked(last)
            if self.cancelled and close_on_cancel:
                await writer.close_stream()
            if owned:
                await writer.aclose()
            return self.count
        except BaseException:
            if owned:
                writer.abort()
            raise

    async def _pump(
        self, source: Iterable[T] | AsyncIterable[T], encode: Callable[[T], bytes]
    ) -> int:
        """Read the source into the writer and the local readers until it ends or the pipe is
        stopped; returns the number of the last chunk submitted."""
        writer = self.writer
        last = 0
        held: bytes | None = None  # read, not yet submitted
        items = aiterate(source)
        self._reading = True
        try:
            async for item in items:
                if self._stop_requested:
                    break
                self._read += 1
                held = encode(item)
                await self._hand_out(item)
                await writer.reserve()
                last, held = writer.submit(held), None
                self.count += 1
        except asyncio.CancelledError:
            if not self._stop_requested:
                raise  # cancelled from outside (the run was canceled): drop everything
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            if held is not None:  # local readers may have it: the stream gets it too
                last = writer.submit(held)
                self.count += 1
        except Exception as exc:
            self._error = exc
            raise
        finally:
            self._reading = False
            self.cancelled = self._stop_requested
            await items.aclose()
            self._end()
        return last

    async def _hand_out(self, item: T) -> None:
        """Give ``item`` to every local reader, waiting while one's buffer is full."""
        for ref in list(self._readers):
            while (reader := ref()) is not None and reader.attached:
                if len(reader.items) < self._buffer:
                    reader.items.append(item)
                    reader.ready.set()
                    break
                del reader  # not held while waiting: dropping it is a way out
                self._room.clear()
                await self._room.wait()
        self._readers = [r for r in self._readers if (reader := r()) and reader.attached]

    def _end(self) -> None:
        self._finished = True
        for ref in self._readers:
            if (reader := ref()) is not None:
                reader.ready.set()

    @property
    def stream(self) -> AsyncIterator[T]:
        """The piped chunks, locally, from the first one. A pipe keeps no history: each access
        is a new reader of the chunks piped from then on, so take it right after ``pipe()``
        (before the next ``await``); a reader taken after the first chunk raises
        ``PipeStreamError`` when iterated. The source waits for the slowest reader (``buffer``
        chunks behind at most); a reader that stops early (``break``, ``aclose()``, or simply
        dropped) lets the pipe go on without it."""
        reader = _Reader(self)
        if not reader.missed:
            self._readers.append(weakref.ref(reader))
        return reader

    async def wait_until_complete(self, timeout: float | None = None) -> int:  # noqa: ASYNC109
        """Wait until every chunk is acknowledged (durable); returns how many were piped."""
        return await asyncio.wait_for(asyncio.shield(self.task), timeout)

    def __await__(self) -> Any:
        return self.wait_until_complete().__await__()
