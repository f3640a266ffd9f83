"""A reader cut off mid-stream resumes (by Last-Event-ID or by offset) and gets every chunk
exactly once, in order, while a writer keeps appending."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e

TOTAL = 300


def _sse_events(response: httpx.Response):
    event: dict[str, str] = {}
    data: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if event or data:
                yield event.get("event", "message"), "\n".join(data), event.get("id")
            event, data = {}, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value)
            else:
                event[field] = value.strip()


def _writer(url: str, headers: dict[str, str]) -> None:
    with httpx.Client(headers=headers, timeout=10) as client:
        for start in range(0, TOTAL, 10):
            body = json.dumps([{"n": n} for n in range(start, start + 10)])
            client.post(url, content=body, headers={"Content-Type": "application/json"})
        client.post(url, headers={"Stream-Closed": "true"})


@pytest.mark.parametrize("resume_by", ["last-event-id", "offset"])
def test_sse_reader_cut_off_resumes_exactly_once(server: Server, server_key: str, resume_by):
    headers = {"Authorization": f"Bearer {server_key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        run = client.post("/api/v1/runs", json={"task_id": "e2e"}).json()
        url = f"{server.url}/api/v1/runs/{run['id']}/streams/ai"
        assert client.put(url, headers={"Content-Type": "application/json"}).status_code == 201

        writer = threading.Thread(target=_writer, args=(url, headers))
        writer.start()
        received: list[int] = []
        last_id: str | None = None
        cuts = 0
        closed = False
        while not closed and cuts < 200:
            params = {"live": "sse", "offset": "-1"}
            request_headers = {}
            if last_id is not None:
                if resume_by == "offset":
                    params["offset"] = last_id
                else:
                    request_headers["Last-Event-ID"] = last_id
            with client.stream("GET", url, params=params, headers=request_headers) as response:
                assert response.status_code == 200
                seen_in_connection = 0
                for kind, data, event_id in _sse_events(response):
                    if kind == "data":
                        received.extend(item["n"] for item in json.loads(data))
                        seen_in_connection += 1
                    elif kind == "control":
                        last_id = event_id
                        if json.loads(data).get("streamClosed"):
                            closed = True
                            break
                        # Cut the connection after a couple of batches, mid-stream.
                        if seen_in_connection >= 2:
                            break
            cuts += 1
        writer.join(timeout=30)
    assert closed
    assert received == list(range(TOTAL))
    assert cuts > 1
