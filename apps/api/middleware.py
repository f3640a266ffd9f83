"""Response headers. Cross-origin rules for the stream and API URLs: browsers on other origins
may read streams with a bearer token (never with cookies, so ``*`` is safe), and see the
protocol's headers. Every stream/API response also carries ``nosniff`` and a sandboxing CSP, so
a chunk written as ``text/html`` with a ``<script>`` in it comes back byte-exact but inert.
Site pages (dashboard, admin) get the ``STREAMDASH_CSP`` policy and same-origin CORP."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from apps.api.protocol import EXPOSED_HEADERS, PROTOCOL_HEADERS
from streamdash.core.middleware import HookMiddleware

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


class StreamCorsMiddleware(HookMiddleware):
    def before(self, request: HttpRequest) -> HttpResponseBase | None:
        if request.method == "OPTIONS" and request.path.startswith(_PREFIXES):
            return _preflight()
        return None

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        return _decorate(request, response) if request.path.startswith(_PREFIXES) else response


def _site_headers(response: HttpResponseBase) -> HttpResponseBase:
    if settings.STREAMDASH_CSP and "Content-Security-Policy" not in response:
        response["Content-Security-Policy"] = settings.STREAMDASH_CSP
    if "Cross-Origin-Resource-Policy" not in response:
        response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


class SiteSecurityHeadersMiddleware(HookMiddleware):
    """CSP and CORP for the dashboard and admin pages (the API sets its own)."""

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        return _site_headers(response)
