from __future__ import annotations

import re

from django.urls import URLPattern, path

from apps.api import (
    definition_views,
    input_views,
    live_views,
    run_views,
    subscribe_views,
    worker_views,
)

urlpatterns = [
    path("ds/v1/stream/<path:name>", live_views.standalone_stream, name="ds-stream"),
    path("api/v1/runs", run_views.runs, name="api-runs"),
    path("api/v1/runs/claim", worker_views.claim, name="api-runs-claim"),
    path("api/v1/runs/statuses", worker_views.statuses, name="api-runs-statuses"),
    path("api/v1/runs/<str:run_id>", run_views.run_detail, name="api-run"),
    path("api/v1/runs/<str:run_id>/streams", run_views.run_streams, name="api-run-streams"),
    path(
        "api/v1/runs/<str:run_id>/streams/<str:key>", live_views.run_stream, name="api-run-stream"
    ),
    path("api/v1/runs/<str:run_id>/inputs/<str:name>", input_views.run_input, name="api-run-input"),
    path("api/v1/runs/<str:run_id>/subscribe", subscribe_views.subscribe, name="api-subscribe"),
    path("api/v1/tokens", run_views.tokens, name="api-tokens"),
    path("api/v1/definitions/<str:stream_id>", definition_views.definition, name="api-definition"),
]

# Derived from the routes above, so a route added or moved is classified with them: the path
# prefixes every API response is recognised by (CORS, sandbox CSP, rate limit), and the stream
# URLs, which may be live reads and are served outside Django's per-request thread
# (streamdash/handlers.py).
PREFIXES = tuple(sorted({f"/{str(p.pattern).split('/')[0]}/" for p in urlpatterns}))
_STREAM_ROUTES = ("ds-stream", "api-run-stream", "api-run-input", "api-subscribe")


def _unnamed(pattern: URLPattern) -> str:
    return re.sub(r"\(\?P<\w+>", "(?:", pattern.pattern.regex.pattern.removeprefix("^"))


STREAM_URL = re.compile(
    "^/(?:" + "|".join(_unnamed(p) for p in urlpatterns if p.name in _STREAM_ROUTES) + ")"
)
