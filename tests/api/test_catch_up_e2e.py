"""Catch-up pages against a real daphne (tests/server.py), where a GET takes the lean path: on
PostgreSQL one statement on the async pool (apps/streams/pg_read.py), on SQLite the sync read
on a pool thread. Pages are bounded in bytes by the query, never split a chunk, and hand back
the exact bytes written."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e

BUDGET = 300  # STREAMDASH_READ_PAGE_BYTES of the server below
BYTES = "application/octet-stream"


@pytest.fixture(scope="module")
def small_pages(server_db: str) -> Iterator[Server]:
    with Server(server_db, {"STREAMDASH_READ_PAGE_BYTES": str(BUDGET)}) as live:
        yield live


@pytest.fixture(scope="module")
def client(small_pages: Server) -> Iterator[httpx.Client]:
    with small_pages.client(timeout=30) as http:
        yield http


def _stream(client: httpx.Client, key: str, content_type: str, chunks: list[bytes]) -> str:
    run = client.post("/api/v1/runs", json={"task_id": "pages"}).json()["id"]
    path = f"/api/v1/runs/{run}/streams/{key}"
    assert client.put(path, headers={"Content-Type": content_type}).status_code == 201
    for chunk in chunks:
        response = client.post(path, content=chunk, headers={"Content-Type": content_type})
        assert response.status_code == 204, response.text
    return path


def _pages(client: httpx.Client, path: str) -> list[tuple[int, int, bytes]]:
    """Every page from the start: (start index, next index, body) each."""
    pages, offset = [], "-1"
    while True:
        response = client.get(path, params={"offset": offset})
        assert response.status_code == 200, response.text
        start = int(response.headers["Stream-Start-Index"])
        next_index = int(response.headers["Stream-Next-Index"])
        pages.append((start, next_index, response.content))
        offset = response.headers["Stream-Next-Offset"]
        if response.headers.get("Stream-Up-To-Date") == "true":
            return pages


def test_e2e_catch_up_page_is_bounded_in_bytes_exactly_at_the_budget(client):
    chunks = [bytes([n]) * 100 for n in range(7)]  # three fill the budget to the byte
    path = _stream(client, "exact", BYTES, chunks)
    pages = _pages(client, path)
    assert [(start, end) for start, end, _ in pages] == [(0, 3), (3, 6), (6, 7)]
    assert b"".join(body for *_, body in pages) == b"".join(chunks)


def test_e2e_catch_up_page_one_byte_past_the_budget_ends_before_the_chunk(client):
    chunks = [b"a" * 100, b"b" * 100, b"c" * 101, b"d"]
    path = _stream(client, "past", BYTES, chunks)
    assert [(start, end) for start, end, _ in _pages(client, path)] == [(0, 2), (2, 4)]


def test_e2e_chunk_larger_than_the_budget_is_served_alone(client):
    chunks = [b"x" * 50, b"y" * (BUDGET * 4), b"z" * 50]
    path = _stream(client, "large", BYTES, chunks)
    pages = _pages(client, path)
    assert [(start, end) for start, end, _ in pages] == [(0, 1), (1, 2), (2, 3)]
    assert [body for *_, body in pages] == chunks


def test_e2e_binary_payloads_round_trip_byte_for_byte(client):
    chunks = [
        bytes(range(256)),
        b"\x00",
        b"\\x00ff",  # what bytea's hex text output looks like
        bytes(reversed(range(256))) * 3,
        "é€😀".encode(),
    ]
    path = _stream(client, "binary", BYTES, chunks)
    assert b"".join(body for *_, body in _pages(client, path)) == b"".join(chunks)
    for index, chunk in enumerate(chunks):
        response = client.get(path, params={"start_index": index})
        assert response.content.startswith(chunk)
    # The same bytes by SSE (base64 for a byte stream), to the end of the closed stream.
    assert client.post(path, headers={"Stream-Closed": "true"}).status_code == 204
    with client.stream("GET", path, params={"offset": "-1", "live": "sse"}) as response:
        assert response.headers["Stream-SSE-Data-Encoding"] == "base64"
        data = [
            base64.b64decode(line.removeprefix("data:"))
            for line in response.iter_lines()
            if line.startswith("data:") and not line.startswith("data:{")
        ]
    assert b"".join(data) == b"".join(chunks)


def test_e2e_json_pages_are_arrays_whatever_the_content_type_spelling(client):
    values = [{"n": n, "s": "x" * 60} for n in range(9)]
    chunks = [json.dumps(value).encode() for value in values]
    path = _stream(client, "json", "Application/JSON ; charset=utf-8", chunks)
    pages = _pages(client, path)
    assert len(pages) > 1
    assert [v for *_, body in pages for v in json.loads(body)] == values


def test_e2e_catch_up_from_the_tail_and_the_middle(client):
    chunks = [b"%d" % n for n in range(5)]
    path = _stream(client, "tail", BYTES, chunks)
    now = client.get(path, params={"offset": "now"})
    assert now.status_code == 200
    assert now.content == b""
    assert now.headers["Stream-Next-Index"] == "5"
    assert now.headers["Stream-Up-To-Date"] == "true"
    middle = client.get(path, params={"start_index": 3})
    assert middle.content == b"34"
    assert middle.headers["Stream-Start-Index"] == "3"
    past = client.get(path, params={"start_index": 99})
    assert (past.content, past.headers["Stream-Next-Index"]) == (b"", "5")
    again = client.get(
        path, params={"start_index": 3}, headers={"If-None-Match": middle.headers["ETag"]}
    )
    assert again.status_code == 304
