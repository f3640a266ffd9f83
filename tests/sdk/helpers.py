"""Small helpers shared by the SDK tests."""

from __future__ import annotations

from streamdash.sdk import Client
from streamdash.sdk._core import Request, json_request


def new_run(task_id: str = "sdk-test") -> str:
    """A queued run to write streams of (no worker serves ``sdk-test``)."""
    with Client() as client:
        response = client.request(
            _json("POST", "/api/v1/runs", {"task_id": task_id, "payload": None})
        )
        return str(response.json()["id"])


def finish_run(run_id: str, status: str = "completed") -> None:
    with Client() as client:
        client.request(_json("PATCH", f"/api/v1/runs/{run_id}", {"status": status}))


def _json(method: str, path: str, body: object) -> Request:
    return json_request(method, path, body)
