"""ASGI entry point: HTTP (Django, including SSE and long-poll) and WebSocket (Channels).

- HTTP for the stream URLs (/ds/v1/stream/…, /api/v1/runs/<run>/streams/<key>) is served by
  ``LeanStreams`` (apps/api/lean.py: no Django request cycle); the rest of /api/ by
  ``ApiASGIHandler`` (async-native middleware, no thread per live read: streamdash/handlers.py);
  the site (dashboard, admin) by Django's own handler.
- Every request (HTTP, WebSocket) gets an id (``RequestId``: ``X-Request-ID``, log lines, error
  bodies); ``/healthz`` and ``/readyz`` are answered next, before anything else
  (``HealthChecks``).
- HTTP goes through ``RequestBodyLimit`` (bodies bounded while they are read, whatever
  Content-Length says) and ``PurgeScheduler`` (the in-server retention purge, started on a
  real server's first request; off with STREAMDASH_PURGE_INTERVAL_SECONDS=0), ``Heartbeat``
  (the System page's record of this process, started the same way) and ``ResponseMetrics``
  (``streamdash_responses_total`` by status and error code).
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

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import re_path  # noqa: E402

from apps.api.accesslog import log_daphne_access_through_logging  # noqa: E402
from apps.api.bodylimit import RequestBodyLimit  # noqa: E402
from apps.api.health import HealthChecks  # noqa: E402
from apps.api.lean import LeanStreams  # noqa: E402
from apps.api.logredact import redact_daphne_access_log  # noqa: E402
from apps.api.ws_consumers import websocket_urlpatterns as token_websocket_urlpatterns  # noqa: E402
from apps.dashboard.heartbeat import Heartbeat  # noqa: E402
from apps.dashboard.origin import SameOriginValidator  # noqa: E402
from apps.dashboard.routing import websocket_urlpatterns  # noqa: E402
from apps.retention.scheduler import PurgeScheduler  # noqa: E402
from streamdash.core.metrics_export import ResponseMetrics  # noqa: E402
from streamdash.core.requestid import RequestId  # noqa: E402
from streamdash.handlers import ApiASGIHandler, PathDispatcher  # noqa: E402

redact_daphne_access_log()
if settings.STREAMDASH_LOG_FORMAT == "json":
    log_daphne_access_through_logging()

router = ProtocolTypeRouter(
    {
        "http": ResponseMetrics(
            Heartbeat(
                PurgeScheduler(
                    RequestBodyLimit(
                        LeanStreams(PathDispatcher(api=ApiASGIHandler(), site=django_asgi_app))
                    )
                )
            )
        ),
        "websocket": URLRouter(
            [
                *token_websocket_urlpatterns,
                # URLRouter's stubs want a pattern type that exists only in the stubs.
                re_path(r"^", SameOriginValidator(URLRouter(websocket_urlpatterns))),  # type: ignore[list-item]
            ]
        ),
    }
)

# Every request gets its id first; /healthz and /readyz are answered before anything else.
application = RequestId(HealthChecks(router))
