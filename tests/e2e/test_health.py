"""``/healthz`` and ``/readyz`` on a real server, as a load balancer probes them: no
credentials, by address (a Host that is not in ALLOWED_HOSTS), JSON in a fixed shape that says
nothing about the set-up."""

from __future__ import annotations

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e

PROBE = {"Host": "10.0.0.7:8000"}  # a load balancer's probe names the address it dialled


def test_healthz_answers_ok_without_credentials(server: Server) -> None:
    response = httpx.get(f"{server.url}/healthz", headers=PROBE, timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert len(response.headers["X-Request-ID"]) == 32


def test_readyz_answers_ready_with_each_check(server: Server) -> None:
    response = httpx.get(f"{server.url}/readyz", headers=PROBE, timeout=5)
    assert response.status_code == 200
    # The same checks with or without Redis: the answer does not tell how the server is set up.
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "channel_layer": "ok"},
    }
    head = httpx.head(f"{server.url}/readyz", headers=PROBE, timeout=5)
    assert head.status_code == 200
    assert head.content == b""


def test_health_endpoints_refuse_other_methods_in_the_error_shape(server: Server) -> None:
    response = httpx.post(f"{server.url}/healthz", headers=PROBE, timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    error = response.json()["error"]
    assert error["code"] == "method_not_allowed"
    assert error["request_id"] == response.headers["X-Request-ID"]
