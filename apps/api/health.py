"""``/healthz`` and ``/readyz`` for load balancers and ``manage.py serve``.

The ASGI entry (``streamdash.entry``) answers both in front of everything else
(``answer_for``, ``serve``): no Django request, no credentials, no ``ALLOWED_HOSTS`` check (a
load balancer probes by address).

- ``GET /healthz``: 200 ``{"status": "ok"}`` whenever the process's event loop answers.
  Liveness: restart the process when this fails.
- ``GET /readyz``: 200 ``{"status": "ready", "checks": {…: "ok"}}`` when the database answers
  and is migrated and the channel layer (Redis, with ``REDIS_URL``) answers; otherwise 503 with
  the failing checks and an ``unavailable`` error in the usual shape. Readiness: send no
  traffic while it fails; it passes again by itself when the dependency is back. The checks
  are ``apps/streams/readiness.py``: each bounded by a second, none revealing more than ``ok``
  or ``failing`` (the reasons go to the log).

The same checks are listed whatever the configuration (a server without Redis reports its
in-memory layer as ``ok``), so an answer says nothing about how the server is set up.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from apps.api.errors import error_body
from apps.streams import readiness
from streamdash.core.errors import MethodNotAllowed, Unavailable

__all__ = ["answer_for", "serve"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

RETRY_AFTER_SECONDS = 5


async def _healthz() -> tuple[int, dict[str, Any], dict[str, str]]:
    return 200, {"status": "ok"}, {}


async def _readyz() -> tuple[int, dict[str, Any], dict[str, str]]:
    results = await readiness.check_all()
    checks = {name: "ok" if passed else "failing" for name, passed in results.items()}
    if all(results.values()):
        return 200, {"status": "ready", "checks": checks}, {}
    failing = ", ".join(name for name, passed in results.items() if not passed)
    error = Unavailable(
        f"Not ready: {failing} failing; retry in {RETRY_AFTER_SECONDS} seconds.",
        retry_after=RETRY_AFTER_SECONDS,
    )
    body = {"status": "unavailable", "checks": checks, "error": error_body(error)}
    return 503, body, {"Retry-After": str(RETRY_AFTER_SECONDS)}


_ANSWERS: dict[str, Callable[[], Awaitable[tuple[int, dict[str, Any], dict[str, str]]]]] = {
    "/healthz": _healthz,
    "/readyz": _readyz,
}


Answer = Callable[[], Awaitable[tuple[int, dict[str, Any], dict[str, str]]]]


def answer_for(path: str) -> Answer | None:
    """The check a request's path (``lean.route_path``) names, if it names one."""
    return _ANSWERS.get(path)


async def serve(answer: Answer, scope: Scope, send: Send) -> None:
    """Answer one check: GET and HEAD run it, any other method gets a 405."""
    method = scope["method"]
    if method in ("GET", "HEAD"):
        status, body, headers = await answer()
    else:
        refusal = MethodNotAllowed(
            f"Method {method} is not allowed here; use GET, HEAD.", allowed=["GET", "HEAD"]
        )
        status, body, headers = 405, {"error": error_body(refusal)}, {"Allow": "GET, HEAD"}
    await _send(send, status, body, headers, head=method == "HEAD")


async def _send(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str], *, head: bool
) -> None:
    content = json.dumps(body).encode()
    all_headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(content)),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        **headers,
    }
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.lower().encode(), v.encode()) for k, v in all_headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else content})
