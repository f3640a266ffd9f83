"""``streambench inprocess``: server CPU per stream request with no network and no daphne.

The ASGI application (``streamdash.asgi.application``, the lean path in front of Django) is
called directly in this process, so the figure is the application's own CPU: what the lean
path's docstring quotes (HEAD 6.0 → 0.8 ms, one-chunk append 5.7 → 1.7 ms, 404 8.5 → 0.5 ms on
PostgreSQL). Every request is checked for the status it should get.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from asgiref.sync import sync_to_async

Message = dict[str, Any]

_JSON = [(b"content-type", b"application/json")]


class Answer(NamedTuple):
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


async def call(
    app: Any,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    query: bytes = b"",
    *,
    server: bool = True,
) -> Answer:
    """One HTTP request to an ASGI application in this process, as daphne would make it (the
    tests that call the application directly use it too). ``server=False`` leaves ``server``
    out of the scope, as test clients do, so nothing that starts with a real server starts."""
    scope: Message = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5555),
    }
    if server:
        scope["server"] = ("127.0.0.1", 8000)
    sent = False
    start: Message = {}
    parts: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # The client stays until the response is sent (Django listens for it going).
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        else:
            parts.append(message.get("body", b""))

    await app(scope, receive, send)
    return Answer(int(start["status"]), list(start.get("headers", [])), b"".join(parts))


async def _run(requests: int, write: Callable[[str], None]) -> dict[str, Any]:
    from apps.projects.services import project_create
    from apps.runs.services import run_create
    from streamdash.asgi import application

    project, secret = await sync_to_async(project_create)(name=f"inproc-{uuid.uuid4().hex[:8]}")
    run = await sync_to_async(run_create)(project=project, task_id="bench")
    auth = [(b"authorization", f"Bearer {secret}".encode()), (b"host", b"127.0.0.1")]
    path = f"/api/v1/runs/{run.id}/streams/ai"
    # The catch-up GET reads a stream of its own: the appends below would otherwise grow the
    # stream it reads from 20 chunks to hundreds while it is measured.
    read = f"/api/v1/runs/{run.id}/streams/read"
    for url in (path, read):
        assert (await call(application, "PUT", url, auth + _JSON)).status == 201
        for n in range(20):
            body = b'{"delta": "hello %d"}' % n
            assert (await call(application, "POST", url, auth + _JSON, body)).status == 204
    cases: dict[str, tuple[str, str, list[tuple[bytes, bytes]], bytes, bytes, int]] = {
        "HEAD": ("HEAD", path, auth, b"", b"", 200),
        "append 1 chunk": ("POST", path, auth + _JSON, b'{"delta": "x"}', b"", 204),
        "catch-up GET (20 chunks)": ("GET", read, auth, b"", b"offset=-1", 200),
        "404 (no such run)": ("GET", "/api/v1/runs/nope/streams/x", auth, b"", b"", 404),
    }
    figures: dict[str, Any] = {}
    for name, (method, url, headers, body, query, expected) in cases.items():
        for _ in range(20):
            await call(application, method, url, headers, body, query)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(requests):
            status = (await call(application, method, url, headers, body, query)).status
            assert status == expected, (name, status)
        cpu_ms = (time.process_time() - cpu) / requests * 1000
        wall_ms = (time.perf_counter() - wall) / requests * 1000
        figures[name] = {"cpu_ms": round(cpu_ms, 3), "wall_ms": round(wall_ms, 3)}
        write(f"{name:30s} CPU {cpu_ms:6.2f} ms/request   wall {wall_ms:6.2f} ms/request")
    return {"scenario": "inprocess", "requests": requests, "figures": figures}


def run(requests: int, write: Callable[[str], None]) -> dict[str, Any]:
    write(f"{requests} requests of each kind to the ASGI application, in this process")
    return asyncio.run(_run(requests, write))
