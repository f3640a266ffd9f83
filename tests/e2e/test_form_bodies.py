"""What Twisted does with a request body before the application sees it
(``streamdash.core.flowserver``): a body that looks like an HTML form submission reaches the
application as the bytes the client sent (Twisted parsed it into ``request.args``, which
daphne never reads, and refused some with a bare 400), and a body over the server's limit is
not kept whole on the server's disk while it arrives."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e

MULTIPART = "multipart/form-data"


def test_a_multipart_stream_takes_a_body_twisteds_form_parser_refuses(server: Server) -> None:
    key = server.create_project()
    path = "/ds/v1/stream/form-bodies"
    body = b"not a multipart body: no boundary anywhere"
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as client:
        client.put(path, headers={"Content-Type": MULTIPART}).raise_for_status()
        appended = client.post(path, content=body, headers={"Content-Type": MULTIPART})
        assert appended.status_code == 204, appended.text
        read = client.get(path, params={"offset": "-1"})
    assert read.status_code == 200
    assert read.content == body


def test_a_urlencoded_append_keeps_its_bytes(server: Server) -> None:
    key = server.create_project()
    path = "/ds/v1/stream/form-urlencoded"
    body = b"a=1&b=%20two&a=3"
    kind = "application/x-www-form-urlencoded"
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as client:
        client.put(path, headers={"Content-Type": kind}).raise_for_status()
        assert client.post(path, content=body, headers={"Content-Type": kind}).status_code == 204
        assert client.get(path, params={"offset": "-1"}).content == body


LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def small_limit(server_db: str) -> Iterator[Server]:
    with Server(server_db, {"STREAMDASH_MAX_REQUEST_BYTES": str(LIMIT)}) as server:
        yield server


def _largest_open_file(pid: int) -> int:
    """The size of the largest regular file the process holds open (Twisted's body spool is
    a deleted temporary file: only its descriptor finds it)."""
    largest = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            info = os.stat(fd)
        except OSError:
            continue
        if (info.st_mode & 0o170000) == 0o100000:
            largest = max(largest, info.st_size)
    return largest


def test_a_chunked_body_over_the_limit_is_not_kept_whole_and_gets_the_json_413(
    small_limit: Server,
) -> None:
    key = small_limit.create_project()
    path = "/ds/v1/stream/too-big"
    with httpx.Client(base_url=small_limit.url, headers={"Authorization": f"Bearer {key}"}) as c:
        c.put(path, headers={"Content-Type": "application/octet-stream"}).raise_for_status()
    assert small_limit.process is not None
    part = b"x" * 65536
    with socket.create_connection(("127.0.0.1", small_limit.port), timeout=20) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        for _ in range(16 * 1024 * 1024 // len(part)):  # 16 MiB, 64 times the limit
            sock.sendall(b"%x\r\n%b\r\n" % (len(part), part))
        kept = _largest_open_file(small_limit.process.pid)
        sock.sendall(b"0\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    assert kept <= LIMIT + 1
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error"]["limit"] == LIMIT
    with httpx.Client(base_url=small_limit.url, headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.get(path, params={"offset": "-1"}).content == b""
