"""Security headers of the site's pages (dashboard, admin, static files): the CSP chosen by
``streamdash.core.csp`` and same-origin CORP. The API and stream URLs set their own
(``apps.api.middleware``)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase
from django.urls import reverse

from streamdash.core import csp
from streamdash.core.middleware import HookMiddleware


class SiteSecurityHeadersMiddleware(HookMiddleware):
    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if "Content-Security-Policy" not in response:
            policy = csp.site_policy(
                is_admin=request.path.startswith(reverse("admin:index")),
                content_type=response.get("Content-Type", ""),
            )
            if policy:
                response["Content-Security-Policy"] = policy
        if "Cross-Origin-Resource-Policy" not in response:
            response["Cross-Origin-Resource-Policy"] = "same-origin"
        return response
