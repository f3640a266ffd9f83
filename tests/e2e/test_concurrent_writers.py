"""Many writers on one stream at once: every chunk stored once, indices dense, no duplicates,
even when producers retry batches the server already committed."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e

WRITERS = 6
BATCHES = 15
PER_BATCH = 10


def _write(url: str, key: str, writer: int) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(headers=headers, timeout=30) as client:
        for seq in range(BATCHES):
            body = json.dumps([{"w": writer, "n": seq * PER_BATCH + i} for i in range(PER_BATCH)])
            producer = {
                "Producer-Id": f"writer-{writer}",
                "Producer-Epoch": "0",
                "Producer-Seq": str(seq),
            }
            first = client.post(url, content=body, headers=producer)
            assert first.status_code == 200, first.text
            if seq % 3 == 0:
                # A retry of a batch that was committed (as after a lost acknowledgement).
                retry = client.post(url, content=body, headers=producer)
                assert retry.status_code == 204, retry.text


def test_concurrent_producers_get_dense_unique_indices(server: Server, server_key: str):
    auth = {"Authorization": f"Bearer {server_key}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
        run = client.post("/api/v1/runs", json={"task_id": "concurrency"}).json()
        url = f"{server.url}/api/v1/runs/{run['id']}/streams/shared"
        client.put(url, headers={"Content-Type": "application/json"})
        with ThreadPoolExecutor(WRITERS) as pool:
            for future in [pool.submit(_write, url, server_key, w) for w in range(WRITERS)]:
                future.result(timeout=120)
        lines = client.get(url, params={"format": "ndjson"}).text.splitlines()
    chunks = [json.loads(line) for line in lines]
    total = WRITERS * BATCHES * PER_BATCH
    assert [c["index"] for c in chunks] == list(range(total))
    seen = [(c["data"]["w"], c["data"]["n"]) for c in chunks]
    assert len(set(seen)) == total
    for writer in range(WRITERS):
        mine = [n for w, n in seen if w == writer]
        assert mine == list(range(BATCHES * PER_BATCH))  # each writer's order is kept
