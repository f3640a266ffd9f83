"""Domain errors → the JSON error shape of PROTOCOL.md §4. The only place that builds error
JSON, for HTTP responses, SSE ``error`` events and WebSocket ``error`` frames alike: views and
consumers raise ``DomainError``s and render them with ``error_body``.

The view decorators also answer what no view expected in that shape, never with Django's HTML
page: a database that is away is a 503 ``unavailable`` with ``Retry-After``; anything else is a
500 ``internal_error``, logged here with its traceback (the answer carries no detail)."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotAllowed

from streamdash.core import requestid
from streamdash.core.errors import (
    BadRequest,
    DomainError,
    InternalError,
    MethodNotAllowed,
    TooLarge,
    Unavailable,
)

logger = logging.getLogger(__name__)

# Long enough for a restarting database or a released SQLite lock, short for a client's retry.
RETRY_AFTER_SECONDS = 5


def error_body(exc: DomainError) -> dict[str, Any]:
    """``{"code", "message", …facts, "request_id"}``: what goes under ``"error"`` everywhere.
    ``request_id`` is the id the log lines of this request carry (streamdash/core/requestid.py)."""
    body = {"code": exc.code, "message": exc.message, **exc.facts}
    request_id = requestid.current()
    if request_id is not None:
        body["request_id"] = request_id
    return body


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


def unexpected_error(where: str, exc: Exception) -> DomainError:
    """The domain error that answers an exception a view did not turn into one; ``where`` is
    the method and path (the path only: a query may hold a token)."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return TooLarge(f"The request body is larger than {limit} bytes.", limit=limit)
    if isinstance(exc, SuspiciousOperation):
        logger.warning("Refused %s: %s", where, exc)
        return BadRequest("The request was refused as malformed.")
    # Django's wrappers, and psycopg's own from the async append pool.
    if isinstance(exc, OperationalError | InterfaceError | psycopg.OperationalError):
        logger.warning("Database unavailable during %s", where, exc_info=exc)
        return Unavailable(
            f"The database is unavailable; retry in {RETRY_AFTER_SECONDS} seconds.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            retry_after=RETRY_AFTER_SECONDS,
        )
    logger.error("Unexpected error during %s", where, exc_info=exc)
    return InternalError("The server failed to answer this request; the error has been logged.")


View = Callable[..., HttpResponseBase]
# Coroutine, not Awaitable: Django (and its stubs) tell async views by their coroutine.
AsyncView = Callable[..., Coroutine[Any, Any, HttpResponseBase]]


def _json_not_allowed(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """Django's method decorators (``require_POST``…) answer an empty 405 page; put above them,
    the decorator below answers the same refusal in the JSON shape, with its ``Allow``."""
    if not isinstance(response, HttpResponseNotAllowed):
        return response
    allow = response["Allow"]
    return error_response(
        MethodNotAllowed(
            f"Method {request.method} is not allowed here; use {allow}.",
            headers={"Allow": allow},
            allowed=allow.split(", "),
        )
    )


def api_errors(view: View) -> View:
    """Render domain errors raised by a sync view, and anything else as above. Put it above
    ``require_http_methods`` so that a refused method is JSON too."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return _json_not_allowed(request, view(request, *args, **kwargs))
        except DomainError as exc:
            return error_response(exc)
        except Exception as exc:
            return error_response(unexpected_error(f"{request.method} {request.path}", exc))

    return wrapper


def async_api_errors(view: AsyncView) -> AsyncView:
    """Render domain errors raised by an async view, and anything else as above."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return await view(request, *args, **kwargs)
        except DomainError as exc:
            return error_response(exc)
        except Exception as exc:
            return error_response(unexpected_error(f"{request.method} {request.path}", exc))

    return wrapper
