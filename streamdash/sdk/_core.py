"""The I/O-free core shared by the sync and async clients: requests as values, answers turned
into results or exceptions, and the resumable live reads as small state machines (``plan``s)
that say which request to send next and what each server-sent event means."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote

from streamdash.sdk._exceptions import APIError, error_for
from streamdash.sdk._sse import ServerSentEvent

__all__ = [
    "JSON_TYPE",
    "ReadPlan",
    "Request",
    "SubscribePlan",
    "error_from",
    "json_request",
    "offset_for",
    "stream_path",
]

T = TypeVar("T")
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None


def json_request(method: str, path: str, body: Any = None) -> Request:
    content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": JSON_TYPE} if content is not None else {}
    return Request(method, path, headers=headers, content=content)


def offset_for(index: int) -> str:
    """The Durable Streams offset of chunk ``index`` (PROTOCOL.md §2)."""
    return f"{'0' * 16}_{index:016d}"


def stream_path(run_id: str, key: str) -> str:
    return f"/api/v1/runs/{quote(run_id, safe='')}/streams/{quote(key, safe='')}"


def fork_request(*, run_id: str, key: str, at_index: int, into_run: str, new_key: str) -> Request:
    """Create ``into_run``'s stream ``new_key`` as a fork of ``run_id``'s stream ``key`` at
    ``at_index`` (the protocol's Stream-Forked-From and Stream-Fork-Offset). Idempotent."""
    headers = {
        "Content-Type": JSON_TYPE,
        "Stream-Forked-From": stream_path(run_id, key),
        "Stream-Fork-Offset": offset_for(at_index),
    }
    return Request("PUT", stream_path(into_run, new_key), headers=headers)


def error_from(status: int, headers: Mapping[str, str], body: bytes) -> APIError:
    """The exception for a 4xx/5xx answer, from PROTOCOL.md §4's JSON when there is one."""
    code, message, facts = f"http_{status}", body[:200].decode("utf-8", "replace"), {}
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = dict(payload["error"])
        code = str(error.pop("code", code))
        message = str(error.pop("message", message))
        facts = error
    lowered = {k.lower(): v for k, v in headers.items()}
    return error_for(status, code, message or f"HTTP {status}", facts, lowered)


class _Clock(Protocol):
    def __call__(self) -> float: ...


class _Plan(Protocol[T]):
    """What a resumable live read must tell the driver (``Client.follow``)."""

    done: bool

    def request(self) -> Request | None: ...
    def on_event(self, event: ServerSentEvent) -> list[T]: ...
    def on_end(self) -> None: ...


class ReadPlan(Generic[T]):
    """Follow one stream from ``start_index`` until it is closed (or ``timeout`` seconds pass
    with no new chunk). The position is counted from the chunks received, so a connection cut
    between a data frame and its control frame resumes at exactly the next chunk. A stream the
    run has not created yet is waited for (``_retry.ReconnectPolicy``), within ``timeout``."""

    def __init__(
        self,
        *,
        run_id: str,
        key: str,
        start_index: int,
        timeout: float | None,
        decode: Callable[[Any, int], T],
        clock: _Clock = time.monotonic,
    ) -> None:
        self.path = stream_path(run_id, key)
        self.key = key
        self.index = self.start_index = start_index
        self.timeout = timeout
        self.decode = decode
        self.clock = clock
        self.last_progress = clock()
        self.done = False
        self.closed = False

    def _remaining(self) -> float | None:
        if self.timeout is None:
            return None
        return self.timeout - (self.clock() - self.last_progress)

    def request(self) -> Request | None:
        remaining = self._remaining()
        if remaining is not None and remaining <= 0:
            self.done = True
            return None
        params = {"live": "sse", "offset": offset_for(self.index)}
        if remaining is not None:
            params["timeout"] = f"{max(remaining, 0.001):.3f}"
        return Request("GET", self.path, params=params)

    def on_event(self, event: ServerSentEvent) -> list[T]:
        if event.event == "data":
            values = json.loads(event.data)
            if not isinstance(values, list):
                values = [values]
            items = [self.decode(value, self.index + n) for n, value in enumerate(values)]
            self.index += len(values)
            if values:
                self.last_progress = self.clock()
            return items
        if event.event == "control":
            control = json.loads(event.data)
            if control.get("streamClosed"):
                self.done = self.closed = True
        elif event.event == "error":
            raise _event_error(event.data)
        return []

    def on_end(self) -> None:
        remaining = self._remaining()
        if remaining is not None and remaining <= 0.05:
            self.done = True


@dataclass(frozen=True)
class RunEvent:
    run: dict[str, Any]


@dataclass(frozen=True)
class ChunkEvent:
    stream: str
    index: int
    data: Any


class SubscribePlan:
    """Follow a run and all its streams (``/subscribe``) until the run is final and every
    stream has been delivered to its close; resumes with the per-stream positions."""

    def __init__(self, *, run_id: str) -> None:
        self.path = f"/api/v1/runs/{quote(run_id, safe='')}/subscribe"
        self.positions: dict[str, int] = {}
        self.closed: set[str] = set()
        self.final = False
        self.done = False

    def request(self) -> Request:
        params = {}
        if self.positions:
            params["positions"] = ",".join(f"{k}={v}" for k, v in sorted(self.positions.items()))
        return Request("GET", self.path, params=params)

    def on_event(self, event: ServerSentEvent) -> list[RunEvent | ChunkEvent]:
        if event.event == "run":
            run = json.loads(event.data)
            self.final = run.get("status") in {"completed", "failed", "canceled", "expired"}
            return [RunEvent(run)]
        if event.event == "chunk":
            chunk = json.loads(event.data)
            key, index = str(chunk["stream"]), int(chunk["index"])
            if index < self.positions.get(key, 0):
                return []  # delivered before a reconnect
            self.positions[key] = index + 1
            return [ChunkEvent(key, index, chunk.get("data"))]
        if event.event == "stream_closed":
            self.closed.add(str(json.loads(event.data)["stream"]))
        elif event.event == "error":
            raise _event_error(event.data)
        return []

    def on_end(self) -> None:
        self.done = self.final and set(self.positions) <= self.closed


def _event_error(data: str) -> APIError:
    try:
        error = dict(json.loads(data))
    except (ValueError, TypeError):
        error = {"message": data}
    code = str(error.pop("code", "error"))
    message = str(error.pop("message", "The server ended the read with an error."))
    status = 410 if code == "gone" else 404 if code.endswith("not_found") else 400
    return error_for(status, code, message, error, {})
