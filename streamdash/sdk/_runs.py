"""Runs, seen from a backend: retrieve, cancel, and ``subscribe`` to a run and its streams;
plus ``auth`` (public tokens) and the v1 ``metadata`` helpers."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import quote

import pydantic

from streamdash.sdk._client import AsyncClient, Client
from streamdash.sdk._context import RunContext, current_run
from streamdash.sdk._core import ChunkEvent, RunEvent, SubscribePlan, json_request
from streamdash.sdk._defaults import default_async_client, default_client
from streamdash.sdk._exceptions import ConfigurationError
from streamdash.sdk._retry import OnRetry
from streamdash.sdk._streams import _untyped, definition_for

__all__ = ["Auth", "Metadata", "Run", "RunPart", "Runs", "StreamPart", "auth", "metadata", "runs"]

T = TypeVar("T")
FINAL_STATUSES = frozenset({"completed", "failed", "canceled", "expired"})


class Run(pydantic.BaseModel):
    model_config: ClassVar[pydantic.ConfigDict] = pydantic.ConfigDict(extra="allow")

    id: str
    task_id: str
    status: str
    payload: Any = None
    output: Any = None
    error: Any = None
    metadata: dict[str, Any] = {}
    tags: list[str] = []
    parent_id: str | None = None  # the run that triggered this one
    root_id: str | None = None  # the top of the tree (None for a run with no parent)
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    waiting_for: str | None = None  # the input the task waits for (``wait()``), if any

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class RunPart:
    run: Run
    type: Literal["run"] = "run"


@dataclass(frozen=True)
class StreamPart:
    type: str  # the stream id
    index: int
    chunk: Any  # validated by the stream's type when it was defined in this process


def _run_path(run_id: str) -> str:
    return f"/api/v1/runs/{quote(run_id, safe='')}"


def _part(event: RunEvent | ChunkEvent) -> RunPart | StreamPart:
    if isinstance(event, RunEvent):
        return RunPart(Run.model_validate(event.run))
    definition = definition_for(event.stream)
    chunk = definition.decode(event.data, event.index) if definition else event.data
    return StreamPart(event.stream, event.index, chunk)


class Subscription:
    """``async for run in subscription`` yields the run at each change;
    ``subscription.with_streams()`` also yields every chunk of every stream, in order."""

    def __init__(
        self, run_id: str, client: AsyncClient | None, on_retry: OnRetry | None = None
    ) -> None:
        self.run_id = run_id
        self.client = client
        self.on_retry = on_retry

    def __aiter__(self) -> AsyncIterator[Run]:
        return self._runs()

    async def _runs(self) -> AsyncIterator[Run]:
        async for part in self.with_streams():
            if isinstance(part, RunPart):
                yield part.run

    async def with_streams(self) -> AsyncIterator[RunPart | StreamPart]:
        client = self.client or default_async_client()
        async for event in client.follow(SubscribePlan(run_id=self.run_id), on_retry=self.on_retry):
            yield _part(event)


class SyncSubscription:
    def __init__(self, run_id: str, client: Client | None, on_retry: OnRetry | None = None) -> None:
        self.run_id = run_id
        self.client = client
        self.on_retry = on_retry

    def __iter__(self) -> Iterator[Run]:
        for part in self.with_streams():
            if isinstance(part, RunPart):
                yield part.run

    def with_streams(self) -> Iterator[RunPart | StreamPart]:
        client = self.client or default_client()
        for event in client.follow(SubscribePlan(run_id=self.run_id), on_retry=self.on_retry):
            yield _part(event)


class Runs:
    def current(self) -> RunContext | None:
        """The run this task is executing, or None outside a task."""
        return current_run()

    async def retrieve(self, run_id: str, *, client: AsyncClient | None = None) -> Run:
        client = client or default_async_client()
        return Run.model_validate(await client.json(json_request("GET", _run_path(run_id))))

    def retrieve_sync(self, run_id: str, *, client: Client | None = None) -> Run:
        client = client or default_client()
        return Run.model_validate(client.json(json_request("GET", _run_path(run_id))))

    async def cancel(self, run_id: str, *, client: AsyncClient | None = None) -> Run:
        """Cancel the run: its streams close, and the worker executing it stops the task and
        its pipes (within its ``heartbeat``, a second by default)."""
        client = client or default_async_client()
        body = {"status": "canceled"}
        return Run.model_validate(await client.json(json_request("PATCH", _run_path(run_id), body)))

    def cancel_sync(self, run_id: str, *, client: Client | None = None) -> Run:
        client = client or default_client()
        body = {"status": "canceled"}
        return Run.model_validate(client.json(json_request("PATCH", _run_path(run_id), body)))

    def subscribe(
        self, run_id: str, *, client: AsyncClient | None = None, on_retry: OnRetry | None = None
    ) -> Subscription:
        return Subscription(run_id, client, on_retry)

    def subscribe_sync(
        self, run_id: str, *, client: Client | None = None, on_retry: OnRetry | None = None
    ) -> SyncSubscription:
        return SyncSubscription(run_id, client, on_retry)


def _token_request(scopes: list[str], ttl: int) -> Any:
    return json_request("POST", "/api/v1/tokens", {"scopes": list(scopes), "ttl": int(ttl)})


class Auth:
    async def create_public_token(
        self, *, scopes: list[str], ttl: int = 900, client: AsyncClient | None = None
    ) -> str:
        """A short-lived token for browsers, e.g. ``scopes=["read:runs:<run>"]``."""
        client = client or default_async_client()
        return str((await client.json(_token_request(scopes, ttl)))["token"])

    def create_public_token_sync(
        self, *, scopes: list[str], ttl: int = 900, client: Client | None = None
    ) -> str:
        client = client or default_client()
        return str(client.json(_token_request(scopes, ttl))["token"])


class Metadata:
    """The older (v1) API, on top of the same machinery."""

    def stream(self, key: str, source: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
        """Tee ``source`` into the current run's stream ``key``; returns the local iterator."""
        return _untyped(key).pipe(source).stream

    async def set(self, key: str, value: Any, *, run_id: str | None = None) -> None:
        """Set one key of the run's metadata (``None`` removes it)."""
        context = current_run()
        run_id = run_id or (context.run_id if context else None)
        if run_id is None:
            raise ConfigurationError("No run: pass run_id=, or call this inside a task.")
        client = context.client if context else default_async_client()
        await client.request(json_request("PATCH", _run_path(run_id), {"metadata": {key: value}}))


runs: Runs = Runs()
auth: Auth = Auth()
metadata: Metadata = Metadata()
