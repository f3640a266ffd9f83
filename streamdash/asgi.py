"""ASGI entry point: HTTP (Django, including SSE and long-poll) and WebSocket (Channels).

- Every request goes through one ``Entry`` (streamdash/entry.py): its id (``X-Request-ID``, log
  lines, error bodies), ``/healthz`` and ``/readyz`` answered before anything else, the
  process-wide loops started on a real server's first request (``OnServe``: the System page's
  heartbeat, and the in-server retention purge, off with STREAMDASH_PURGE_INTERVAL_SECONDS=0),
  ``streamdash_responses_total`` by status and error code, and bodies bounded while they are
  read, whatever Content-Length says.
- HTTP for the stream URLs (/ds/v1/stream/…, /api/v1/runs/<run>/streams/<key>) is served by
  the lean path (apps/api/lean.py: no Django request cycle); the rest of /api/ by
  ``ApiASGIHandler`` (async-native middleware, no thread per live read: streamdash/handlers.py);
  the site (dashboard, admin) by Django's own handler.
- WebSocket: token-authenticated reader routes first (no cookies, so no Origin check needed),
  then the dashboard's cookie-authenticated routes behind ``SameOriginValidator`` (scheme,
  host and port of the page must be the socket's own).
- Serve with Daphne's WebSocket size limits set explicitly, e.g.
  ``daphne --websocket-max-message-size 65536 --websocket-max-frame-size 65536 \\
  streamdash.asgi:application`` (readers send nothing; the dashboard sends small messages).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "streamdash.settings")
django_asgi_app = get_asgi_application()

from channels.routing import URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import re_path  # noqa: E402

from apps.api.accesslog import log_daphne_access_through_logging  # noqa: E402
from apps.api.logredact import redact_daphne_access_log  # noqa: E402
from apps.api.ws_consumers import websocket_urlpatterns as token_websocket_urlpatterns  # noqa: E402
from apps.dashboard import heartbeat  # noqa: E402
from apps.dashboard.origin import SameOriginValidator  # noqa: E402
from apps.dashboard.routing import websocket_urlpatterns  # noqa: E402
from apps.retention import scheduler  # noqa: E402
from streamdash.core.onserve import OnServe  # noqa: E402
from streamdash.entry import Entry  # noqa: E402
from streamdash.handlers import ApiASGIHandler  # noqa: E402

redact_daphne_access_log()
if settings.STREAMDASH_LOG_FORMAT == "json":
    log_daphne_access_through_logging()

application = Entry(
    api=ApiASGIHandler(),
    site=django_asgi_app,
    websocket=URLRouter(
        [
            *token_websocket_urlpatterns,
            # URLRouter's stubs want a pattern type that exists only in the stubs.
            re_path(r"^", SameOriginValidator(URLRouter(websocket_urlpatterns))),  # type: ignore[list-item]
        ]
    ),
    on_serve=OnServe(heartbeat.ensure_started, scheduler.ensure_started),
)
