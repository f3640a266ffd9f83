"""``STREAMDASH_LOG_FORMAT=json`` on a real server: every line of its output is one JSON
object, the request id an error body shows is on that request's log lines, and no API key,
token or password reaches the log, though requests carried them in headers and query strings."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e

FIELDS = {"timestamp", "level", "logger", "message", "request_id"}


@pytest.fixture(scope="module")
def json_server(server_db: str) -> Iterator[Server]:
    with Server(server_db, {"STREAMDASH_LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}) as live:
        yield live


def _lines(server: Server) -> list[dict[str, object]]:
    server.stop()  # everything it wrote is in the file
    text = Path(server.log.name).read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert line.keys() >= FIELDS, line
    return lines


def test_json_logs_parse_carry_request_ids_and_no_secret(json_server: Server) -> None:
    key = json_server.create_project()
    wrong_key = "sd_sk_" + "W" * 40
    password = "hunter2-" + str(time.monotonic_ns())
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=json_server.url, timeout=20) as client:
        run = client.post("/api/v1/runs", json={"task_id": "logs"}, headers=auth).json()
        stream = f"/api/v1/runs/{run['id']}/streams/ai"
        assert client.put(stream, headers={**auth, "Content-Type": "application/json"}).is_success
        assert client.post(stream, json=[{"delta": "hi"}], headers=auth).is_success
        minted = client.post(
            "/api/v1/tokens", json={"scopes": [f"read:runs:{run['id']}"]}, headers=auth
        )
        token = minted.json()["token"]
        read = client.get(stream, params={"offset": "-1", "token": token})
        assert read.status_code == 200

        # Errors: each body names the id of its request, chosen by the client when sane.
        missing = client.get("/api/v1/runs/run_missing", headers=auth)
        refused = client.get(
            stream, params={"offset": "-1"}, headers={"Authorization": f"Bearer {wrong_key}"}
        )
        chosen = client.get(
            "/ds/v1/stream/nope",
            params={"password": password, "token": token},
            headers={**auth, "X-Request-ID": "lb-7f3a.2:9"},
        )
        insane = client.get("/api/v1/runs/run_missing", headers={**auth, "X-Request-ID": "a b"})

    assert (missing.status_code, refused.status_code, chosen.status_code) == (404, 401, 404)
    ids = {
        name: response.json()["error"]["request_id"]
        for name, response in {"missing": missing, "refused": refused, "chosen": chosen}.items()
    }
    for name, response in {"missing": missing, "refused": refused, "chosen": chosen}.items():
        assert response.headers["X-Request-ID"] == ids[name]
    assert ids["chosen"] == "lb-7f3a.2:9"
    assert insane.json()["error"]["request_id"] not in ("a b", "a", "b")

    lines = _lines(json_server)
    for name, request_id in ids.items():
        mine = [line for line in lines if line["request_id"] == request_id]
        access = [line for line in mine if line["logger"] == "streamdash.access"]
        assert len(access) == 1, (name, mine)
        assert access[0]["status"] == {"missing": 404, "refused": 401, "chosen": 404}[name]
    assert any(line["logger"].startswith("django") for line in lines)  # Django's own, as JSON

    text = Path(json_server.log.name).read_text()
    for secret in (key, key[6:], wrong_key[6:], token, password):
        assert secret not in text
    assert "token=[redacted]" in text
    assert "password=[redacted]" in text
