"""``serve --workers 2`` with Redis: the write rate limit and the live-read cap hold for the
deployment, not per worker (a client spreading its connections over both gets no more)."""

from __future__ import annotations

import contextlib
import http.client
import uuid

import httpx
import pytest

from tests.e2e import test_serve
from tests.e2e.test_serve import Served, _connections_on_both, _until

pytestmark = pytest.mark.e2e

JSON = {"Content-Type": "application/json"}


def serve(database_url: str, env: dict[str, str]) -> contextlib.AbstractContextManager[Served]:
    """``test_serve.serve`` as a deployment of its own: the shared counts are keyed by database
    and secret key, and other tests' servers on this database and Redis leave live-read slots
    behind for 30 s."""
    deployment = {"SECRET_KEY": f"shared-limits-{uuid.uuid4().hex}-not-for-production"}
    return test_serve.serve(database_url, {**deployment, **env})


def _status(connection: http.client.HTTPConnection, method: str, path: str, **kw: object) -> int:
    connection.request(method, path, **kw)  # type: ignore[arg-type]
    response = connection.getresponse()
    response.read()
    return response.status


def test_shared_limits_rate_limit_holds_across_workers(server_db: str, redis_url: str) -> None:
    env = {
        "REDIS_URL": redis_url,
        "STREAMDASH_RATE_LIMIT_PER_SECOND": "0.01",
        "STREAMDASH_RATE_LIMIT_BURST": "4",
    }
    with serve(server_db, env) as served:
        path = f"/ds/v1/stream/limits-{uuid.uuid4().hex[:8]}"
        # The PUT is a write too: one token of the four.
        assert httpx.put(f"http://127.0.0.1:{served.port}{path}", headers=JSON).status_code == 201
        by_worker = _connections_on_both(served, path)
        (one, two) = by_worker.values()
        statuses = [
            _status(connection, "POST", path, body=b"[1]", headers=JSON)
            for pair in zip(one[:2], two[:2], strict=True)
            for connection in pair
        ]
        statuses += [_status(one[0], "POST", path, body=b"[1]", headers=JSON)]
        # Three tokens left for five appends over both workers (per worker it would be 4 + 4).
        assert statuses.count(204) + statuses.count(200) == 3, statuses
        assert statuses.count(429) == 2, statuses


def test_shared_limits_live_reads_capped_across_workers(server_db: str, redis_url: str) -> None:
    env = {"REDIS_URL": redis_url, "STREAMDASH_MAX_LIVE_READS": "2"}
    with serve(server_db, env) as served:
        path = f"/ds/v1/stream/live-{uuid.uuid4().hex[:8]}"
        assert httpx.put(f"http://127.0.0.1:{served.port}{path}", headers=JSON).status_code == 201
        by_worker = _connections_on_both(served, path)
        (one, two) = by_worker.values()
        live = f"{path}?offset=-1&live=sse"
        readers = []
        for connection in (one[0], two[0]):
            connection.request("GET", live)
            response = connection.getresponse()
            assert response.status == 200
            readers.append(response)
        # A third live read, on either worker, is over the cap of the deployment.
        for connection in (one[1], two[1]):
            connection.request("GET", live)
            refused = connection.getresponse()
            assert refused.status == 429, refused.status
            assert refused.getheader("Retry-After")
            refused.read()
        one[0].close()  # a reader goes: its slot is released

        def room() -> bool:
            status = _status(two[1], "GET", f"{path}?offset=-1&live=long-poll&timeout=0.1")
            return status in (200, 204)

        _until("a released slot", room, seconds=10)
