"""``streams.input(name, chunk=T)``: a typed input stream, for data sent INTO a live run.

A backend or a browser sends (``send``, ``send_sync``, ``sendInput`` in streamdash.js); the
task receives (``once``, ``wait``, ``on``, ``peek``). On the server an input is the run stream
``input:<name>``, so it is durable, shows in the dashboard, and a value sent before the task
listens is not lost: receivers read the stream from its start.

Inside a task, each input keeps a cursor per run: ``once()``/``wait()`` hand out the values in
order, each once (the first call returns the first value ever sent). ``on(handler)`` sees every
value from the first, whatever ``once`` took. ``peek()`` is the latest value any receiver of the
run has seen, without I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from streamdash.sdk._client import AsyncClient, Client
from streamdash.sdk._context import RunContext, current_run
from streamdash.sdk._core import JSON_TYPE, ReadPlan, Request, json_request
from streamdash.sdk._defaults import default_async_client, default_client
from streamdash.sdk._exceptions import (
    ConfigurationError,
    PermissionDeniedError,
    StreamClosedError,
    StreamdashError,
)
from streamdash.sdk._producer import Batch, ProducerState
from streamdash.sdk._streams import StreamDefinition

__all__ = ["INPUT_PREFIX", "InputStream", "InputSubscription"]

T = TypeVar("T")
INPUT_PREFIX = "input:"
logger = logging.getLogger("streamdash.sdk")


def input_path(run_id: str, name: str) -> str:
    return f"/api/v1/runs/{quote(run_id, safe='')}/inputs/{quote(name, safe='')}"


@dataclass
class _Receiver:
    """One input of one run, as this process has received it."""

    cursor: int = 0  # the index ``once`` hands out next
    latest: Any = None
    latest_index: int = -1
    prepared: bool = False
    watched: bool = False  # a background read keeps ``latest`` current

    def saw(self, index: int, value: Any) -> None:
        if index > self.latest_index:
            self.latest, self.latest_index = value, index


class InputSubscription:
    """What ``on()`` returns: call it, call ``unsubscribe()``, or leave its ``with`` block to
    stop the handler. The run's end stops it too."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop

    def unsubscribe(self) -> None:
        self._stop()

    def __call__(self) -> None:
        self._stop()

    def __enter__(self) -> InputSubscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()


