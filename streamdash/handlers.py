"""A Django ASGI handler for the API and stream URLs with an async-native middleware chain.

Why: every ``MiddlewareMixin`` middleware (all of Django's own: security, sessions, CSRF, auth,
messages…) runs its hooks through ``sync_to_async(thread_sensitive=True)``, and inside an ASGI
request that gives each request a thread of its own which lives until the response ends. For a
live SSE or long-poll read that is one thread per open connection for its whole life: measured
with 200 SSE readers, daphne went from 2 to 206 threads (tests/e2e/test_hub.py). The API needs
none of those middlewares (it authenticates with bearer credentials, never cookies), so its URLs
get a chain of async-native middleware only.

That is not enough on its own: Django's handler wraps every request in a
``ThreadSensitiveContext``, and the ``request_started`` signal's sync receiver
(``close_old_connections``) already creates the context's thread, one new thread per request.
So the stream URLs (``/ds/…``, ``/api/v1/runs/<run>/streams/<key>``, ``…/subscribe``) are served
outside such a context: their views do their database work on the bounded pools of
``apps.streams.threads``, and the few remaining sync calls (that signal, ``response.close``)
are short and share Django's one outside-context thread.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

from apps.api.lean import route_path
from apps.api.urls import STREAM_URL


def is_stream_url(scope: Any) -> bool:
    return STREAM_URL.match(route_path(scope)) is not None


class ApiASGIHandler(ASGIHandler):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and is_stream_url(scope):
            await self.handle(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def create_request(self, scope: Any, body_file: Any) -> Any:
        request, error_response = super().create_request(scope, body_file)
        if request is not None:
            # Tells the stream views they may use the shared pools (apps.streams.threads).
            request.streamdash_pooled = True  # type: ignore[attr-defined]  # a marker, read by getattr
        return request, error_response

    def load_middleware(self, is_async: bool = False) -> None:
        # Django builds the chain from settings.MIDDLEWARE; swap in the API's list for the
        # moment of building (once, at start-up), then put the site's list back.
        site_middleware = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.STREAMDASH_API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = site_middleware
