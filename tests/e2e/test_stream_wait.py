"""A live read of a run stream that does not exist yet waits for it on the server: the page that
renders a run's stream right after triggering it gets the chunks, not a 404. A finished run
never creates a stream, so its missing stream is a final 404 naming the run's status; `/ds/`
keeps the protocol's immediate 404."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.test_security_e2e import _ws_connect, _ws_frame
from tests.server import Server

pytestmark = pytest.mark.e2e

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client(server: Server, server_key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server_key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        yield http


def _run(client: httpx.Client, status: str | None = None) -> str:
    run_id: str = client.post("/api/v1/runs", json={"task_id": "wait"}).json()["id"]
    if status is not None:
        assert client.patch(f"/api/v1/runs/{run_id}", json={"status": status}).is_success
    return run_id


def _data_events(response: httpx.Response) -> Iterator[list[object]]:
    kind = ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line.partition(":")[2].strip()
        elif line.startswith("data:") and kind == "data":
            yield json.loads(line.partition(":")[2])


def _create_soon(client: httpx.Client, url: str, chunks: list[object]) -> threading.Thread:
    """Create the stream and append, a moment after the reader asked (the task starting)."""

    def write() -> None:
        time.sleep(0.5)
        assert client.put(url, headers=JSON).status_code == 201
        assert client.post(url, content=json.dumps(chunks), headers=JSON).status_code == 204

    writer = threading.Thread(target=write)
    writer.start()
    return writer


def test_sse_read_before_the_stream_exists_gets_its_chunks(client: httpx.Client):
    run_id = _run(client, "executing")
    url = f"/api/v1/runs/{run_id}/streams/ai"
    writer = _create_soon(client, url, [{"n": 1}, {"n": 2}])
    try:
        with client.stream("GET", url, params={"live": "sse", "offset": "-1"}) as response:
            assert response.status_code == 200
            assert response.headers["Stream-Content-Type"].startswith("application/json")
            received = next(_data_events(response))
    finally:
        writer.join()
    assert received == [{"n": 1}, {"n": 2}]


def test_long_poll_before_the_stream_exists_gets_its_chunks(client: httpx.Client):
    run_id = _run(client)  # queued: a run that has not started may still create streams
    url = f"/api/v1/runs/{run_id}/streams/ai"
    writer = _create_soon(client, url, ["hello"])
    try:
        response = client.get(url, params={"live": "long-poll", "offset": "-1"})
    finally:
        writer.join()
    assert response.status_code == 200
    assert response.json() == ["hello"]


def test_read_from_now_before_the_stream_exists_gets_what_its_create_carried(
    client: httpx.Client,
):
    run_id = _run(client, "executing")
    url = f"/api/v1/runs/{run_id}/streams/ai"

    def create_with_a_first_chunk() -> None:
        time.sleep(0.5)
        body = json.dumps(["first"])
        assert client.put(url, content=body, headers=JSON).status_code == 201

    writer = threading.Thread(target=create_with_a_first_chunk)
    writer.start()
    try:
        response = client.get(url, params={"live": "long-poll", "offset": "now"})
    finally:
        writer.join()
    assert response.status_code == 200
    assert response.json() == ["first"]


def test_missing_stream_of_a_finished_run_is_a_final_404(client: httpx.Client):
    run_id = _run(client, "completed")
    response = client.get(
        f"/api/v1/runs/{run_id}/streams/ai", params={"live": "sse", "offset": "-1"}
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "stream_not_found"
    assert error["run_status"] == "completed"
    assert "creates no more streams" in error["message"]


def test_run_finishing_without_the_stream_ends_the_wait(client: httpx.Client):
    run_id = _run(client, "executing")

    def finish() -> None:
        time.sleep(0.5)
        client.patch(f"/api/v1/runs/{run_id}", json={"status": "failed"})

    finisher = threading.Thread(target=finish)
    finisher.start()
    try:
        response = client.get(
            f"/api/v1/runs/{run_id}/streams/ai", params={"live": "sse", "offset": "-1"}
        )
    finally:
        finisher.join()
    assert response.status_code == 404
    assert response.json()["error"]["run_status"] == "failed"


def test_wait_ends_with_the_reads_timeout_and_says_to_ask_again(client: httpx.Client):
    run_id = _run(client, "executing")
    response = client.get(
        f"/api/v1/runs/{run_id}/streams/ai",
        params={"live": "sse", "offset": "-1", "timeout": "0.5"},
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["run_status"]) == ("stream_not_found", "executing")
    assert "read again" in error["message"]


def test_missing_run_is_not_waited_for(client: httpx.Client):
    response = client.get(
        "/api/v1/runs/run_missing0000/streams/ai", params={"live": "sse", "offset": "-1"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_ds_streams_keep_the_protocols_404(server: Server):
    response = httpx.get(
        f"{server.url}/ds/v1/stream/never-created",
        params={"live": "sse", "offset": "-1"},
        timeout=10,
    )
    assert response.status_code == 404


def test_websocket_read_before_the_stream_exists_gets_its_chunks(
    client: httpx.Client, server: Server, server_key: str
):
    run_id = _run(client, "executing")
    url = f"/api/v1/runs/{run_id}/streams/ai"
    writer = _create_soon(client, url, [{"n": 1}])
    try:
        with _ws_connect(server, f"/ws/v1/runs/{run_id}/streams/ai?token={server_key}") as sock:
            received: list[object] = []
            for _ in range(3):  # the stream may show up empty (created) before its append
                frame = json.loads(_ws_frame(sock)[1])
                assert frame["type"] == "chunks"
                received += [chunk["data"] for chunk in frame["chunks"]]
                if received:
                    break
    finally:
        writer.join()
    assert received == [{"n": 1}]