class InputStream(Generic[T]):
    """An input name and its value type. Cheap to create (no I/O)."""

    def __init__(self, name: str, chunk: Any = Any, *, description: str = "") -> None:
        self.name: str = name
        self.key: str = INPUT_PREFIX + name
        # The stream's definition (``input:<name>``): the value type's encoding and JSON Schema.
        self.definition: StreamDefinition[T] = StreamDefinition(
            self.key, chunk, description=description
        )

    def __repr__(self) -> str:
        return f"InputStream({self.name!r}, chunk={self.definition.chunk_type!r})"

    # -- sending --------------------------------------------------------------------------
    def _send_request(self, run_id: str, value: T, idempotency_key: str | None) -> Request:
        # A producer of its own per send, so the client's retries of it are stored once.
        producer_id = idempotency_key or f"send-{uuid.uuid4().hex}"
        path = input_path(run_id, self.name)
        producer = ProducerState(run_id, self.key, producer_id=producer_id, path=path)
        return producer.append_request(Batch((self.definition.encode(value),)))

    async def send(
        self,
        run_id: str,
        value: T,
        *,
        idempotency_key: str | None = None,
        client: AsyncClient | None = None,
    ) -> None:
        """Send ``value`` into the run; returns once it is durably stored. Retried; the same
        ``idempotency_key`` sent again is stored once. A finished run: ``RunFinishedError``."""
        request = self._send_request(run_id, value, idempotency_key)
        await (client or default_async_client()).request(request)

    def send_sync(
        self,
        run_id: str,
        value: T,
        *,
        idempotency_key: str | None = None,
        client: Client | None = None,
    ) -> None:
        request = self._send_request(run_id, value, idempotency_key)
        (client or default_client()).request(request)

    # -- receiving, inside a task -----------------------------------------------------------
    def _context(self) -> tuple[RunContext, _Receiver]:
        context = current_run()
        if context is None:
            raise ConfigurationError(
                f"Input {self.name!r} is received inside a task; send to it with send()."
            )
        receiver = context.inputs.get(self.key)
        if receiver is None:
            receiver = context.inputs[self.key] = _Receiver()
        return context, receiver

    def _setup(self, run_id: str) -> list[Request]:
        """Register the definition, then create the stream (both idempotent), so that a read
        never waits for the first send to create it."""
        create = Request("PUT", input_path(run_id, self.name), headers={"Content-Type": JSON_TYPE})
        return [self.definition._definition_request(), create]

    async def _prepare(self, client: AsyncClient, context: RunContext, receiver: _Receiver) -> None:
        if receiver.prepared:
            return
        register, create = self._setup(context.run_id)
        if self.key not in client.registered:
            with contextlib.suppress(PermissionDeniedError):  # a token may not register
                await client.request(register)
            client.registered.add(self.key)
        await client.request(create)
        receiver.prepared = True

    def _prepare_sync(self, client: Client, context: RunContext, receiver: _Receiver) -> None:
        if receiver.prepared:
            return
        register, create = self._setup(context.run_id)
        if self.key not in client.registered:
            with contextlib.suppress(PermissionDeniedError):
                client.request(register)
            client.registered.add(self.key)
        client.request(create)
        receiver.prepared = True

    def _plan(self, run_id: str, start: int, timeout: float | None) -> ReadPlan[T]:
        return ReadPlan(
            run_id=run_id,
            key=self.key,
            start_index=start,
            timeout=timeout,
            decode=self.definition.decode,
        )

    def _nothing(self, plan: ReadPlan[T], timeout: float | None) -> Exception:
        if plan.closed:
            return StreamClosedError(
                f"Input {self.name!r} was closed (the run has finished) before a value came.",
                status=409,
                code="stream_closed",
            )
        return TimeoutError(f"No value on input {self.name!r} within {timeout} s.")

    async def once(self, *, timeout: float | None = None) -> T:  # noqa: ASYNC109
        """The next value (the first call: the first value ever sent), waiting up to
        ``timeout`` seconds (None: as long as the run lasts). Raises ``TimeoutError``."""
        context, receiver = self._context()
        client = context.client
        async with asyncio.timeout(timeout):
            await self._prepare(client, context, receiver)
            start = receiver.cursor
            plan = self._plan(context.run_id, start, timeout)
            values = client.follow(plan)
            try:
                async for value in values:
                    receiver.cursor = max(receiver.cursor, start + 1)
                    receiver.saw(start, value)
                    return value
            finally:
                await values.aclose()  # type: ignore[attr-defined]
        raise self._nothing(plan, timeout)

    def once_sync(self, *, timeout: float | None = None) -> T:
        """``once`` from a sync task's thread."""
        context, receiver = self._context()
        client = default_client()
        self._prepare_sync(client, context, receiver)
        start = receiver.cursor
        plan = self._plan(context.run_id, start, timeout)
        values = client.follow(plan)
        try:
            for value in values:
                receiver.cursor = max(receiver.cursor, start + 1)
                receiver.saw(start, value)
                return value
        finally:
            values.close()  # type: ignore[attr-defined]
        raise self._nothing(plan, timeout)

    async def wait(self, *, timeout: float | None = None) -> T:  # noqa: ASYNC109
        """``once``, with the run marked *waiting for <name>* in the dashboard meanwhile."""
        context, _ = self._context()
        await _mark_waiting(context, self.name, context.client, waiting=True)
        try:
            return await self.once(timeout=timeout)
        finally:
            await _mark_waiting(context, self.name, context.client, waiting=False)

    def wait_sync(self, *, timeout: float | None = None) -> T:
        context, _ = self._context()
        client = default_client()
        _mark_waiting_sync(context, self.name, client, waiting=True)
        try:
            return self.once_sync(timeout=timeout)
        finally:
            _mark_waiting_sync(context, self.name, client, waiting=False)

    def peek(self) -> T | None:
        """The latest value this run has received on the input, or None. No I/O: the first
        call starts following the input in the background, so a value shows up soon after."""
        _, receiver = self._context()
        if not receiver.watched:
            self.on(lambda _: None)
        return receiver.latest  # type: ignore[no-any-return]

    def on(self, handler: Callable[[T], object]) -> InputSubscription:
        """Call ``handler`` with every value of the input (those sent before this call too), in
        order, in the background, until unsubscribed or the run ends. An async handler is
        awaited; a sync one runs on the event loop (keep it quick: set an event, append to a
        list). Outside an event loop (a sync task) the handler runs on a thread of its own."""
        context, receiver = self._context()
        receiver.watched = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            listening = loop.create_task(self._listen(context, receiver, handler))

            def stop() -> None:
                listening.cancel()

        else:
            stopped = threading.Event()
            thread = threading.Thread(
                target=self._listen_sync,
                args=(context, receiver, handler, stopped),
                name=f"streamdash input {self.name}",
                daemon=True,
            )
            thread.start()
            stop = stopped.set  # checked between values and heartbeats (~15 s)
        context.listeners.append(stop)
        return InputSubscription(stop)

    async def _listen(
        self, context: RunContext, receiver: _Receiver, handler: Callable[[T], object]
    ) -> None:
        try:
            await self._prepare(context.client, context, receiver)
            values = context.client.follow(self._plan(context.run_id, 0, None))
            try:
                index = 0
                async for value in values:
                    receiver.saw(index, value)
                    index += 1
                    await _call(handler, value)
            finally:
                await values.aclose()  # type: ignore[attr-defined]
        except Exception:
            logger.exception("run %s: listening to input %r failed", context.run_id, self.name)
        finally:
            receiver.watched = False

    def _listen_sync(
        self,
        context: RunContext,
        receiver: _Receiver,
        handler: Callable[[T], object],
        stopped: threading.Event,
    ) -> None:
        try:
            client = default_client()
            if stopped.is_set():
                return
            self._prepare_sync(client, context, receiver)
            values = client.follow(self._plan(context.run_id, 0, None))
            for index, value in enumerate(values):
                if stopped.is_set():
                    return
                receiver.saw(index, value)
                outcome = _handle(handler, value)
                if inspect.isawaitable(outcome):
                    asyncio.run(_awaited(outcome))
        except Exception:
            logger.exception("run %s: listening to input %r failed", context.run_id, self.name)
        finally:
            receiver.watched = False


