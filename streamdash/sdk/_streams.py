"""``streams.define(id, chunk=T)``: a typed stream, and everything a task or a backend does
with it — append, pipe, read — async first, with ``_sync`` twins."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload
from urllib.parse import quote

import pydantic

from streamdash.sdk._client import AsyncClient, Client
from streamdash.sdk._context import current_run, resolve_target
from streamdash.sdk._core import ReadPlan, Request, fork_request, json_request
from streamdash.sdk._defaults import default_async_client, default_client
from streamdash.sdk._exceptions import ChunkValidationError, ConfigurationError
from streamdash.sdk._pipe import DEFAULT_PIPE_BUFFER, Cancel, Pipe
from streamdash.sdk._retry import OnRetry
from streamdash.sdk._writer import AsyncStreamWriter, StreamWriter, WriterOptions

if TYPE_CHECKING:
    from streamdash.sdk._inputs import InputStream

__all__ = ["DEFAULT_STREAM", "StreamDefinition", "Streams", "definition_for", "streams"]

T = TypeVar("T")
DEFAULT_STREAM = "default"
_CONFIG = pydantic.ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")
_definitions: dict[str, StreamDefinition[Any]] = {}


def definition_for(stream_id: str) -> StreamDefinition[Any] | None:
    """The stream defined in this process under ``stream_id``, if any."""
    return _definitions.get(stream_id)


def _adapter(chunk: Any) -> pydantic.TypeAdapter[Any]:
    try:
        return pydantic.TypeAdapter(chunk, config=_CONFIG)
    except pydantic.PydanticUserError as exc:
        if exc.code != "type-adapter-config-unused":
            raise
        return pydantic.TypeAdapter(chunk)  # models and dataclasses carry their own config


class StreamDefinition(Generic[T]):
    """A stream id and its chunk type. Cheap to create (no I/O): the JSON Schema is registered
    with the server the first time a client writes to the stream."""

    def __init__(
        self, stream_id: str, chunk: Any = Any, *, description: str = "", register: bool = True
    ) -> None:
        self.id = stream_id
        self._chunk = chunk
        self.description = description
        self.register_on_write = register
        self.adapter: pydantic.TypeAdapter[T] = _adapter(chunk)

    def __repr__(self) -> str:
        return f"StreamDefinition({self.id!r}, chunk={self._chunk!r})"

    @property
    def chunk_type(self) -> type[T]:
        """The chunk type, for annotations elsewhere."""
        return self._chunk  # type: ignore[no-any-return]

    def json_schema(self) -> dict[str, Any] | None:
        try:
            return self.adapter.json_schema()
        except pydantic.PydanticUserError:
            return None

    def encode(self, chunk: T) -> bytes:
        """One chunk as JSON bytes, validated against the chunk type."""
        try:
            return self.adapter.dump_json(self.adapter.validate_python(chunk))
        except pydantic.ValidationError as exc:
            raise ChunkValidationError(
                f"A chunk for stream {self.id!r} does not match its type: {exc}", stream=self.id
            ) from exc

    def decode(self, value: Any, index: int) -> T:
        try:
            return self.adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            raise ChunkValidationError(
                f"Chunk {index} of stream {self.id!r} does not match its type: {exc}",
                stream=self.id,
                index=index,
            ) from exc

    # -- registration ---------------------------------------------------------------------
    def _definition_request(self) -> Request:
        body = {"schema": self.json_schema(), "description": self.description}
        return json_request("PUT", f"/api/v1/definitions/{quote(self.id, safe='')}", body)

    async def register(self, *, client: AsyncClient | None = None) -> None:
        """Register the JSON Schema as this stream's definition (done once per client)."""
        client = client or default_async_client()
        if self.id not in client.registered:
            await client.request(self._definition_request())
            client.registered.add(self.id)

    def register_sync(self, *, client: Client | None = None) -> None:
        client = client or default_client()
        if self.id not in client.registered:
            client.request(self._definition_request())
            client.registered.add(self.id)

    # -- writing --------------------------------------------------------------------------
    def _run_id(self, run_id: str | None, target: str | None = None) -> str:
        if target is not None:
            if run_id is not None:
                raise ConfigurationError("Pass run_id= or target=, not both.")
            return resolve_target(target)
        if run_id is not None:
            return run_id
        context = current_run()
        if context is None:
            raise ConfigurationError(
                f"No run to write stream {self.id!r} to: pass run_id=, or call this inside a task."
            )
        return context.run_id

    def _writer(
        self,
        run_id: str | None,
        client: AsyncClient | None,
        options: WriterOptions | None = None,
    ) -> tuple[AsyncStreamWriter, bool]:
        """The writer to use and whether the caller owns it (and must close it)."""
        context = current_run()
        if (
            context is not None
            and run_id in (None, context.run_id)
            and client is None
            and options is None
        ):
            return context.writer(self.id, self._registration()), False
        writer = AsyncStreamWriter(
            client or default_async_client(),
            self._run_id(run_id),
            self.id,
            options,
            register=self._registration(),
        )
        return writer, True

    def _registration(self) -> Request | None:
        return self._definition_request() if self.register_on_write else None

    async def append(
        self,
        chunk: T,
        *,
        run_id: str | None = None,
        client: AsyncClient | None = None,
        target: str | None = None,
    ) -> None:
        """Append one chunk; returns once it is durably stored. ``target``: see ``pipe``."""
        data = self.encode(chunk)
        writer, owned = self._writer(self._run_id(run_id, target), client)
        try:
            await writer.write(data)
        finally:
            if owned:
                await writer.aclose()

    def pipe(
        self,
        source: Iterable[T] | AsyncIterable[T],
        *,
        run_id: str | None = None,
        client: AsyncClient | None = None,
        options: WriterOptions | None = None,
        target: str | None = None,
        cancel: Cancel | None = None,
        close_on_cancel: bool = False,
        buffer: int = DEFAULT_PIPE_BUFFER,
    ) -> Pipe[T]:
        """Start piping ``source`` into the stream; returns at once. Await the result's
        ``wait_until_complete()``; iterate its ``stream`` to see the same chunks locally.

        ``target`` writes to another run's stream: "parent", "root" (inside a task) or a run
        id. ``cancel`` (an ``asyncio.Event`` or ``threading.Event``) stops the pipe: the
        source is closed, what was read is delivered, and the stream stays open unless
        ``close_on_cancel``. ``buffer``: chunks a local reader may fall behind."""
        context = current_run()
        run_id = self._run_id(run_id, target)  # fails here, not in the background
        writer, owned = self._writer(run_id, client, options)
        pipe = Pipe(
            source,
            writer,
            self.encode,
            owned=owned,
            cancel=cancel,
            close_on_cancel=close_on_cancel,
            buffer=buffer,
        )
        if context is not None:
            context.pipes.append(pipe)
        return pipe

    def append_sync(
        self,
        chunk: T,
        *,
        run_id: str | None = None,
        client: Client | None = None,
        target: str | None = None,
    ) -> None:
        self.pipe_sync([chunk], run_id=run_id, client=client, target=target)

    def pipe_sync(
        self,
        source: Iterable[T],
        *,
        run_id: str | None = None,
        client: Client | None = None,
        options: WriterOptions | None = None,
        target: str | None = None,
        cancel: threading.Event | None = None,
        close_on_cancel: bool = False,
    ) -> int:
        """Pipe ``source`` into the stream from this thread; returns how many chunks were
        written once all are durably stored. ``cancel`` is checked between chunks: once set,
        the source is closed and what was read is delivered (see ``pipe``)."""
        client = client or default_client()
        writer = StreamWriter(
            client, self._run_id(run_id, target), self.id, options, register=self._registration()
        )
        count = 0
        items = iter(source)
        try:
            for item in items:
                if cancel is not None and cancel.is_set():
                    break
                writer.submit(self.encode(item))
                count += 1
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
            writer.close()
        if cancel is not None and cancel.is_set() and close_on_cancel:
            if not writer.submitted:  # never created: create it, so that readers end too
                client.request(writer.state.create_request())
            client.request(writer.state.close_request())
        return count

    async def close(self, *, run_id: str | None = None, client: AsyncClient | None = None) -> None:
        """Close the stream: readers end after its last chunk. (A run's streams close by
        themselves when the run reaches a final status.)"""
        writer, _ = self._writer(run_id, client)
        await writer.client.request(writer.state.close_request())

    def close_sync(self, *, run_id: str | None = None, client: Client | None = None) -> None:
        client = client or default_client()
        client.request(StreamWriter(client, self._run_id(run_id), self.id).state.close_request())

    # -- forking --------------------------------------------------------------------------
    def _fork(
        self, run_id: str, at_index: int, new_key: str, into_run: str | None
    ) -> tuple[Request, StreamDefinition[T]]:
        if at_index < 0:
            raise ValueError(f"at_index must be 0 or more, got {at_index}.")
        request = fork_request(
            run_id=run_id,
            key=self.id,
            at_index=at_index,
            into_run=into_run or run_id,
            new_key=new_key,
        )
        return request, StreamDefinition(new_key, self._chunk, register=False)

    async def fork(
        self,
        run_id: str,
        at_index: int,
        new_key: str,
        *,
        into_run: str | None = None,
        client: AsyncClient | None = None,
    ) -> StreamDefinition[T]:
        """Create stream ``new_key`` (of ``into_run``, by default the same run) as a fork of
        this stream of ``run_id`` at ``at_index``: it reads this stream's first ``at_index``
        chunks (the server does not copy them), and what is appended to it follows them —
        "regenerate from here". Returns the fork, typed like this stream. Idempotent."""
        request, forked = self._fork(run_id, at_index, new_key, into_run)
        await (client or default_async_client()).request(request)
        return forked

    def fork_sync(
        self,
        run_id: str,
        at_index: int,
        new_key: str,
        *,
        into_run: str | None = None,
        client: Client | None = None,
    ) -> StreamDefinition[T]:
        request, forked = self._fork(run_id, at_index, new_key, into_run)
        (client or default_client()).request(request)
        return forked

    # -- reading --------------------------------------------------------------------------
    def _plan(self, run_id: str, start_index: int, timeout: float | None) -> ReadPlan[T]:
        return ReadPlan(
            run_id=run_id, key=self.id, start_index=start_index, timeout=timeout, decode=self.decode
        )

    async def read(
        self,
        run_id: str,
        *,
        start_index: int = 0,
        timeout: float | None = None,  # noqa: ASYNC109 (seconds without a new chunk)
        cancel: asyncio.Event | None = None,
        client: AsyncClient | None = None,
        on_retry: OnRetry | None = None,
    ) -> AsyncIterator[T]:
        """Every chunk from ``start_index``, live, until the stream is closed, ``timeout``
        seconds pass without a new chunk, or ``cancel`` is set. Waits for a stream the run has
        not created yet and resumes after any drop, as the client's ``ReconnectPolicy`` says;
        ``on_retry`` hears of every retry."""
        client = client or default_async_client()
        chunks = client.follow(self._plan(run_id, start_index, timeout), on_retry=on_retry)
        if cancel is None:
            async for chunk in chunks:
                yield chunk
            return
        async for chunk in _until(cancel, chunks):
            yield chunk

    def read_sync(
        self,
        run_id: str,
        *,
        start_index: int = 0,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
        client: Client | None = None,
        on_retry: OnRetry | None = None,
    ) -> Iterator[T]:
        """``read``, synchronously. ``cancel`` is checked between chunks and heartbeats."""
        client = client or default_client()
        for chunk in client.follow(self._plan(run_id, start_index, timeout), on_retry=on_retry):
            if cancel is not None and cancel.is_set():
                return
            yield chunk


