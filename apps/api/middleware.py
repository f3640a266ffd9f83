"""Cross-origin rules for the stream and API URLs: browsers on other origins may read streams
with a bearer token (never with cookies, so ``*`` is safe), and see the protocol's headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from apps.api.protocol import EXPOSED_HEADERS, PROTOCOL_HEADERS

_PREFIXES = ("/ds/", "/api/")


def _decorate(response: HttpResponseBase) -> HttpResponseBase:
    response["Access-Control-Allow-Origin"] = "*"
    response["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _preflight() -> HttpResponse:
    response = HttpResponse(status=204)
    del response["Content-Type"]
    response["Access-Control-Allow-Methods"] = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
    response["Access-Control-Allow-Headers"] = PROTOCOL_HEADERS
    response["Access-Control-Max-Age"] = "86400"
    return response


class StreamCorsMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        if not request.path.startswith(_PREFIXES):
            return self.get_response(request)
        if request.method == "OPTIONS":
            return _decorate(_preflight())
        return _decorate(self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        if not request.path.startswith(_PREFIXES):
            return await get_response(request)
        if request.method == "OPTIONS":
            return _decorate(_preflight())
        return _decorate(await get_response(request))
