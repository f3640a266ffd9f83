"""What the HTTP benchmarks set up before they measure: a run stream made through the API
(as a user makes one), its row, and a dashboard session for WebSocket viewers."""

from __future__ import annotations

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from apps.streams.models import Stream

JSON = {"Content-Type": "application/json"}


def run_stream(client: httpx.Client, key: str) -> str:
    """Create a run and a JSON stream ``key`` in it over HTTP; return the stream's path."""
    response = client.post("/api/v1/runs", json={"task_id": "bench"})
    response.raise_for_status()
    path = f"/api/v1/runs/{response.json()['id']}/streams/{key}"
    client.put(path, headers=JSON).raise_for_status()
    return path


def stream_row(path: str) -> Stream:
    """The row behind a run stream's path (``/api/v1/runs/<run>/streams/<key>``)."""
    *_, run_id, _, key = path.split("/")
    return Stream.objects.get(run_id=run_id, key=key)


def session_cookie() -> str:
    """``name=value`` of a logged-in dashboard session, stored in the server's database (the
    same session a browser gets from /accounts/login/)."""
    user, _ = get_user_model().objects.get_or_create(
        username="bench-operator", defaults={"is_staff": True}
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}"
