"""Content-Security-Policy for the dashboard's HTML.

Chunk contents are escaped by the templates; the CSP is the second wall: no inline script, no
eval (htmx's ``hx-on``/``js:`` features stay off), no inline styles, no plugins, no framing,
requests only to this origin. It is stricter than the site-wide ``STREAMDASH_CSP`` (which the
admin needs, with inline styles) and set first, so that policy leaves it alone. Responses that
set their own policy (raw chunk downloads) keep it.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase

from streamdash.core.middleware import HookMiddleware

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_SKIP_PREFIXES = ("/admin/", "/api/", "/ds/")


def _add_policy(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    if (
        "Content-Security-Policy" not in response
        and response.get("Content-Type", "").startswith("text/html")
        and not request.path.startswith(_SKIP_PREFIXES)
    ):
        response["Content-Security-Policy"] = POLICY
    return response


class ContentSecurityPolicyMiddleware(HookMiddleware):
    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        return _add_policy(request, response)
