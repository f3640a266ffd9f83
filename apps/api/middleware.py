"""Response headers of the stream and API URLs. Browsers on other origins may read streams with a
bearer token (never with cookies, so ``*`` is safe), and see the protocol's headers. Every
response also carries ``nosniff`` and the sandboxing ``csp.API_POLICY``, so a chunk written as
``text/html`` with a ``<script>`` in it comes back byte-exact but inert."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from apps.api import urls
from apps.api.errors import error_response
from apps.api.protocol import EXPOSED_HEADERS, PROTOCOL_HEADERS
from apps.api.ratelimit import awrite_limited, rate_key, write_limited
from streamdash.core import csp
from streamdash.core.middleware import HookMiddleware


def api_headers(*, secure: bool) -> dict[str, str]:
    """The headers every API and stream response carries."""
    headers = {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": csp.API_POLICY,
    }
    # These URLs skip Django's SecurityMiddleware (streamdash/handlers.py): same HSTS rule here.
    if settings.SECURE_HSTS_SECONDS and secure:
        headers["Strict-Transport-Security"] = f"max-age={settings.SECURE_HSTS_SECONDS}" + (
            "; includeSubDomains" if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS else ""
        )
    return headers


PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": PROTOCOL_HEADERS,
    "Access-Control-Max-Age": "86400",
}


def _decorate(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    for name, value in api_headers(secure=request.is_secure()).items():
        response[name] = value
    return response


def _preflight() -> HttpResponse:
    response = HttpResponse(status=204)
    del response["Content-Type"]
    for name, value in PREFLIGHT_HEADERS.items():
        response[name] = value
    return response


class StreamCorsMiddleware(HookMiddleware):
    def before(self, request: HttpRequest) -> HttpResponseBase | None:
        if request.method == "OPTIONS" and request.path_info.startswith(urls.PREFIXES):
            return _preflight()
        return None

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if request.path_info.startswith(urls.PREFIXES):
            return _decorate(request, response)
        return response


class RateLimitMiddleware(HookMiddleware):
    """The rate limit for API writes that Django serves (the lean app checks its own)."""

    def before(self, request: HttpRequest) -> HttpResponseBase | None:
        if not request.path_info.startswith(urls.PREFIXES):
            return None
        refusal = write_limited(request.method or "GET", _rate_key(request))
        return error_response(refusal) if refusal is not None else None

    async def abefore(self, request: HttpRequest) -> HttpResponseBase | None:
        # A real server's stack is async: there the limit is shared through Redis.
        if not request.path_info.startswith(urls.PREFIXES):
            return None
        refusal = await awrite_limited(request.method or "GET", _rate_key(request))
        return error_response(refusal) if refusal is not None else None


def _rate_key(request: HttpRequest) -> str:
    return rate_key(
        authorization=request.headers.get("Authorization", ""),
        token=request.GET.get("token"),
        client=str(request.META.get("REMOTE_ADDR", "")),
    )
