"""Bad input against a real daphne (tests/server.py), where stream URLs take the lean path
(apps/api/lean.py) instead of Django's views: the same refusals as in process
(tests/api/test_bad_input.py), as JSON, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e

JSON = "application/json"


@pytest.fixture
def run_url(server: Server, server_key: str) -> str:
    headers = {"Authorization": f"Bearer {server_key}"}
    run = httpx.post(f"{server.url}/api/v1/runs", json={"task_id": "bad"}, headers=headers)
    return f"{server.url}/api/v1/runs/{run.json()['id']}"


def _refused(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"] == JSON
    error = response.json()["error"]
    assert error["code"] == code
    return error


@pytest.mark.parametrize(
    "headers",
    [
        {"Stream-TTL": "999999999999"},
        {"Stream-Expires-At": "9999-12-31T23:59:59-01:00"},
        {"Content-Type": "application/json; x=" + "a" * 200},
    ],
)
def test_e2e_create_with_headers_a_stream_cannot_hold_is_400(server_key, run_url, headers):
    auth = {"Authorization": f"Bearer {server_key}", "Content-Type": JSON}
    response = httpx.put(f"{run_url}/streams/created", headers={**auth, **headers})
    _refused(response, 400, "bad_request")


def test_e2e_appends_refused_on_the_lean_path(server_key, run_url, monkeypatch):
    auth = {"Authorization": f"Bearer {server_key}", "Content-Type": JSON}
    url = f"{run_url}/streams/ai"
    assert httpx.put(url, headers=auth).status_code == 201
    _refused(httpx.post(url, content=b"[1, NaN]", headers=auth), 400, "invalid_json")
    many = b"[" + b",".join([b"0"] * 10_001) + b"]"
    error = _refused(httpx.post(url, content=many, headers=auth), 413, "too_many_chunks")
    assert error["limit"] == 10_000
    seq = {**auth, "Stream-Seq": "x" * 201}
    _refused(httpx.post(url, content=b"[1]", headers=seq), 400, "bad_request")
    assert httpx.post(url, content=b"[1e400]", headers=auth).status_code == 204
    assert httpx.get(f"{url}?offset=-1", headers=auth).content == b"[1e400]"


def test_e2e_nul_in_the_run_id_is_a_json_404(server, server_key):
    auth = {"Authorization": f"Bearer {server_key}", "Content-Type": JSON}
    for method in ("GET", "PUT", "POST"):
        response = httpx.request(
            method, f"{server.url}/api/v1/runs/run_%00/streams/ai", content=b"[1]", headers=auth
        )
        _refused(response, 404, "not_found")
    _refused(httpx.get(f"{server.url}/api/v1/runs/run_%00", headers=auth), 404, "not_found")
