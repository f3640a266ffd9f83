"""``/runs/<run>/subscribe``: the run and all its streams on one SSE connection, resumable."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e


def _events(response: httpx.Response):
    kind, data, event_id = "message", [], None
    for line in response.iter_lines():
        if line == "":
            if data:
                yield kind, json.loads("\n".join(data)), event_id
            kind, data, event_id = "message", [], None
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:])
        elif line.startswith("id:"):
            event_id = line[3:].strip()


def _produce(server: Server, auth: dict[str, str], run_id: str) -> None:
    with httpx.Client(base_url=server.url, headers=auth, timeout=10) as client:
        base = f"/api/v1/runs/{run_id}/streams"
        client.patch(f"/api/v1/runs/{run_id}", json={"status": "executing"})
        for key, content_type in (("ai", "application/json"), ("log", "text/plain")):
            client.put(f"{base}/{key}", headers={"Content-Type": content_type})
        for n in range(20):
            client.post(
                f"{base}/ai",
                content=json.dumps([{"n": n}]),
                headers={"Content-Type": "application/json"},
            )
            client.post(f"{base}/log", content=f"line {n}", headers={"Content-Type": "text/plain"})
            time.sleep(0.01)
        client.patch(f"/api/v1/runs/{run_id}", json={"status": "completed", "output": "ok"})


def test_subscribe_delivers_run_and_every_chunk_and_resumes(server: Server, server_key: str):
    auth = {"Authorization": f"Bearer {server_key}"}
    run = httpx.post(f"{server.url}/api/v1/runs", json={"task_id": "sub"}, headers=auth).json()
    url = f"{server.url}/api/v1/runs/{run['id']}/subscribe"
    writer = threading.Thread(target=_produce, args=(server, auth, run["id"]))
    chunks: dict[str, list[object]] = {"ai": [], "log": []}
    statuses: list[str] = []
    last_id = None
    with httpx.Client(headers=auth, timeout=20) as client:
        writer.start()
        # First connection: stop after 10 chunks, as if the network dropped.
        with client.stream("GET", url) as response:
            assert response.status_code == 200
            for kind, data, event_id in _events(response):
                if kind == "run":
                    statuses.append(data["status"])
                elif kind == "chunk":
                    chunks[data["stream"]].append(data["data"])
                    last_id = event_id
                    if sum(map(len, chunks.values())) >= 10:
                        break
        # Resume with Last-Event-ID: no gap, no duplicate, to the end of the run.
        ended = False
        with client.stream("GET", url, headers={"Last-Event-ID": last_id}) as response:
            for kind, data, _ in _events(response):
                ended = ended or kind == "end"
                if kind == "run":
                    statuses.append(data["status"])
                elif kind == "chunk":
                    chunks[data["stream"]].append(data["data"])
        writer.join(timeout=30)
    assert chunks["ai"] == [{"n": n} for n in range(20)]
    assert chunks["log"] == [f"line {n}" for n in range(20)]
    assert statuses[-1] == "completed"
    assert ended
