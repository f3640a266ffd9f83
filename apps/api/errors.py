"""Domain errors → the JSON error shape of PROTOCOL.md §4. The only place that builds error
JSON, for HTTP responses, SSE ``error`` events and WebSocket ``error`` frames alike: views and
consumers raise ``DomainError``s and render them with ``error_body``."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase

from streamdash.core.errors import DomainError

logger = logging.getLogger(__name__)


def error_body(exc: DomainError) -> dict[str, Any]:
    """``{"code", "message", …facts}``: what goes under ``"error"`` everywhere."""
    return {"code": exc.code, "message": exc.message, **exc.facts}


def error_json(exc: DomainError) -> str:
    return json.dumps(error_body(exc), default=str)


def error_response(exc: DomainError) -> HttpResponse:
    response = HttpResponse(
        json.dumps({"error": error_body(exc)}, default=str),
        status=exc.status,
        content_type="application/json",
    )
    for name, value in exc.headers.items():
        response[name] = value
    return response


View = Callable[..., HttpResponseBase]
# Coroutine, not Awaitable: Django (and its stubs) tell async views by their coroutine.
AsyncView = Callable[..., Coroutine[Any, Any, HttpResponseBase]]


def api_errors(view: View) -> View:
    """Render domain errors raised by a sync view."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return view(request, *args, **kwargs)
        except DomainError as exc:
            return error_response(exc)

    return wrapper


def async_api_errors(view: AsyncView) -> AsyncView:
    """Render domain errors raised by an async view."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return await view(request, *args, **kwargs)
        except DomainError as exc:
            return error_response(exc)

    return wrapper
