"""Readers that reset or half-close their connection while live chunks are being written
straight to their sockets (streamdash/core/flowserver.py ``_write_body``) leave nothing
behind: the live-reader gauge goes back to zero, the key's live-read slots come back, and the
writer never notices."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from tests.e2e.metrics_scrape import scrape, until, value
from tests.server import Server

pytestmark = pytest.mark.e2e

TOKEN = "e2e-resets-token-1"
SLOTS = 4  # live reads per credential
ROUNDS = 3


@pytest.fixture(scope="module")
def capped(server_db: str) -> Iterator[Server]:
    with Server(
        server_db,
        {
            "STREAMDASH_METRICS_TOKEN": TOKEN,
            "STREAMDASH_MAX_LIVE_READS": str(SLOTS),
            "STREAMDASH_RATE_LIMIT_PER_SECOND": "0",
        },
    ) as server:
        yield server


def _read_then_drop(server: Server, path: str, key: str, most: int, how: str) -> None:
    """An SSE reader that takes ``most`` bytes, then resets (RST), half-closes or closes."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.connect(("127.0.0.1", server.port))
    sock.settimeout(10)
    sock.sendall(
        f"GET {path}?live=sse&offset=-1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\n\r\n".encode()
    )
    got = 0
    with contextlib.suppress(OSError):
        while got < most:
            data = sock.recv(4096)
            if not data:
                break
            got += len(data)
    if how == "reset":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif how == "half-close":
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
    sock.close()


def _live_sse(server: Server) -> float:
    return value(scrape(server.url, TOKEN), "streamdash_live_readers", kind="sse")


def test_readers_that_reset_mid_write_leave_no_reader_and_no_slot_behind(
    capped: Server,
) -> None:
    with capped.client(timeout=30) as client:
        key = client.headers["Authorization"].removeprefix("Bearer ")
        run = client.post("/api/v1/runs", json={"task_id": "resets"}).json()["id"]
        path = f"/api/v1/runs/{run}/streams/ai"
        assert client.put(path, headers={"Content-Type": "application/json"}).status_code == 201
        stop, refused = threading.Event(), []

        def write() -> None:
            for _ in range(3000):
                if stop.is_set():
                    return
                response = client.post(
                    path,
                    content=b'["' + b"y" * 3000 + b'"]',
                    headers={"Content-Type": "application/json"},
                )
                if response.status_code != 204:
                    refused.append(response.status_code)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            for round_ in range(ROUNDS):
                readers = [
                    threading.Thread(
                        target=_read_then_drop,
                        args=(capped, path, key, 20_000 * (round_ + 1), how),
                    )
                    for how in ("reset", "half-close", "close", "reset")
                ]
                for reader in readers:
                    reader.start()
                for reader in readers:
                    reader.join(30)
        finally:
            stop.set()
            writer.join(60)
        assert refused == []
        until("the live-reader gauge back at zero", lambda: _live_sse(capped) == 0)
        # Every slot of the key is free again: as many live reads as it may hold, at once.
        with contextlib.ExitStack() as stack:
            statuses = [
                stack.enter_context(
                    client.stream("GET", path, params={"live": "sse", "offset": "now"})
                ).status_code
                for _ in range(SLOTS)
            ]
        assert statuses == [200] * SLOTS
