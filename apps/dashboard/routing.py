from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from django.urls import path

from apps.dashboard import consumers

# Session-authenticated (the dashboard's login); streamdash/asgi.py adds origin validation.
websocket_urlpatterns: list[Any] = [
    path("ws/streams/<int:stream_id>/", AuthMiddlewareStack(consumers.StreamConsumer.as_asgi())),
    path("ws/runs/", AuthMiddlewareStack(consumers.RunsConsumer.as_asgi())),
    path("ws/runs/<str:run_id>/", AuthMiddlewareStack(consumers.RunConsumer.as_asgi())),
]
