"""Stream definitions: registered by the SDK, replaced idempotently, schemas checked."""

from __future__ import annotations

from django.test import Client

SCHEMA = {"type": "object", "properties": {"step": {"type": "string"}}}


def test_put_creates_then_replaces_then_reads(api: Client):
    url = "/api/v1/definitions/progress"
    first = api.put(
        url, {"schema": SCHEMA, "description": "steps"}, content_type="application/json"
    )
    assert first.status_code == 201
    again = api.put(
        url, {"schema": SCHEMA, "description": "steps"}, content_type="application/json"
    )
    assert again.status_code == 200
    body = api.get(url).json()
    assert (body["schema"], body["description"]) == (SCHEMA, "steps")


def test_invalid_schema_is_400(api: Client):
    response = api.put(
        "/api/v1/definitions/progress", {"schema": {"type": 5}}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "not a valid JSON Schema" in response.json()["error"]["message"]
