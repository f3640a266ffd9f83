"""A revoked API key stops working at once, open connections included, and one credential's
open live reads are capped. Revocation: an SSE reader and a run subscription of that key end
within about a second, though the revocation happened in another process (``manage.py apikey
revoke``), so the server learns of it from its once-a-second re-check of live keys or, with
Redis, from the broadcast."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e


def _read_to_end(response: httpx.Response, seen: list[str]) -> float:
    """Read the response until it ends; when it ended."""
    for line in response.iter_lines():
        seen.append(line)
    return time.monotonic()


@pytest.mark.parametrize("route", ["sse", "subscribe"])
def test_revoked_key_ends_open_live_reads(server: Server, route: str) -> None:
    project = f"revoke-{route}-{time.monotonic_ns()}"
    server.create_project(project)
    secret = server.manage("apikey", "create", project, "--name", "reader").strip()
    headers = {"Authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=20) as client:
        run = client.post("/api/v1/runs", json={"task_id": "e2e"}).json()
        stream = f"/api/v1/runs/{run['id']}/streams/ai"
        assert client.put(stream, headers={"Content-Type": "application/json"}).status_code == 201
        url = (
            f"{stream}?live=sse&offset=-1"
            if route == "sse"
            else f"/api/v1/runs/{run['id']}/subscribe"
        )
        seen: list[str] = []
        ended: list[float] = []
        with client.stream("GET", url) as response:
            assert response.status_code == 200
            reader = threading.Thread(
                target=lambda: ended.append(_read_to_end(response, seen)), daemon=True
            )
            reader.start()
            time.sleep(0.5)
            server.manage("apikey", "revoke", secret[:12])
            revoked_at = time.monotonic()
            reader.join(timeout=15)
        assert ended, "the live read outlived its revoked key"
        # About a second: the re-check runs once a second; the bound leaves room for a busy CI.
        assert ended[0] - revoked_at < 3
        assert any("revoked" in line for line in seen), seen[-5:]
        after = client.get(stream, params={"offset": "-1"})
        assert after.status_code == 401



def test_live_reads_per_credential_are_capped(server_db: str) -> None:
    """Past STREAMDASH_MAX_LIVE_READS open live reads, a credential's next one is a 429 with
    Retry-After; closing one makes room again."""
    with Server(server_db, {"STREAMDASH_MAX_LIVE_READS": "2"}) as capped:
        secret = capped.create_project()
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=capped.url, headers=headers, timeout=20) as client:
            run = client.post("/api/v1/runs", json={"task_id": "e2e"}).json()
            stream = f"/api/v1/runs/{run['id']}/streams/ai"
            client.put(stream, headers={"Content-Type": "application/json"})
            live = f"{stream}?live=sse&offset=-1"
            with client.stream("GET", live) as first, client.stream("GET", live) as second:
                assert first.status_code == second.status_code == 200
                refused = client.get(live)
                assert refused.status_code == 429
                assert refused.headers["Retry-After"]
                assert refused.json()["error"]["code"] == "rate_limited"
                assert client.get(f"/api/v1/runs/{run['id']}/subscribe").status_code == 429
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                with client.stream("GET", live) as again:
                    if again.status_code == 200:
                        break
                time.sleep(0.2)
            assert again.status_code == 200
