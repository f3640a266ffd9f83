"""Writers: batch chunks by size and a few milliseconds of linger, deliver them in order with
the idempotent producer, and report what was acknowledged. ``AsyncStreamWriter`` (a task) and
``StreamWriter`` (a thread) are twins over ``ProducerState``; retries are the client's."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

from streamdash.sdk._client import AsyncClient, Client
from streamdash.sdk._core import Request
from streamdash.sdk._exceptions import (
    APIConnectionError,
    APIError,
    DeliveryError,
    ProducerSeqGapError,
    StreamdashError,
)
from streamdash.sdk._producer import Batch, ProducerState
from streamdash.sdk._retry import RetryPolicy, is_retryable

__all__ = ["AsyncStreamWriter", "StreamWriter", "WriterOptions"]


@dataclass(frozen=True)
class WriterOptions:
    linger: float = 0.005  # seconds to wait for more chunks before sending a batch
    max_batch_bytes: int = 1 << 20
    max_batch_chunks: int = 5000
    max_pending_bytes: int = 16 << 20  # producers wait (backpressure) past this
    delivery_timeout: float = 60.0  # seconds one batch may take, retries included


def _policy(base: RetryPolicy, options: WriterOptions) -> RetryPolicy:
    return replace(base, max_attempts=10_000, deadline=options.delivery_timeout)


def _take(pending: deque[bytes], options: WriterOptions) -> Batch:
    chunks: list[bytes] = []
    size = 0
    while pending and len(chunks) < options.max_batch_chunks:
        if chunks and size + len(pending[0]) > options.max_batch_bytes:
            break
        chunk = pending.popleft()
        chunks.append(chunk)
        size += len(chunk)
    return Batch(tuple(chunks))


def _setup(registered: set[str], register: Request | None, state: ProducerState) -> list[Request]:
    """The requests before the first batch: the stream definition (once per client) and the
    stream itself (an idempotent PUT)."""
    first = [register] if register is not None and state.key not in registered else []
    return [*first, state.create_request()]


def _delivery_failure(exc: Exception, state: ProducerState, submitted: int) -> Exception:
    """What a writer raises when a batch could not be delivered."""
    counts = f"{state.acknowledged} of {submitted} chunks were acknowledged"
    if isinstance(exc, APIConnectionError) or (isinstance(exc, APIError) and is_retryable(exc)):
        error = DeliveryError(
            f"Could not deliver to {state.path} in time ({exc}); {counts}.",
            acknowledged=state.acknowledged,
            submitted=submitted,
        )
        error.__cause__ = exc
        return error
    if isinstance(exc, StreamdashError):
        exc.add_note(counts)
    return exc


class AsyncStreamWriter:
    def __init__(
        self,
        client: AsyncClient,
        run_id: str,
        key: str,
        options: WriterOptions | None = None,
        *,
        register: Request | None = None,
    ) -> None:
        self.client = client
        self.register = register
        self.options: WriterOptions = options or WriterOptions()
        self.state: ProducerState = ProducerState(run_id, key)
        self.submitted: int = 0
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._error: Exception | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def acknowledged(self) -> int:
        return self.state.acknowledged

    def submit(self, chunk: bytes) -> int:
        """Queue one encoded chunk; returns its number (wait for it with ``wait_acked``)."""
        if self._error is not None:
            raise self._error
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        self.submitted += 1
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"streamdash {self.state.path}")
        self._wake.set()
        return self.submitted

    async def reserve(self) -> None:
        """Backpressure: wait while too much is queued."""
        while self._pending_bytes > self.options.max_pending_bytes and self._error is None:
            await self._changed()

    async def wait_acked(self, number: int) -> None:
        while self.state.acknowledged < number:
            if self._error is not None:
                raise self._error
            await self._changed()

    async def write(self, chunk: bytes) -> None:
        await self.reserve()
        await self.wait_acked(self.submit(chunk))

    async def flush(self) -> None:
        await self.wait_acked(self.submitted)

    async def aclose(self) -> None:
        try:
            await self.flush()
        finally:
            self.abort()

    def abort(self) -> None:
        """Stop sending at once: what is not acknowledged yet is dropped."""
        if self._task is not None:
            self._task.cancel()

    async def close_stream(self) -> None:
        """Deliver what was submitted, then close the stream (creating it first if nothing
        was ever written, so that its readers end too)."""
        if self._task is None:
            for request in _setup(self.client.registered, self.register, self.state):
                await self.client.request(request)
        await self.flush()
        await self.client.request(self.state.close_request())

    async def _changed(self) -> None:
        await self._progress.wait()

    def _broadcast(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    async def _run(self) -> None:
        try:
            policy = _policy(self.client.settings.retry, self.options)
            for request in _setup(self.client.registered, self.register, self.state):
                await self.client.request(request, retry=policy)
            if self.register is not None:
                self.client.registered.add(self.state.key)
            while True:
                if not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if len(self._pending) < self.options.max_batch_chunks and self.options.linger:
                    await asyncio.sleep(self.options.linger)
                batch = _take(self._pending, self.options)
                self._pending_bytes -= batch.size
                await self._send(batch)
                self._broadcast()
        except Exception as exc:
            self._error = _delivery_failure(exc, self.state, self.submitted)
            self._broadcast()

    async def _send(self, batch: Batch) -> None:
        policy = _policy(self.client.settings.retry, self.options)
        while True:
            try:
                await self.client.request(self.state.append_request(batch), retry=policy)
            except ProducerSeqGapError as gap:
                self.state.resync(gap)
                continue
            self.state.acknowledged_batch(batch)
            return


class StreamWriter:
    """The sync twin: the caller's thread queues, one sender thread delivers."""

    def __init__(
        self,
        client: Client,
        run_id: str,
        key: str,
        options: WriterOptions | None = None,
        *,
        register: Request | None = None,
    ) -> None:
        self.client = client
        self.register = register
        self.options: WriterOptions = options or WriterOptions()
        self.state: ProducerState = ProducerState(run_id, key)
        self.submitted: int = 0
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._cond = threading.Condition()
        self._error: Exception | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def acknowledged(self) -> int:
        return self.state.acknowledged

    def submit(self, chunk: bytes) -> int:
        with self._cond:
            while self._pending_bytes > self.options.max_pending_bytes and self._error is None:
                self._cond.wait(1.0)
            if self._error is not None:
                raise self._error
            self._pending.append(chunk)
            self._pending_bytes += len(chunk)
            self.submitted += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"streamdash {self.state.path}", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
            return self.submitted

    def wait_acked(self, number: int) -> None:
        with self._cond:
            while self.state.acknowledged < number:
                if self._error is not None:
                    raise self._error
                self._cond.wait(1.0)

    def write(self, chunk: bytes) -> None:
        self.wait_acked(self.submit(chunk))

    def flush(self) -> None:
        self.wait_acked(self.submitted)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            if self._thread is not None:
                self._thread.join(timeout=self.options.delivery_timeout)

    def _next_batch(self) -> Batch | None:
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._cond.wait(1.0)
            first = time.monotonic()
            while len(self._pending) < self.options.max_batch_chunks and not self._closed:
                left = self.options.linger - (time.monotonic() - first)
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = _take(self._pending, self.options)
            self._pending_bytes -= batch.size
            self._cond.notify_all()
            return batch

    def _run(self) -> None:
        try:
            policy = _policy(self.client.settings.retry, self.options)
            for request in _setup(self.client.registered, self.register, self.state):
                self.client.request(request, retry=policy)
            if self.register is not None:
                self.client.registered.add(self.state.key)
            while (batch := self._next_batch()) is not None:
                self._send(batch)
                with self._cond:
                    self._cond.notify_all()
        except Exception as exc:
            with self._cond:
                self._error = _delivery_failure(exc, self.state, self.submitted)
                self._cond.notify_all()

    def _send(self, batch: Batch) -> None:
        policy = _policy(self.client.settings.retry, self.options)
        while True:
            try:
                self.client.request(self.state.append_request(batch), retry=policy)
            except ProducerSeqGapError as gap:
                self.state.resync(gap)
                continue
            self.state.acknowledged_batch(batch)
            return
