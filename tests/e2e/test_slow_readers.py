"""Readers that never read cannot make the server hold a stream in memory: streamed responses
are flow-controlled (streamdash/core/flowserver.py), and a reader stalled past
STREAMDASH_SEND_STALL_SECONDS is cut off; the memory goes back when it goes."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_security_e2e import _ws_connect, _ws_frame
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
    env = {"STREAMDASH_PUBLIC_DS": "1", "STREAMDASH_SEND_STALL_SECONDS": "3"}
    # INFO for streamdash.core.flowserver's line about each reader it cuts off.
    with Server(server_db, {**env, "LOG_LEVEL": "INFO"}) as live:
        yield live


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
    readers = [stall_server.unread_get(path) for _ in range(READERS)]
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


def _idle_websocket(server: Server, path: str, key: str) -> socket.socket:
    """A WebSocket handshake, then nothing read (a tiny receive buffer, too)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {key}\r\n\r\n"
        ).encode()
    )
    return sock


def _drain_until_cut(sock: socket.socket, most: int) -> tuple[int, bool]:
    """Read what the kernel holds; True if the server had dropped the connection."""
    sock.settimeout(10)
    total = 0
    try:
        while total < most:
            data = sock.recv(1 << 20)
            if not data:
                return total, True
            total += len(data)
    except ConnectionResetError:
        return total, True
    except TimeoutError:
        return total, False
    finally:
        sock.close()
    return total, False


def test_idle_websocket_readers_are_cut_off_holding_no_stream(stall_server: Server) -> None:
    """The token WebSocket route gets the same flow control: a reader that never reads holds
    at most the socket's buffers, and is dropped after STREAMDASH_SEND_STALL_SECONDS (the
    dashboard's sockets go through the same server code)."""
    key = stall_server.create_project()
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=stall_server.url, headers=auth, timeout=30) as client:
        run = client.post("/api/v1/runs", json={"task_id": "ws"}).json()
        stream = f"/api/v1/runs/{run['id']}/streams/big"
        assert client.put(stream, headers={"Content-Type": "application/json"}).is_success
        for _ in range(CHUNKS // 2):
            body = b"[" + b",".join([CHUNK, CHUNK]) + b"]"
            response = client.post(
                stream, content=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 204
        path = f"/ws/v1/runs/{run['id']}/streams/big?offset=-1"
        readers = [_idle_websocket(stall_server, path, key) for _ in range(READERS)]
        # The stream keeps growing while they do not read, past the stall limit (3 s).
        for _ in range(40):
            body = b"[" + CHUNK + b"]"
            client.post(stream, content=body, headers={"Content-Type": "application/json"})
            time.sleep(0.2)
    for sock in readers:
        total, cut = _drain_until_cut(sock, CHUNKS * len(CHUNK) * 2)
        assert cut, "a stalled WebSocket reader was never cut off"
        assert total < CHUNKS * len(CHUNK)
    # The server's own figure when it cut each one: what Twisted held for it, not the stream.
    log = Path(stall_server.log.name).read_text()
    unsent = [int(n) for n in re.findall(r"closing a WebSocket .* \((\d+) bytes unsent\)", log)]
    assert len(unsent) == READERS, log[-2000:]
    assert max(unsent) < 4 * len(CHUNK), unsent


def test_websocket_frames_past_the_client_message_limit_reach_the_reader(
    stall_server: Server,
) -> None:
    """--websocket-max-message-size (64 KiB) bounds what clients send; autobahn applied it to
    the server's frames as well, so a 512 KiB chunk ended the reader's socket."""
    key = stall_server.create_project()
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=stall_server.url, headers=auth, timeout=30) as client:
        run = client.post("/api/v1/runs", json={"task_id": "ws"}).json()
        stream = f"/api/v1/runs/{run['id']}/streams/big"
        json_type = {"Content-Type": "application/json"}
        assert client.put(stream, headers=json_type).is_success
        assert client.post(stream, content=b"[" + CHUNK + b"]", headers=json_type).is_success
        token = client.post("/api/v1/tokens", json={"scopes": [f"read:runs:{run['id']}"]}).json()[
            "token"
        ]
    path = f"/ws/v1/runs/{run['id']}/streams/big?offset=-1&token={token}"
    with _ws_connect(stall_server, path) as sock:
        opcode, payload = _ws_frame(sock)
    assert opcode == 1
    frame = json.loads(payload)
    assert frame["type"] == "chunks"
    assert [len(c["data"]) for c in frame["chunks"]] == [len(CHUNK) - 2]
