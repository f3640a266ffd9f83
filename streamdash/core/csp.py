"""Every Content-Security-Policy streamdash sends, and which response gets which.

- Stream and API responses: ``API_POLICY``. Their bodies are data, never a document of this
  origin: no scripts, no plugins, no framing, and a unique origin even if some browser ignored
  ``nosniff`` and rendered a chunk written as ``text/html``.
- The dashboard's HTML: ``DASHBOARD_POLICY``. Chunk contents are escaped by the templates; this
  is the second wall: no inline script, no eval (htmx's ``hx-on``/``js:`` stay off), no inline
  styles, requests only to this origin.
- Everything else on the site (the admin, which needs inline styles; static files):
  ``settings.STREAMDASH_CSP``.
A response that already carries a policy (a raw chunk download's sandbox) keeps it.
"""

from __future__ import annotations

from django.conf import settings

API_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"

DASHBOARD_POLICY = "; ".join(
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


def site_policy(*, is_admin: bool, content_type: str) -> str:
    """The policy of a site (non-API) response."""
    if not is_admin and content_type.startswith("text/html"):
        return DASHBOARD_POLICY
    return str(settings.STREAMDASH_CSP)
