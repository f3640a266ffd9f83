"""``@task``: a function that runs as a run, with the bookkeeping shared by the worker and
``run_local``: status executing → completed (with output) or failed (with error), after the
run's pipes have finished. The wait is bounded by ``pipe_timeout``, past which the run
completes anyway (the v1 seed's rule, see ``RunContext.finish``); cancelled, the task stops
its pipes and the run is canceled."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

import pydantic
from pydantic_core import to_jsonable_python

from streamdash.sdk._client import AsyncClient, Client
from streamdash.sdk._context import RunContext, current_run, enter, leave
from streamdash.sdk._core import json_request
from streamdash.sdk._defaults import default_async_client, default_client
from streamdash.sdk._exceptions import ConflictError, StreamdashError
from streamdash.sdk._runs import Run, _run_path

__all__ = ["RunHandle", "RunResult", "Task", "registered_tasks", "task"]

P = TypeVar("P")
R = TypeVar("R")
logger = logging.getLogger("streamdash.sdk")
DEFAULT_PIPE_TIMEOUT = 60.0
_registry: dict[str, Task[Any, Any]] = {}


def registered_tasks() -> dict[str, Task[Any, Any]]:
    """Every task defined (imported) in this process, by id."""
    return dict(_registry)


@dataclass(frozen=True)
class RunHandle:
    id: str
    task_id: str
    read_token: str | None = None

    async def retrieve(self, *, client: AsyncClient | None = None) -> Run:
        from streamdash.sdk._runs import runs

        return await runs.retrieve(self.id, client=client)


@dataclass(frozen=True)
class RunResult(Generic[R]):
    id: str
    status: str
    output: R


def _payload_type(fn: Callable[..., Any]) -> Any:
    params = list(inspect.signature(fn).parameters)
    if not params:
        return None
    try:
        return typing.get_type_hints(fn).get(params[0], Any)
    except Exception:  # unresolvable annotations: accept any JSON
        return Any


def _current_run_id() -> str | None:
    context = current_run()
    return context.run_id if context is not None else None


def _error(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


class Task(Generic[P, R]):
    def __init__(
        self,
        task_id: str,
        fn: Callable[[P], Awaitable[R]] | Callable[[P], R],
        *,
        payload: Any = None,
        pipe_timeout: float = DEFAULT_PIPE_TIMEOUT,
    ) -> None:
        self.id = task_id
        self.fn = fn
        self.takes_payload: bool = bool(inspect.signature(fn).parameters)
        self.payload_adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(
            payload if payload is not None else (_payload_type(fn) or Any)
        )
        self.pipe_timeout = pipe_timeout

    def __repr__(self) -> str:
        return f"Task({self.id!r})"

    def _create_request(
        self,
        payload: Any,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        token: bool,
        parent_id: str | None = None,
    ) -> Any:
        body = {
            "task_id": self.id,
            "payload": self.payload_adapter.dump_python(payload, mode="json"),
            "tags": tags or [],
            "metadata": metadata or {},
            "read_token": token,
        }
        parent_id = parent_id or _current_run_id()
        if parent_id is not None:
            body["parent_id"] = parent_id
        return json_request("POST", "/api/v1/runs", body)

    async def trigger(
        self,
        payload: P | None = None,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        read_token: bool = True,
        parent_id: str | None = None,
        client: AsyncClient | None = None,
    ) -> RunHandle:
        """Queue a run of this task; a worker picks it up. Returns at once. Triggered inside
        a task, the new run's parent is the task's run (unless ``parent_id`` says otherwise)."""
        client = client or default_async_client()
        request = self._create_request(payload, tags, metadata, read_token, parent_id)
        run = await client.json(request)
        return RunHandle(run["id"], self.id, run.get("read_token"))

    def trigger_sync(
        self,
        payload: P | None = None,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        read_token: bool = True,
        parent_id: str | None = None,
        client: Client | None = None,
    ) -> RunHandle:
        client = client or default_client()
        run = client.json(self._create_request(payload, tags, metadata, read_token, parent_id))
        return RunHandle(run["id"], self.id, run.get("read_token"))

    async def run_local(
        self, payload: P | None = None, *, client: AsyncClient | None = None
    ) -> RunResult[R]:
        """Run in this process, with the worker's bookkeeping (for scripts and tests)."""
        client = client or default_async_client()
        run = await client.json(self._create_request(payload, None, None, False))
        await client.request(json_request("PATCH", _run_path(run["id"]), {"status": "executing"}))
        return await self.execute(
            run["id"],
            run.get("payload"),
            client=client,
            parent_id=run.get("parent_id"),
            root_id=run.get("root_id"),
        )

    async def execute(
        self,
        run_id: str,
        payload: Any,
        *,
        client: AsyncClient,
        parent_id: str | None = None,
        root_id: str | None = None,
    ) -> RunResult[R]:
        """Run a claimed (executing) run to its final status. Re-raises the task's error.
        Cancelled (the worker does this when the run is canceled), it stops the run's pipes,
        marks the run canceled if it is not final yet, and re-raises ``CancelledError``."""
        context = RunContext(
            run_id, client, task_id=self.id, parent_id=parent_id, root_id=root_id
        )
        token = enter(context)
        try:
            result = await self._call(payload)
            await context.finish(self.pipe_timeout)
        except asyncio.CancelledError:
            await _cancel(context)
            raise
        except BaseException as exc:
            await self._fail(context, exc)
            raise
        finally:
            context.stop_listeners()
            leave(token)
        body = {"status": "completed", "output": to_jsonable_python(result)}
        await _finish(client, run_id, body)
        return RunResult(run_id, "completed", result)

    async def _call(self, payload: Any) -> R:
        args = (self.payload_adapter.validate_python(payload),) if self.takes_payload else ()
        if inspect.iscoroutinefunction(self.fn):
            outcome: Any = self.fn(*args)
        else:
            # A sync task may block for as long as it likes: off the loop, which the worker's
            # other runs, the pipes and the heartbeats share.
            outcome = await asyncio.to_thread(self.fn, *args)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        return typing.cast(R, outcome)

    async def _fail(self, context: RunContext, exc: BaseException) -> None:
        # Let the pipes deliver what they have (briefly), then record the failure.
        with contextlib.suppress(BaseException):
            await context.finish(min(self.pipe_timeout, 5.0))
        try:
            await _finish(
                context.client, context.run_id, {"status": "failed", "error": _error(exc)}
            )
        except StreamdashError:
            logger.exception("could not mark run %s failed", context.run_id)


