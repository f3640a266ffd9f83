"""Token-authenticated WebSocket reads for non-browser readers (and browsers with a token):
``ws/v1/runs/<run>/streams/<key>?token=…[&offset=…|&start_index=N][&timeout=S]``.

No cookies are involved, so this route needs no Origin check (the dashboard's cookie-based
socket has one): the credential is the token (``?token=``) or an ``Authorization: Bearer``
header with a token or an API key. The connection is accepted, then refused with a JSON
``error`` frame and close code ``4000 + HTTP status`` (4401, 4403, 4404, 4410…) when the
credentials or the position are not good, so a client learns why. A run's stream that does not
exist yet is waited for first, as on HTTP (``apps.api.stream_wait``).

Frames (text, JSON): ``{"type": "chunks", "start_index", "next_index", "up_to_date",
"closed", "chunks": [{"index", "data"[, "encoding"]}]}``; then ``{"type": "end", "reason"}``
with ``closed`` (close 1000), ``timeout`` (1000) or ``token_expired`` (4401, at the token's
``exp`` — a reader never outlives its token). Incoming messages are ignored; Daphne's
``--websocket-max-message-size`` / ``--websocket-max-frame-size`` bound what a client may send.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.urls import path

from apps.api.errors import error_body
from apps.api.protocol import read_params
from apps.api.ratelimit import live_reads, rate_key
from apps.api.stream_wait import await_run_stream
from apps.api.targets import is_stream_key
from apps.projects.access import authenticate_credential
from apps.runs.selectors import run_exists
from apps.streams import threads
from apps.streams.layer import NO_CHANNEL_LAYER
from apps.streams.live import check_retained, follow
from apps.streams.services import StreamRef, stream_lookup
from streamdash.core.content import chunk_object
from streamdash.core.errors import DomainError, NotFound, StreamNotFound
from streamdash.core.offsets import NOW

__all__ = ["StreamReaderConsumer", "websocket_urlpatterns"]

TOKEN_EXPIRED = 4401


@dataclass(frozen=True)
class _Opened:
    stream_id: int
    content_type: str
    start: int
    expires_at: float | None  # the token's exp (epoch seconds), None for an API key
    idle_timeout: float | None
    key_id: int | None  # the API key's, so that its revocation ends the connection


def _query(scope: Mapping[str, Any]) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


def _credential(scope: Mapping[str, Any], query: dict[str, list[str]]) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and secret.strip():
                return secret.strip()
    tokens = query.get("token")
    return (tokens[-1] or None) if tokens else None


def _open(scope: Mapping[str, Any]) -> _Opened | None:
    """The read, or None while the run's stream does not exist yet."""
    kwargs = scope["url_route"]["kwargs"]
    run_id, key = kwargs["run_id"], kwargs["key"]
    query = _query(scope)
    principal = authenticate_credential(_credential(scope, query))
    params = read_params(query)
    principal.require("read", run_id=run_id, key=key)
    # Through the selector and service that check names first: a NUL in the URL was a 1011.
    if not run_exists(project=principal.project, run_id=run_id):
        raise NotFound(f"Run {run_id!r} not found.", run=run_id)
    stream = stream_lookup(StreamRef(project_id=principal.project.pk, run_id=run_id, key=key))
    if stream is None:
        if not is_stream_key(key):  # can never be created: nothing to wait for
            raise StreamNotFound(f"Stream {key!r} not found.", stream=key)
        return None
    start = params.start_index(stream.next_index)
    check_retained(stream.first_index, start)
    expires = principal.expires_at.timestamp() if principal.expires_at else None
    return _Opened(
        stream.pk, stream.content_type, start, expires, params.idle_timeout, principal.key_id
    )


class StreamReaderConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = NO_CHANNEL_LAYER  # chunks come through the hub; Redis away is fine
    _pump: asyncio.Task[None] | None = None
    _release: Callable[[], None] | None = None

    async def connect(self) -> None:
        await self.accept()
        try:
            opened = await threads.run_in("read", _open, self.scope)
            if opened is None:
                opened = await self._wait_for_stream()
            credential = _credential(self.scope, _query(self.scope))
            client = (self.scope.get("client") or ("", 0))[0]
            self._release = await live_reads.aacquire(
                rate_key(authorization="", token=credential, client=str(client)), "websocket"
            )
        except DomainError as exc:
            await self._fail(exc)
            return
        self._pump = asyncio.create_task(self._send_chunks(opened))

    async def _wait_for_stream(self) -> _Opened:
        """Wait for a run's stream that does not exist yet, as HTTP live reads do
        (``apps.api.stream_wait``); the socket is open, so no proxy minds the silence."""
        kwargs = self.scope["url_route"]["kwargs"]
        idle_timeout = read_params(_query(self.scope)).idle_timeout
        wait = settings.STREAMDASH_STREAM_WAIT_SECONDS
        await await_run_stream(
            kwargs["run_id"], kwargs["key"], wait=min(wait, idle_timeout or wait)
        )
        opened = await threads.run_in("read", _open, self.scope)
        if opened is None:
            raise StreamNotFound(f"Stream {kwargs['key']!r} not found.", stream=kwargs["key"])
        if read_params(_query(self.scope)).offset == NOW:
            # "From now" was asked before the stream existed: all of it is new to this reader.
            opened = dataclasses.replace(opened, start=0)
        return opened

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Readers have nothing to say; what they send is ignored."""

    async def disconnect(self, code: int) -> None:
        if self._release is not None:
            self._release()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump

    async def _fail(self, exc: DomainError) -> None:
        await self.send(json.dumps({"type": "error", "error": error_body(exc)}, default=str))
        await self.close(code=4000 + exc.status)

    async def _send_chunks(self, opened: _Opened) -> None:
        token_left = None if opened.expires_at is None else opened.expires_at - time.time()
        closed = False
        try:
            async for batch in follow(
                opened.stream_id,
                opened.start,
                idle_timeout=opened.idle_timeout,
                max_seconds=None if token_left is None else max(0.0, token_left),
                key_id=opened.key_id,
            ):
                if batch is None:
                    continue
                closed = batch.closed
                chunks = b",".join(
                    chunk_object({"index": c.index}, c.data, opened.content_type)
                    for c in batch.chunks
                )
                head = {
                    "type": "chunks",
                    "start_index": batch.chunks[0].index if batch.chunks else batch.next_index,
                    "next_index": batch.next_index,
                    "up_to_date": batch.up_to_date,
                    "closed": batch.closed,
                }
                frame = json.dumps(head)[:-1].encode() + b',"chunks":[' + chunks + b"]}"
                await self.send(frame.decode("utf-8"))
        except DomainError as exc:
            await self._fail(exc)
            return
        expired = opened.expires_at is not None and time.time() >= opened.expires_at - 0.05
        if closed:
            reason, code = "closed", 1000
        elif expired:
            reason, code = "token_expired", TOKEN_EXPIRED
        else:
            reason, code = "timeout", 1000
        await self.send(json.dumps({"type": "end", "reason": reason}))
        await self.close(code=code)


# The ignore: django-stubs' path() takes views only, not the ASGI apps Channels routes. Any:
# URLRouter's stubs want a pattern type that exists only in the stubs.
websocket_urlpatterns: list[Any] = [
    path("ws/v1/runs/<str:run_id>/streams/<str:key>", StreamReaderConsumer.as_asgi()),  # type: ignore[arg-type]
]
