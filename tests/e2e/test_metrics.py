"""``/metrics`` on a real daphne moves as users act: appends, a live SSE reader (counted while
connected, not after), the delivery of a chunk to it, a purge, and refused requests (by status
and error code, and by the write rate limit)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.metrics_scrape import scrape, until, value
from tests.server import Server

pytestmark = pytest.mark.e2e

TOKEN = "e2e-metrics-token-1"
BURST = 30


@pytest.fixture(scope="module")
def metered(server_db: str) -> Iterator[Server]:
    with Server(
        server_db,
        {
            "STREAMDASH_PUBLIC_DS": "1",
            "STREAMDASH_METRICS_TOKEN": TOKEN,
            "STREAMDASH_PURGE_INTERVAL_SECONDS": "1",
            # A bucket that refills slowly: a key's 31st write is refused.
            "STREAMDASH_RATE_LIMIT_PER_SECOND": "0.01",
            "STREAMDASH_RATE_LIMIT_BURST": str(BURST),
        },
    ) as live:
        yield live


@pytest.fixture
def client(metered: Server) -> Iterator[httpx.Client]:
    with metered.client() as http:
        yield http


def _stream(client: httpx.Client) -> str:
    run = client.post("/api/v1/runs", json={"task_id": "metrics"}).json()
    url = f"/api/v1/runs/{run['id']}/streams/ai"
    assert client.put(url, headers={"Content-Type": "application/json"}).status_code == 201
    return url


def test_metrics_refuse_a_wrong_token(metered: Server) -> None:
    assert httpx.get(f"{metered.url}/metrics").status_code == 401
    wrong = httpx.get(f"{metered.url}/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_metrics_count_appends_chunks_and_bytes(metered: Server, client: httpx.Client) -> None:
    url = _stream(client)
    before = scrape(metered.url, TOKEN)
    bodies = [json.dumps([{"n": 1}, {"n": 2}, {"n": 3}]), json.dumps({"n": 4})]
    for body in bodies:
        response = client.post(url, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 204
    after = scrape(metered.url, TOKEN)
    grew = {
        name: value(after, name) - value(before, name)
        for name in (
            "streamdash_append_requests_total",
            "streamdash_append_chunks_total",
            "streamdash_append_bytes_total",
            "streamdash_append_seconds_count",
        )
    }
    # Each JSON array element is one chunk, stored as its JSON text.
    size = sum(len(json.dumps(x).encode()) for x in ({"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}))
    assert grew == {
        "streamdash_append_requests_total": 2,
        "streamdash_append_chunks_total": 4,
        "streamdash_append_bytes_total": pytest.approx(size, abs=8),
        "streamdash_append_seconds_count": 2,
    }


def test_metrics_count_a_live_sse_reader_and_its_lag(metered: Server, client: httpx.Client) -> None:
    url = _stream(client)
    before = scrape(metered.url, TOKEN)
    readers = value(before, "streamdash_live_readers", kind="sse")
    with client.stream("GET", url, params={"live": "sse", "offset": "-1"}) as response:
        lines = response.iter_lines()
        while "streamNextOffset" not in next(lines):  # the first control event: at the tail
            pass
        during = scrape(metered.url, TOKEN)
        assert value(during, "streamdash_live_readers", kind="sse") == readers + 1
        client.post(url, content='{"live": 1}', headers={"Content-Type": "application/json"})
        while '"live"' not in next(lines):
            pass
        delivered = scrape(metered.url, TOKEN)
    lag = "streamdash_delivery_lag_seconds_count"
    assert value(delivered, lag) >= value(before, lag) + 1
    hits = "streamdash_hub_ring_hits_total"
    assert value(delivered, hits) > value(before, hits)
    until(
        "the reader to be uncounted",
        lambda: value(scrape(metered.url, TOKEN), "streamdash_live_readers", kind="sse") == readers,
    )


def test_metrics_count_refusals_by_status_code_and_rate_limit(
    metered: Server, client: httpx.Client
) -> None:
    before = scrape(metered.url, TOKEN)
    missing = client.post(
        "/api/v1/runs/run_nope/streams/ai",
        content="{}",
        headers={"Content-Type": "application/json"},
    )
    assert missing.status_code == 404
    code = missing.json()["error"]["code"]
    statuses = []
    for _ in range(BURST + 5):  # the bucket holds BURST writes
        statuses.append(client.post("/api/v1/runs", json={"task_id": "flood"}).status_code)
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429
    after = scrape(metered.url, TOKEN)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("streamdash_responses_total", status="404", code=code) == 1
    assert grew("streamdash_responses_total", status="429", code="rate_limited") == 1
    assert grew("streamdash_rate_limited_total", limit="writes") == 1
    assert grew("streamdash_responses_total", status="201", code="") >= 1


def test_metrics_count_a_purge(metered: Server) -> None:
    before = scrape(metered.url, TOKEN)
    body = json.dumps([{"old": 1}, {"old": 2}])
    created = httpx.put(
        f"{metered.url}/ds/v1/stream/metrics-purge",
        content=body,
        headers={"Content-Type": "application/json", "Stream-TTL": "1"},
    )
    assert created.status_code == 201

    def purged() -> bool:
        now = scrape(metered.url, TOKEN)
        return (
            value(now, "streamdash_purge_chunks_total")
            >= value(before, "streamdash_purge_chunks_total") + 2
        )

    until("the in-server purge", purged, seconds=30)
    after = scrape(metered.url, TOKEN)
    assert value(after, "streamdash_purge_runs_total") > value(
        before, "streamdash_purge_runs_total"
    )
    assert value(after, "streamdash_purge_bytes_total") > value(
        before, "streamdash_purge_bytes_total"
    )
    assert value(after, "streamdash_purge_seconds_count") > value(
        before, "streamdash_purge_seconds_count"
    )
