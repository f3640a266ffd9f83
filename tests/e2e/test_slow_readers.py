"""Readers that never read cannot make the server hold a stream in memory: streamed responses
are flow-controlled (streamdash/core/flowserver.py), and a reader stalled past
STREAMDASH_SEND_STALL_SECONDS is cut off; the memory goes back when it goes."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.e2e

CHUNK = b'"' + b"x" * (512 * 1024 - 2) + b'"'  # 512 KiB JSON strings
CHUNKS = 60  # a 30 MiB stream
READERS = 3


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def stall_server(server_db: str) -> Iterator[Server]:
    live = Server(
        server_db, {"STREAMDASH_PUBLIC_DS": "1", "STREAMDASH_SEND_STALL_SECONDS": "3"}
    ).start()
    try:
        yield live
    finally:
        live.stop()


def _idle_reader(server: Server, path: str) -> socket.socket:
    """An SSE request whose client then reads nothing (a tiny receive buffer, too)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def test_idle_readers_of_a_big_stream_hold_no_stream_in_memory(stall_server: Server) -> None:
    assert stall_server.process is not None
    pid = stall_server.process.pid
    url = f"{stall_server.url}/ds/v1/stream/big-{time.monotonic_ns()}"
    with httpx.Client(timeout=30) as client:
        assert client.put(url, headers={"Content-Type": "application/json"}).status_code == 201
        for _ in range(CHUNKS // 2):
            body = b"[" + b",".join([CHUNK, CHUNK]) + b"]"
            response = client.post(url, content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 204
    time.sleep(1)
    before = _rss_mib(pid)
    path = url.removeprefix(stall_server.url) + "?live=sse&offset=-1"
    readers = [_idle_reader(stall_server, path) for _ in range(READERS)]
    peak = before
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        peak = max(peak, _rss_mib(pid))
        time.sleep(0.2)
    # Without flow control each reader made the server buffer the whole 30 MiB stream.
    grew = peak - before
    print(f"RSS grew {grew:.0f} MiB for {READERS} idle readers of a {CHUNKS // 2} MiB stream")
    assert grew < 64, f"RSS grew {grew:.0f} MiB for {READERS} idle readers"
    # Stalled past the limit, each reader was cut off: reading now drains then ends.
    for sock in readers:
        sock.settimeout(10)
        total, ended = 0, False
        while total < CHUNKS * len(CHUNK) * 2:
            try:
                data = sock.recv(1 << 20)
            except (ConnectionResetError, TimeoutError):
                ended = True
                break
            if not data:
                ended = True
                break
            total += len(data)
        sock.close()
        assert ended, "a stalled reader was never cut off"
        assert total < CHUNKS * len(CHUNK)