async def _cancel(context: RunContext) -> None:
    context.canceled.set()
    await context.stop()
    try:
        body = {"status": "canceled"}
        await context.client.request(json_request("PATCH", _run_path(context.run_id), body))
    except ConflictError:
        pass  # already final: canceled by whoever cancelled this task, most likely
    except StreamdashError:
        logger.exception("could not mark run %s canceled", context.run_id)


async def _finish(client: AsyncClient, run_id: str, body: dict[str, Any]) -> None:
    try:
        await client.request(json_request("PATCH", _run_path(run_id), body))
    except ConflictError as exc:  # canceled meanwhile: the run's end was decided elsewhere
        logger.warning("run %s: %s", run_id, exc)


class _TaskDecorator:
    def __init__(self, task_id: str, payload: Any, pipe_timeout: float) -> None:
        self.task_id: str = task_id
        self.payload: Any = payload
        self.pipe_timeout: float = pipe_timeout

    @overload
    def __call__(self, fn: Callable[[P], Awaitable[R]]) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[[P], R]) -> Task[P, R]: ...
    def __call__(self, fn: Callable[[P], Any]) -> Task[P, Any]:
        made: Task[P, Any] = Task(
            self.task_id, fn, payload=self.payload, pipe_timeout=self.pipe_timeout
        )
        _registry[self.task_id] = made
        return made


def task(
    task_id: str, *, payload: Any = None, pipe_timeout: float = DEFAULT_PIPE_TIMEOUT
) -> _TaskDecorator:
    """Register a function as a task: ``@task("generate")``. The payload type is taken from
    ``payload=`` or the first parameter's annotation, and validated by pydantic."""
    return _TaskDecorator(task_id, payload, pipe_timeout)
