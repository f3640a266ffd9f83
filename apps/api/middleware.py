"""Response headers of the stream and API URLs. Browsers on other origins may read streams with a
bearer token (never with cookies, so ``*`` is safe), and see the protocol's headers. Every
response also carries ``nosniff`` and the sandboxing ``csp.API_POLICY``, so a chunk written as
``text/html`` with a ``<script>`` in it comes back byte-exact but inert."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from apps.api import urls
from apps.api.protocol import EXPOSED_HEADERS, PROTOCOL_HEADERS
from streamdash.core import csp
from streamdash.core.middleware import HookMiddleware


def _decorate(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    response["Access-Control-Allow-Origin"] = "*"
    response["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = csp.API_POLICY
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
        if request.method == "OPTIONS" and request.path_info.startswith(urls.PREFIXES):
            return _preflight()
        return None

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if request.path_info.startswith(urls.PREFIXES):
            return _decorate(request, response)
        return response
