"""Rendering the metrics of ``streamdash.core.metrics`` for Prometheus, and counting responses.

- :func:`exposition`: the text format, summed over every worker of ``serve --workers N`` when
  ``PROMETHEUS_MULTIPROC_DIR`` is set (prometheus-client's multiprocess collector reads each
  worker's files), else this process's registry.
- :func:`multiprocess_dir` / :func:`process_dead`: the supervisor's side of multiprocess mode.
- :func:`counting`: a wrapper of ASGI `send` counting every HTTP response by status and, for
  errors in the JSON error shape (PROTOCOL.md §4), by code. The code is read from the body of
  error responses only, so a successful response costs one dictionary lookup.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from streamdash.core import metrics
from streamdash.core.sendchain import Wrapper

__all__ = ["CONTENT_TYPE", "counting", "exposition", "multiprocess_dir", "process_dead"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_ENV = "PROMETHEUS_MULTIPROC_DIR"


def exposition() -> bytes:
    path = os.environ.get(_ENV)
    if not path:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    # prometheus_client.multiprocess has no annotations.
    multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[dict[str, str]]:
    """A fresh directory for the workers' metric files, as the environment to start them with;
    removed afterwards (counters start from zero with the server, as in one process)."""
    path = tempfile.mkdtemp(prefix="streamdash-metrics-")
    try:
        yield {**os.environ, _ENV: path}
    finally:
        shutil.rmtree(path, ignore_errors=True)


def process_dead(pid: int, env: Mapping[str, str]) -> None:
    """Drop a dead worker's live gauges (its readers are gone); its counters stay summed."""
    path = env.get(_ENV)
    if path:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


def _error_code(body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return str(error["code"])[:64] if isinstance(error, dict) else ""
    except (ValueError, KeyError, TypeError):
        return ""


def counting(send: Send) -> Send:
    """``send`` that counts the response in ``streamdash_responses_total{status,code}`` (the
    error's code read from a JSON error body's first part). Only while metrics are on."""
    return _Counting(send)


class _Counting(Wrapper):
    # ``done`` once the response is counted: a streamed body's later parts may skip it
    # (``sendchain.bare``).
    status = 0
    is_json = False

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = status = int(message["status"])
            if status < 400:
                metrics.response(status, "")
                self.done = True
            else:
                self.is_json = any(
                    name.lower() == b"content-type" and value.startswith(b"application/json")
                    for name, value in message.get("headers", ())
                )
                if not self.is_json:
                    metrics.response(status, "")
                    self.done = True
        elif kind == "http.response.body" and self.status >= 400 and self.is_json:
            self.is_json = False  # counted once, from the first part of the body
            self.done = True
            metrics.response(self.status, _error_code(message.get("body", b"")))
        await self.inner(message)
