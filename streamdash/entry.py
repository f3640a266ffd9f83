"""The ASGI application's front: what every request gets, in one call.

A request used to pass nine nested ASGI wrappers before its handler (``RequestId``,
``HealthChecks``, Channels' ``ProtocolTypeRouter``, ``ResponseMetrics``, ``Heartbeat``,
``PurgeScheduler``, ``RequestBodyLimit``, ``LeanStreams``, ``PathDispatcher``): nine awaits,
most of them re-reading the scope, and the routing path worked out three times. ``Entry`` does
the same things once each, in the same order:

1. an id for every HTTP and WebSocket request (``X-Request-ID`` in, or a new one; in the log
   lines, the error bodies and the response: ``streamdash.core.requestid``);
2. WebSocket to Channels' routes (``websocket``);
3. ``/healthz`` and ``/readyz`` answered before anything else (``apps.api.health``; not counted
   in the response metrics, as before);
4. the process-wide loops (System heartbeat, purge schedule) started by a real server's first
   request on each event loop (``streamdash.core.onserve``);
5. every other response counted (``metrics_export.counting``, while metrics are on) and the
   body bounded as it is read (``apps.api.bodylimit.limited``);
6. the stream URLs to the lean path (``apps.api.lean``), the rest of ``/api/`` to ``api``
   (``ApiASGIHandler``), the site (dashboard, admin) to ``site`` (Django's handler).

What the fold saves is tens of microseconds per request: under the noise of the loaded machine
it was measured on (load 2 to 5 on 2 cores), so its figures are those of the whole path, in
``apps.streams.pg_append`` and ``apps.api.live_views`` (``streambench inprocess``: one-chunk
append 2.75–3.00 → 0.72–1.28 ms of CPU, HEAD 0.80–1.30 → 0.49–0.62 ms).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any

from apps.api import bodylimit, health, lean
from apps.api.urls import PREFIXES
from streamdash.core import metrics, requestid
from streamdash.core.metrics_export import counting
from streamdash.core.onserve import OnServe

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Any, Any, Any], Awaitable[None]]


class Entry:
    """``Entry(api=…, site=…, websocket=…, on_serve=OnServe(…))``: see the module."""

    def __init__(self, *, api: App, site: App, websocket: App, on_serve: OnServe) -> None:
        self.api = api
        self.site = site
        self.websocket = websocket
        self.on_serve = on_serve

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            raise ValueError(f"No application configured for scope type {kind!r}")
        request_id = requestid.incoming(scope)
        token = requestid.enter(request_id)
        try:
            if kind == "websocket":
                await self.websocket(scope, receive, send)
                return
            send = requestid.answering(send, request_id)
            path = lean.route_path(scope)
            answer = health.answer_for(path)
            if answer is not None:
                await health.serve(answer, scope, send)
                return
            self.on_serve(scope)
            if metrics.enabled():
                send = counting(send)
            await bodylimit.limited(partial(self._http, path), scope, receive, send)
        finally:
            requestid.leave(token)

    async def _http(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        handler = lean.match(path)
        if handler is not None:
            await lean.serve(handler, scope, receive, send)
        elif path.startswith(PREFIXES):
            await self.api(scope, receive, send)
        else:
            await self.site(scope, receive, send)