async def _until(cancel: asyncio.Event, chunks: AsyncIterator[T]) -> AsyncIterator[T]:
    waiter = asyncio.ensure_future(cancel.wait())
    try:
        while True:
            step = asyncio.ensure_future(anext(chunks))
            await asyncio.wait({step, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                await asyncio.wait({step})  # the read stops before the generator is closed
                return
            if isinstance(step.exception(), StopAsyncIteration):
                return
            yield step.result()
    finally:
        waiter.cancel()
        await chunks.aclose()  # type: ignore[attr-defined]


class Streams:
    """The ``streams`` namespace: ``define``, and the default stream's operations."""

    @overload
    def define(self, stream_id: str, *, description: str = "") -> StreamDefinition[Any]: ...
    @overload
    def define(
        self, stream_id: str, *, chunk: type[T], description: str = ""
    ) -> StreamDefinition[T]: ...
    def define(
        self, stream_id: str, *, chunk: Any = Any, description: str = ""
    ) -> StreamDefinition[Any]:
        definition: StreamDefinition[Any] = StreamDefinition(
            stream_id, chunk, description=description
        )
        _definitions[stream_id] = definition
        return definition

    @overload
    def input(self, name: str, *, description: str = "") -> InputStream[Any]: ...
    @overload
    def input(self, name: str, *, chunk: type[T], description: str = "") -> InputStream[T]: ...
    def input(self, name: str, *, chunk: Any = Any, description: str = "") -> InputStream[Any]:
        """An input stream: values sent into a live run (``streamdash.sdk._inputs``)."""
        from streamdash.sdk._inputs import InputStream  # it builds on StreamDefinition

        return InputStream(name, chunk, description=description)

    @property
    def default(self) -> StreamDefinition[Any]:
        return _DEFAULT

    async def fork(
        self,
        run_id: str,
        at_index: int,
        new_key: str,
        *,
        key: str = DEFAULT_STREAM,
        into_run: str | None = None,
    ) -> StreamDefinition[Any]:
        """Fork the stream ``key`` of ``run_id`` at ``at_index`` (``StreamDefinition.fork``)."""
        return await _untyped(key).fork(run_id, at_index, new_key, into_run=into_run)

    def fork_sync(
        self,
        run_id: str,
        at_index: int,
        new_key: str,
        *,
        key: str = DEFAULT_STREAM,
        into_run: str | None = None,
    ) -> StreamDefinition[Any]:
        return _untyped(key).fork_sync(run_id, at_index, new_key, into_run=into_run)

    def pipe(
        self,
        source: Iterable[Any] | AsyncIterable[Any],
        *,
        key: str = DEFAULT_STREAM,
        run_id: str | None = None,
        target: str | None = None,
        cancel: Cancel | None = None,
        close_on_cancel: bool = False,
    ) -> Pipe[Any]:
        """Pipe into the stream ``key`` (the default stream when omitted); see
        ``StreamDefinition.pipe``."""
        return _untyped(key).pipe(
            source, run_id=run_id, target=target, cancel=cancel, close_on_cancel=close_on_cancel
        )

    async def append(
        self,
        chunk: Any,
        *,
        key: str = DEFAULT_STREAM,
        run_id: str | None = None,
        target: str | None = None,
    ) -> None:
        await _untyped(key).append(chunk, run_id=run_id, target=target)

    def read(
        self,
        run_id: str,
        *,
        key: str = DEFAULT_STREAM,
        start_index: int = 0,
        timeout: float | None = None,
        cancel: asyncio.Event | None = None,
        on_retry: OnRetry | None = None,
    ) -> AsyncIterator[Any]:
        return _untyped(key).read(
            run_id, start_index=start_index, timeout=timeout, cancel=cancel, on_retry=on_retry
        )

    def read_sync(
        self,
        run_id: str,
        *,
        key: str = DEFAULT_STREAM,
        start_index: int = 0,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
        on_retry: OnRetry | None = None,
    ) -> Iterator[Any]:
        return _untyped(key).read_sync(
            run_id, start_index=start_index, timeout=timeout, cancel=cancel, on_retry=on_retry
        )


_DEFAULT: StreamDefinition[Any] = StreamDefinition(DEFAULT_STREAM, register=False)


def _untyped(key: str) -> StreamDefinition[Any]:
    if key == DEFAULT_STREAM:
        return _DEFAULT
    return _definitions.get(key) or StreamDefinition(key, register=False)


streams: Streams = Streams()
