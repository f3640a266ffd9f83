"""Catch-up reads through the ASGI application, called in this process on committed data: on
PostgreSQL one statement on the async pool (apps/streams/pg_read.py), handing the reads it does
not decide to the sync path; on SQLite the sync read on a pool thread. Each answers as the
Django views do (tests/api/test_stream_protocol.py)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from apps.bench.inprocess import call
from apps.streams.models import Stream
from apps.streams.services import chunks_purge
from tests.factories import make_project, make_run

pytestmark = pytest.mark.django_db(transaction=True)


async def _call(
    method: str, path: str, key: str, *, body: bytes = b"", query: str = "", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    from streamdash.asgi import application

    sent = [
        (b"authorization", f"Bearer {key}".encode()),
        (b"host", b"testserver"),
        *[(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    ]
    answer = await call(application, method, path, sent, body, query.encode())
    return answer.status, {k.decode(): v.decode() for k, v in answer.headers}, answer.body


async def _stream(key: str, run_id: str, name: str, count: int, **headers: str) -> str:
    path = f"/api/v1/runs/{run_id}/streams/{name}"
    json_type = {"content_type": "application/json"}
    assert (await _call("PUT", path, key, **json_type, **headers))[0] == 201
    for n in range(count):
        status, *_ = await _call("POST", path, key, body=b"%d" % n, **json_type)
        assert status == 204
    return path


@pytest.fixture
async def run_and_key() -> tuple[str, str]:
    project, key = await sync_to_async(make_project)()
    run = await sync_to_async(make_run)(project)
    return run.id, key


async def test_lean_catch_up_reads_a_page_and_says_where_it_ends(run_and_key):
    run_id, key = run_and_key
    path = await _stream(key, run_id, "ai", 5)
    status, headers, body = await _call("GET", path, key, query="offset=-1")
    assert (status, json.loads(body)) == (200, [0, 1, 2, 3, 4])
    assert headers["stream-next-index"] == "5"
    assert headers["stream-up-to-date"] == "true"
    status, headers, body = await _call("GET", path, key, query="start_index=2")
    assert (status, json.loads(body), headers["stream-start-index"]) == (200, [2, 3, 4], "2")


async def test_lean_catch_up_below_the_purged_floor_is_410_naming_what_is_left(run_and_key):
    run_id, key = run_and_key
    path = await _stream(key, run_id, "ai", 5)
    stream_id = await sync_to_async(lambda: Stream.objects.get(run_id=run_id, key="ai").pk)()
    await sync_to_async(chunks_purge)(stream_id=stream_id, batch_size=10, before_index=3)
    status, _, body = await _call("GET", path, key, query="offset=-1")
    error = json.loads(body)["error"]
    assert (status, error["code"], error["earliest_index"]) == (410, "gone", 3)
    status, _, body = await _call("GET", path, key, query="start_index=3")
    assert (status, json.loads(body)) == (200, [3, 4])


async def test_lean_catch_up_of_a_ttl_stream_reads_it_and_of_a_missing_one_is_404(run_and_key):
    run_id, key = run_and_key
    path = await _stream(key, run_id, "ttl", 2, stream_ttl="3600")
    status, _, body = await _call("GET", path, key, query="offset=-1")
    assert (status, json.loads(body)) == (200, [0, 1])
    status, _, body = await _call("GET", f"/api/v1/runs/{run_id}/streams/none", key)
    assert (status, json.loads(body)["error"]["code"]) == (404, "stream_not_found")
    status, _, body = await _call("GET", "/api/v1/runs/run_nope/streams/none", key)
    assert (status, json.loads(body)["error"]["code"]) == (404, "not_found")
