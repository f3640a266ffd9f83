"""Response headers. Cross-origin rules for the stream and API URLs: browsers on other origins
may read streams with a bearer token (never with cookies, so ``*`` is safe), and see the
protocol's headers. Every stream/API response also carries ``nosniff`` and a sandboxing CSP, so
a chunk written as ``text/html`` with a ``<script>`` in it comes back byte-exact but inert.
Site pages (dashboard, admin) get the ``STREAMDASH_CSP`` policy and same-origin CORP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from apps.api.protocol import EXPOSED_HEADERS, PROTOCOL_HEADERS

_PREFIXES = ("/ds/", "/api/")
# Stream bodies are data, never a document of this origin: no scripts, no plugins, no framing,
# and a unique origin even if some browser ignored nosniff and rendered one.
API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"


def _decorate(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    response["Access-Control-Allow-Origin"] = "*"
    response["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = API_CSP
    # These URLs skip Django's SecurityMiddleware (streamdash/handlers.py): same HSTS rule here.
    if settings.SECURE_HSTS_SECONDS and request.is_secure():
        response["Strict-Transport-Security"] = f"max-age={settings.SECURE_HSTS_SECONDS}" + (
            "; includeSubDomains" if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS else ""
        )
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
            return _decorate(request, _preflight())
        return _decorate(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        if not request.path.startswith(_PREFIXES):
            return await get_response(request)
        if request.method == "OPTIONS":
            return _decorate(request, _preflight())
        return _decorate(request, await get_response(request))


def _site_headers(response: HttpResponseBase) -> HttpResponseBase:
    if settings.STREAMDASH_CSP and "Content-Security-Policy" not in response:
        response["Content-Security-Policy"] = settings.STREAMDASH_CSP
    if "Cross-Origin-Resource-Policy" not in response:
        response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


class SiteSecurityHeadersMiddleware:
    """CSP and CORP for the dashboard and admin pages (the API sets its own)."""

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
        return _site_headers(self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        return _site_headers(await get_response(request))
