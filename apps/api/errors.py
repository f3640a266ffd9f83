"""Domain errors → the JSON error shape of PROTOCOL.md §4. The only place that builds error
JSON: views raise ``DomainError``s and ``api_errors`` renders them."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from streamdash.core.errors import DomainError

logger = logging.getLogger(__name__)


def error_response(exc: DomainError) -> HttpResponse:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message, **exc.facts}
    response = HttpResponse(
        json.dumps({"error": body}, default=str),
        status=exc.status,
        content_type="application/json",
    )
    for name, value in exc.headers.items():
        response[name] = value
    return response


def internal_error_response() -> HttpResponse:
    return HttpResponse(
        json.dumps(
            {"error": {"code": "internal_error", "message": "The server failed; try again."}}
        ),
        status=500,
        content_type="application/json",
    )


View = Callable[..., HttpResponse]
AsyncView = Callable[..., Awaitable[HttpResponse]]


def api_errors(view: View) -> View:
    """Render domain errors raised by a sync view."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except DomainError as exc:
            return error_response(exc)

    return wrapper


def async_api_errors(view: AsyncView) -> AsyncView:
    """Render domain errors raised by an async view."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return await view(request, *args, **kwargs)
        except DomainError as exc:
            return error_response(exc)

    return wrapper
