from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from django.urls import path

from apps.dashboard import consumers

# Session-authenticated (the dashboard's login); streamdash/asgi.py adds origin validation.
# The ignores: django-stubs' path() takes views only, not the ASGI apps Channels routes.
websocket_urlpatterns: list[Any] = [
    path("ws/streams/<int:stream_id>/", AuthMiddlewareStack(consumers.StreamConsumer.as_asgi())),  # type: ignore[arg-type]
    path("ws/runs/", AuthMiddlewareStack(consumers.RunsConsumer.as_asgi())),  # type: ignore[arg-type]
    path("ws/runs/<str:run_id>/", AuthMiddlewareStack(consumers.RunConsumer.as_asgi())),  # type: ignore[arg-type]
]