async def _awaited(outcome: Any) -> None:
    await outcome


def _handle(handler: Callable[[Any], object], value: Any) -> object:
    """The handler's result; its exception is logged, and the next value still delivered."""
    try:
        return handler(value)
    except Exception:
        logger.exception("an input handler failed")
        return None


async def _call(handler: Callable[[Any], object], value: Any) -> None:
    outcome = _handle(handler, value)
    if inspect.isawaitable(outcome):
        try:
            await outcome
        except Exception:
            logger.exception("an input handler failed")


def _waiting_body(context: RunContext, name: str, waiting: bool) -> Request:
    if waiting:
        context.waiting.append(name)
    elif name in context.waiting:
        context.waiting.remove(name)
    # Several waits at once: the run shows the latest still pending.
    body = {"waiting_for": context.waiting[-1] if context.waiting else None}
    return json_request("PATCH", f"/api/v1/runs/{quote(context.run_id, safe='')}", body)


async def _mark_waiting(
    context: RunContext, name: str, client: AsyncClient, *, waiting: bool
) -> None:
    request = _waiting_body(context, name, waiting)
    try:
        await client.request(request)
    except StreamdashError as exc:
        if waiting:
            raise
        logger.warning("run %s: could not clear 'waiting for %s': %s", context.run_id, name, exc)


def _mark_waiting_sync(context: RunContext, name: str, client: Client, *, waiting: bool) -> None:
    request = _waiting_body(context, name, waiting)
    try:
        client.request(request)
    except StreamdashError as exc:
        if waiting:
            raise
        logger.warning("run %s: could not clear 'waiting for %s': %s", context.run_id, name, exc)
